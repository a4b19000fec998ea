// Multiaddr (spec §8.4): text and binary forms, route mapping, errors that point at the bad part.
import EdgeRouting
import EdgeTestSupport
import EdgeWire
import Testing

@Suite("Multiaddr", .cpuBound)
struct MultiaddrTests {
    static let roundTripCases = [
        "/ip4/127.0.0.1/tcp/4000/service/echo",
        "/dnsaddr/localhost/tcp/4000/service/api",
        "/ip6/::1/tcp/4000/worker/abc",
        "/node/n1/service/uppercase",
        "/project/default/service/forward_to_blue/secure/api/service/outlet",
        "/dnsaddr/orchestrator.ockam.io/tcp/6252/service/api",
        "/ip6/2001:db8::8a2e:370:7334/tcp/443",
        "/ip4/10.0.0.1/tcp/1/ip4/10.0.0.2/tcp/65535/service/x",
        "/space/s1/service/\u{e9}cho",
    ]

    @Test("text and binary round trips", arguments: roundTripCases)
    func roundTrip(text: String) throws {
        let multiaddr = try Multiaddr(parsing: text)
        #expect(multiaddr.description == text)
        #expect(try Multiaddr(parsing: multiaddr.description) == multiaddr)
        let binary = multiaddr.encode()
        let decoded = try Multiaddr(decoding: binary[...])
        #expect(decoded == multiaddr)
        #expect(decoded.encode() == binary)
    }

