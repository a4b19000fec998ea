// EdgeTransportTCPTests/DestinationTests: canonical destinations, forwarding rules, one connection per destination.
import EdgeNode
import EdgeRouting
import Logging
import NIOPosix
import Testing

@testable import EdgeTransportTCP

@Suite("TCP destinations and forwarding rules")
struct DestinationTests {
    @Test(arguments: [
        ("127.0.0.1:4000", "127.0.0.1:4000"),
        ("127.0.0.1:04000", "127.0.0.1:4000"),
        ("127.0.0.1:00004000", "127.0.0.1:4000"),
        ("[::1]:80", "[::1]:80"),
        ("[0:0:0:0:0:0:0:1]:080", "[::1]:80"),
        ("[FE80::0001]:1", "[fe80::1]:1"),
        ("Gateway.Example.COM.:443", "gateway.example.com:443"),
        ("localhost:4000", "localhost:4000"),
    ])
    func spellingsOfOneDestinationAreOne(text: String, canonical: String) throws {
        #expect(try TCPDestination(parsing: text).description == canonical)
    }

    @Test(arguments: [
        "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:+80", "127.0.0.1: 80", ":80",
        "[127.0.0.1]:80", "::1:80x", "010.0.0.1:80", "0x7f.1:80", "2130706433:80", "127.1:80", "a..b:80",
        "bad_name!:80", "[::1:80", "-:80:", "127.0.0.1\u{0}x:80", "[::1\u{0}]:80",
    ])
    func malformedOrNumberLikeDestinationsAreRefused(text: String) {
        #expect(throws: TCPTransportError.invalidPeerAddress(text)) { try TCPDestination(parsing: text) }
    }

    @Test func rulesMatchExactAddressesNetworksPortsAndNames() throws {
        func allows(_ rule: String, _ destination: String) throws -> Bool {
            try TCPForwardRule(parsing: rule).matches(TCPDestination(parsing: destination))
        }
        #expect(try allows("10.0.0.5:4000", "10.0.0.5:04000"))
        #expect(try !allows("10.0.0.5:4000", "10.0.0.5:4001"))
        #expect(try !allows("10.0.0.5:4000", "10.0.0.6:4000"))
        #expect(try allows("10.0.0.0/8:443", "10.200.3.4:443"))
        #expect(try !allows("10.0.0.0/8:443", "11.0.0.1:443"))
        #expect(try allows("10.1.0.0/15:*", "10.0.255.255:1"))
        #expect(try !allows("10.1.0.0/15:*", "10.2.0.0:1"))
        #expect(try allows("0.0.0.0/0:4000", "192.168.1.1:4000"))
        #expect(try !allows("0.0.0.0/0:4000", "[::1]:4000"), "an IPv4 network never matches IPv6")
        #expect(try allows("[fd00::/8]:443", "[fd12:3456::1]:443"))
        #expect(try !allows("[fd00::/8]:443", "[fe80::1]:443"))
        #expect(try allows("cloud.example.com:4000", "CLOUD.example.com.:4000"))
        #expect(try !allows("cloud.example.com:4000", "10.0.0.5:4000"), "a name rule never matches an address")
        #expect(try !allows("10.0.0.5:4000", "cloud.example.com:4000"), "an address rule never matches a name")
        #expect(try TCPForwardRule(parsing: "[::0001]:*").description == "[::1]:*")
        #expect(try TCPForwardRule(parsing: "10.0.0.0/8:0443").description == "10.0.0.0/8:443")
    }

    @Test(arguments: ["10.0.0.0/33:1", "10.0.0.0/x:1", "[::/129]:1", "10.0.0.1:*x", "10.0.0.1", "name:0", "[10.0.0.0/8]:1"])
    func malformedRulesAreRefused(text: String) {
        #expect(throws: TCPTransportError.invalidForwardRule(text)) { try TCPForwardRule(parsing: text) }
    }

    @Test func theAllowListPolicyAcceptsOnlyTCPHopsItMatches() throws {
        let list = TCPForwardAllowList([try TCPForwardRule(parsing: "10.0.0.5:4000")])
        let policy = ForwardingPolicy.tcp(list)
        #expect(policy.allows(.tcp("10.0.0.5:4000")))
        #expect(!policy.allows(.tcp("10.0.0.5:4001")))
        #expect(!policy.allows(Address(.ble, Array("10.0.0.5:4000".utf8))))
        #expect(!policy.allows(.tcp("garbage")))
        list.replace(with: [try TCPForwardRule(parsing: "10.0.0.6:*")])
        #expect(!policy.allows(.tcp("10.0.0.5:4000")))
        #expect(policy.allows(.tcp("10.0.0.6:22")))
        #expect(policy.summary() == ["10.0.0.6:*"])
    }

    @Test func spellingsOfOneDestinationShareOneConnectionAndTheOutgoingCapHolds() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = Node(logger: logger)
        try server.startDefaultServices()
        let serverTCP = TCPTransport(node: server, group: group)
        let port = try await serverTCP.listen(host: "127.0.0.1", port: 0).port!

        let client = Node(logger: logger)
        var options = TCPTransportOptions()
        options.maxOutgoingConnections = 1
        let clientTCP = TCPTransport(node: client, group: group, options: options)
        for spelling in ["127.0.0.1:\(port)", "127.0.0.1:0\(port)", "127.0.0.1:000\(port)"] {
            let reply = try await client.request(to: [.tcp(spelling), .local("echo")], payload: [9], timeout: .seconds(30))
            #expect(reply.payload == [9])
        }
        #expect(clientTCP.connections.count == 1)
        #expect(clientTCP.connections.first?.peer == "127.0.0.1:\(port)")
        // A second destination is over the cap of 1: refused at once, counted, and nothing is dialled.
        await #expect(throws: TCPTransportError.tooManyOutgoingConnections(limit: 1)) {
            _ = try await client.request(to: [.tcp("[::1]:\(port)"), .local("echo")], payload: [1], timeout: .seconds(30))
        }
        #expect(clientTCP.counters.outgoingRefusedOverCap == 1)
        #expect(clientTCP.connections.count == 1)
        await clientTCP.shutdown()
        await client.shutdown()
        await serverTCP.shutdown()
        await server.shutdown()
    }
}
