// EdgeConfigTests/HostPortTests: the one host:port parser (CLI listener flags, configuration addresses).
import Testing

@testable import EdgeConfig

@Suite("host:port")
struct HostPortTests {
    @Test(arguments: [
        ("127.0.0.1:4000", "127.0.0.1", 4000, "127.0.0.1:4000"),
        ("0.0.0.0:0", "0.0.0.0", 0, "0.0.0.0:0"),
        ("localhost:65535", "localhost", 65535, "localhost:65535"),
        ("Gateway-1.example_lan:80", "Gateway-1.example_lan", 80, "Gateway-1.example_lan:80"),
        ("[::1]:4000", "::1", 4000, "[::1]:4000"),
        ("[::]:0", "::", 0, "[::]:0"),
        ("[FE80::1%eth0]:80", "FE80::1%eth0", 80, "[FE80::1%eth0]:80"),
        ("[::ffff:10.0.0.1]:443", "::ffff:10.0.0.1", 443, "[::ffff:10.0.0.1]:443"),
        (":4000", "", 4000, ":4000"),
        // Leading zeros are read and dropped, as TCPDestination and Quantity.count read them.
        ("127.0.0.1:04000", "127.0.0.1", 4000, "127.0.0.1:4000"),
        ("[::1]:00", "::1", 0, "[::1]:0"),
    ])
    func addressesParseToTheirCanonicalForm(text: String, host: String, port: Int, canonical: String) throws {
        let address = try #require(HostPort.parse(text))
        #expect(address == HostPort(host: host, port: port))
        #expect(address.description == canonical)
        #expect(HostPort.parse(canonical) == address)
    }

    @Test(arguments: [
        "", ":", "4000", "host", "host:", "host:x", "host:4000x", "host:+80", "host:-1", "host:65536", "host:99999999999999999999",
        "host:1e3", "host:0x50", "host: 80", " 127.0.0.1:4000", "127.0.0.1:4000 ", "127.0.0.1 :4000", "a b:80", "a\tb:80",
        "host\u{0}:80", "hóst:80", "host:８０",
        // IPv6 only in brackets: `::1:4000` could be ::1 port 4000 or the address ::1:4000 with no port.
        "::1:4000", "::1", "fe80::1:80", "a:b:80",
        "[]:80", "[::1]", "[::1]:", "[::1]x:80", "[::1]]:80", "[::1:80", "::1]:80", "[127.0.0.1]:80", "[host]:80",
        "[::1%]:80", "[::1%eth 0]:80", "[[::1]]:80", "[::1]:4000:1",
    ])
    func malformedAddressesAreRefused(text: String) {
        #expect(HostPort.parse(text) == nil)
    }

    @Test func lengthIsBounded() {
        let name = String(repeating: "a", count: HostPort.maxLength - 5)
        #expect(HostPort.parse(name + ":4000")?.host == name)
        #expect(HostPort.parse(name + "a:4000") == nil)
        #expect(HostPort.parse("h:" + String(repeating: "0", count: 400) + "1") == nil)
    }
}