    @Test func parsedComponents() throws {
        let multiaddr = try Multiaddr(parsing: "/ip4/127.0.0.1/tcp/4000/service/echo")
        #expect(multiaddr.components == [.ip4([127, 0, 0, 1]), .tcp(4000), .service("echo")])
        let ip6 = try Multiaddr(parsing: "/ip6/::1/tcp/4000/worker/abc")
        #expect(ip6.components == [.ip6([UInt8](repeating: 0, count: 15) + [1]), .tcp(4000), .worker("abc")])
        let project = try Multiaddr(parsing: "/project/default/service/forward_to_blue/secure/api/service/outlet")
        #expect(
            project.components == [
                .project("default"), .service("forward_to_blue"), .secure("api"), .service("outlet"),
            ])
        #expect(try Multiaddr(parsing: "/service/echo/").components == [.service("echo")])  // trailing '/'
    }

    @Test func bleHopsMapToTheBLETransportAndRoundTrip() throws {
        let text = "/ble/C0:FF:EE:00:00:01-random/psm/0x81/secure/api/service/echo"
        let addr = try Multiaddr(parsing: text)
        #expect(addr.description == text)
        #expect(try Multiaddr(decoding: addr.encode()[...]) == addr)
        #expect(
            try addr.routeSegments() == [
                .address(Address(TransportType(4), "C0:FF:EE:00:00:01/random,psm=0x81")), .secureChannel(listener: "api"),
                .address(.local("echo")),
            ])
        #expect(
            try Multiaddr(parsing: "/ble/aa:bb:cc:dd:ee:ff/psm/129").route()
                == Route([Address(TransportType(4), "aa:bb:cc:dd:ee:ff,psm=129")]))
        for bad in ["/ble/AA:BB/psm/0x81", "/ble/AA:BB:CC:DD:EE:FF-static/psm/0x81", "/ble/AA:BB:CC:DD:EE:FF",
                    "/psm/0x81", "/ble/AA:BB:CC:DD:EE:FF/psm/0", "/ble/AA:BB:CC:DD:EE:FF/psm/0x10000"] {
            #expect(throws: MultiaddrError.self, "\(bad)") { try Multiaddr(parsing: bad) }
        }
    }

    @Test func ip6IsPrintedCanonically() throws {
        #expect(try Multiaddr(parsing: "/ip6/0:0:0:0:0:0:0:1/tcp/1").description == "/ip6/::1/tcp/1")
    }

    // MARK: Binary form

    @Test func codesMatchTheSpecTable() {
        let expected: [(MultiaddrComponent, UInt64, String)] = [
            (.ip4([1, 2, 3, 4]), 4, "04"), (.ip6([UInt8](repeating: 0, count: 16)), 41, "29"), (.tcp(1), 6, "06"),
            (.dnsaddr("h"), 56, "38"), (.service("s"), 62526, "bee803"), (.node("n"), 72526, "ceb604"),
            (.project("p"), 82526, "de8405"), (.space("s"), 92526, "eed205"), (.secure("s"), 99526, "c68906"),
            (.worker("w"), 102526, "fea006"),
            (.serial("d"), 0x30_0040, "c080c001"),  // ockam-edge extensions (private-use codes)
            (.ble("AA:BB:CC:DD:EE:FF"), 0x30_0041, "c180c001"), (.psm("0x81"), 0x30_0042, "c280c001"),
        ]
        for (component, code, varint) in expected {
            #expect(component.code == code, "\(component.protocolName)")
            #expect(Multiaddr([component]).encode().hexString.hasPrefix(varint), "\(component.protocolName)")
            #expect(MultiaddrComponent.protocolNames.contains(component.protocolName))
        }
        #expect(MultiaddrComponent.protocolNames.count == expected.count)
    }

    @Test func exactBinaryFromTheSpec() throws {
        let ip4 = try Multiaddr(parsing: "/ip4/127.0.0.1/tcp/4000")
        #expect(ip4.encode().hexString == "04" + "7f000001" + "06" + "0fa0")

        let service = try Multiaddr(parsing: "/service/echo")
        #expect(service.encode().hexString == "bee803" + "04" + "6563686f")

        let dns = try Multiaddr(parsing: "/dnsaddr/localhost/tcp/4000/service/api")
        #expect(
            dns.encode().hexString == "38" + "09" + "6c6f63616c686f7374" + "06" + "0fa0" + "bee803" + "03" + "617069")

        let ip6 = try Multiaddr(parsing: "/ip6/::1/tcp/4000")
        #expect(ip6.encode().hexString == "29" + String(repeating: "00", count: 15) + "01" + "06" + "0fa0")

        let decoded = try Multiaddr(decoding: [UInt8](hex: "047f000001060fa0 bee803046563686f")[...])
        #expect(decoded.description == "/ip4/127.0.0.1/tcp/4000/service/echo")
    }

    @Test func binaryDecodingErrors() {
        func decode(_ hex: String) throws(WireError) -> Multiaddr { try Multiaddr(decoding: [UInt8](hex: hex)[...]) }
        #expect(throws: WireError.truncated) { try decode("04 7f00") }
        #expect(throws: WireError.truncated) { try decode("06 0f") }
        #expect(throws: WireError.truncated) { try decode("29 00000000") }
        #expect(throws: WireError.truncated) { try decode("be e8") }
        #expect(throws: WireError.truncated) { try decode("be e8 03") }
        #expect(throws: WireError.truncated) { try decode("be e8 03 05 6563") }
        #expect(throws: WireError.truncated) { try decode("047f000001060fa0 38") }
        #expect(throws: WireError.unsupported("multiaddr protocol code 7")) { try decode("07 00") }
        #expect(throws: WireError.unsupported("multiaddr protocol code 1")) { try decode("047f000001060fa0 01 00") }
        #expect(throws: WireError.invalidUTF8) { try decode("bee803 01 ff") }
        #expect(throws: WireError.limitExceeded(what: "BARE length", limit: 255)) {
            try decode("bee803 8002" + String(repeating: "61", count: 256))
        }
        #expect(throws: WireError.invalidVarint) { try decode("ffffffffffffffffff02") }
        let tooLong = [UInt8](repeating: 0x06, count: Multiaddr.maxLength + 1)
        #expect(throws: WireError.limitExceeded(what: "multiaddr", limit: Multiaddr.maxLength)) {
            try Multiaddr(decoding: tooLong[...])
        }
    }

    // MARK: Route mapping

    @Test func transportAddressesMapToTCPHops() throws {
        #expect(try Multiaddr(parsing: "/ip4/127.0.0.1/tcp/4000").route() == [.tcp("127.0.0.1:4000")])
        #expect(try Multiaddr(parsing: "/ip6/::1/tcp/4000").route() == [.tcp("[::1]:4000")])
        #expect(try Multiaddr(parsing: "/dnsaddr/localhost/tcp/4000").route() == [.tcp("localhost:4000")])
        #expect(
            try Multiaddr(parsing: "/ip4/127.0.0.1/tcp/4000/service/echo").route().description
                == "1#127.0.0.1:4000 => 0#echo")
    }

    @Test func serviceAndWorkerMapToLocalAddresses() throws {
        #expect(try Multiaddr(parsing: "/service/echo").route() == [.local("echo")])
        #expect(try Multiaddr(parsing: "/worker/abc").route() == [.local("abc")])
        #expect(try Multiaddr(parsing: "/ip6/::1/tcp/4000/worker/abc").route() == [.tcp("[::1]:4000"), .local("abc")])
    }

    @Test func twoTCPHopsGiveTwoTCPAddresses() throws {
        let route = try Multiaddr(parsing: "/ip4/10.0.0.1/tcp/1/dnsaddr/relay.example/tcp/2/service/x").route()
        #expect(route == [.tcp("10.0.0.1:1"), .tcp("relay.example:2"), .local("x")])
    }

    @Test func nodeIsResolvedThroughTheClosure() throws {
        let multiaddr = try Multiaddr(parsing: "/node/n1/service/uppercase")
        var asked: [String] = []
        let route = try multiaddr.route { name in
            asked.append(name)
            return name == "n1" ? "127.0.0.1:5000" : nil
        }
        #expect(route == [.tcp("127.0.0.1:5000"), .local("uppercase")])
        #expect(asked == ["n1"])
    }

    @Test func unknownNodeIsAnErrorPointingAtIt() throws {
        let multiaddr = try Multiaddr(parsing: "/service/a/node/zz")
        let error = try #require(throws: MultiaddrError.self) { try multiaddr.route { _ in nil } }
        #expect(error.offset == 10)
        #expect(error.length == 8)
        #expect(error.reason.contains("zz"))
        // The default resolver knows no nodes.
        let plain = try #require(throws: MultiaddrError.self) { try Multiaddr(parsing: "/node/n1").routeSegments() }
        #expect(plain.offset == 0)
        #expect(plain.length == 8)
    }

    @Test func secureBecomesASecureChannelSegment() throws {
        let multiaddr = try Multiaddr(parsing: "/dnsaddr/localhost/tcp/4000/secure/api/service/echo")
        let segments = try multiaddr.routeSegments()
        #expect(
            segments == [.address(.tcp("localhost:4000")), .secureChannel(listener: "api"), .address(.local("echo"))])
        #expect(try Multiaddr(parsing: "/secure/api").routeSegments() == [.secureChannel(listener: "api")])
        let error = try #require(throws: MultiaddrError.self) { try Multiaddr(parsing: "/secure/api").route() }
        #expect(error.reason.contains("secure channel"))
        #expect(throws: MultiaddrError.self) { try multiaddr.route() }
    }

    @Test func projectAndSpaceAreNotRoutable() throws {
        let project = try Multiaddr(parsing: "/project/default/service/forward_to_blue/secure/api/service/outlet")
        let error = try #require(throws: MultiaddrError.self) { try project.routeSegments() }
        #expect(error.offset == 0)
        #expect(error.length == "/project/default".count)
        let space = try #require(throws: MultiaddrError.self) { try Multiaddr(parsing: "/service/a/space/s").route() }
        #expect(space.offset == 10)
        #expect(space.length == 8)
    }

    @Test func unpairedComponentsBuiltInCodeAreRejectedByRouteMapping() throws {
        let loneTCP = try #require(throws: MultiaddrError.self) {
            try Multiaddr([.service("a"), .tcp(1)]).routeSegments()
        }
        #expect(loneTCP.offset == 10)
        #expect(loneTCP.length == 6)
        let loneIP = try #require(throws: MultiaddrError.self) { try Multiaddr([.ip4([1, 2, 3, 4])]).route() }
        #expect(loneIP.offset == 0)
        #expect(loneIP.length == "/ip4/1.2.3.4".count)
    }

    // MARK: Text errors with the caret on the bad part

    static let errorCases: [(String, Int, Int, String)] = [
        ("ip4/127.0.0.1/tcp/4000", 0, 1, "'/'"),
        ("/foo/bar", 1, 3, "unknown protocol"),
        ("/ip4/127.0.0.1/tcp/4000/bogus/x", 24, 5, "unknown protocol \"bogus\""),
        ("/ip4/300.1.1.1/tcp/1", 5, 9, "IPv4"),
        ("/ip4/1.2.3/tcp/1", 5, 5, "IPv4"),
        ("/ip6/::g/tcp/1", 5, 3, "IPv6"),
        ("/tcp/4000", 1, 3, "/tcp must follow"),
        ("/service/a/tcp/4000", 11, 3, "/tcp must follow"),
        ("/ip4/1.2.3.4", 1, 3, "followed by /tcp"),
        ("/dnsaddr/localhost/service/api", 1, 7, "followed by /tcp"),
        ("/ip4/1.2.3.4/tcp/0", 17, 1, "port"),
        ("/ip4/1.2.3.4/tcp/70000", 17, 5, "port"),
        ("/ip4/1.2.3.4/tcp/-1", 17, 2, "port"),
        ("/ip4/1.2.3.4/tcp/http", 17, 4, "port"),
        ("/service", 1, 7, "needs a value"),
        ("/service/", 1, 7, "needs a value"),
        ("/service/echo/worker", 14, 6, "needs a value"),
        ("/", 1, 1, "empty protocol"),
        ("//service/x", 1, 1, "empty protocol"),
        ("/service/a b", 9, 3, "whitespace"),
        ("", 0, 1, "'/'"),
    ]

    @Test("text errors point at the bad part", arguments: errorCases)
    func textErrors(input: String, offset: Int, length: Int, reasonContains: String) throws {
        let error = try #require(throws: MultiaddrError.self) { try Multiaddr(parsing: input) }
        #expect(error.input == input)
        #expect(error.offset == offset, "\(error)")
        #expect(error.length == length, "\(error)")
        #expect(error.reason.contains(reasonContains), "\(error.reason)")
    }

    @Test func caretLineIsRenderedUnderTheBadPart() throws {
        let error = try #require(throws: MultiaddrError.self) { try Multiaddr(parsing: "/ip4/300.1.1.1/tcp/1") }
        #expect(
            error.description
                == "invalid multiaddr: bad IPv4 address \"300.1.1.1\"\n  /ip4/300.1.1.1/tcp/1\n       ^^^^^^^^^")
    }

    @Test func overlongValuesAndInputsAreRejected() throws {
        let value255 = String(repeating: "v", count: 255)
        #expect(try Multiaddr(parsing: "/service/" + value255).components == [.service(value255)])
        let tooLongValue = try #require(throws: MultiaddrError.self) {
            try Multiaddr(parsing: "/service/" + value255 + "v")
        }
        #expect(tooLongValue.offset == 9)
        #expect(tooLongValue.length == 256)
        let tooLongInput = try #require(throws: MultiaddrError.self) {
            try Multiaddr(parsing: "/service/" + String(repeating: "a", count: Multiaddr.maxLength))
        }
        #expect(tooLongInput.offset == 0)
    }

    @Test func ipValuesWithEmbeddedNULAreRejected() throws {
        // inet_pton sees a C string: without a check, "1.2.3.4\0junk" would parse as 1.2.3.4.
        let ip4 = try #require(throws: MultiaddrError.self) { try Multiaddr(parsing: "/ip4/1.2.3.4\u{0}junk/tcp/1") }
        #expect(ip4.offset == 5)
        #expect(throws: MultiaddrError.self) { try Multiaddr(parsing: "/ip6/::1\u{0}/tcp/1") }
    }
}
