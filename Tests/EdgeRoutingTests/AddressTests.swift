// Address: text form, random local addresses, and the exact CBOR / BARE bytes of spec §1.1.
import EdgeRouting
import EdgeTestSupport
import EdgeWire
import Testing

@Suite("Address")
struct AddressTests {
    @Test func transportTypeValuesMatchOckam() {
        #expect(TransportType.local.rawValue == 0)
        #expect(TransportType.tcp.rawValue == 1)
        #expect(TransportType.udp.rawValue == 2)
        #expect(TransportType.webSocket.rawValue == 3)
        #expect(TransportType.ble.rawValue == 4)
        #expect(TransportType.unixDomainSocket.rawValue == 5)
        #expect(TransportType(7) == TransportType(rawValue: 7))
        #expect(TransportType.tcp.description == "1")
        #expect(TransportType.local < TransportType.tcp)
        #expect(!(TransportType(200) < TransportType(3)))
    }

    @Test func parsesTypedAndBareForms() throws {
        let echo = try Address(parsing: "0#echo")
        #expect(echo == Address(.local, "echo"))
        #expect(echo.isLocal)
        #expect(echo.value == Array("echo".utf8))

        let tcp = try Address(parsing: "1#127.0.0.1:4000")
        #expect(tcp.transportType == .tcp)
        #expect(tcp.valueString == "127.0.0.1:4000")
        #expect(!tcp.isLocal)
        #expect(tcp == .tcp("127.0.0.1:4000"))

        let bare = try Address(parsing: "echo")
        #expect(bare == .local("echo"))
        #expect(bare == echo)

        #expect(try Address(parsing: "4#ockam_ble_1") == Address(.ble, "ockam_ble_1"))
        #expect(try Address(parsing: "255#x").transportType == TransportType(255))
        #expect(try Address(parsing: "1#[::1]:4000").valueString == "[::1]:4000")
    }

    @Test(
        "malformed text forms are rejected",
        arguments: [
            ("a#b#c", "more than one"),
            ("0#a#", "more than one"),
            ("x#y", "transport type"),
            ("#y", "transport type"),
            ("256#y", "transport type"),
            ("-1#y", "transport type"),
            (" 1#y", "transport type"),
            ("1#", "empty"),
            ("", "empty"),
        ])
    func rejected(text: String, reasonContains: String) throws {
        let error = try #require(throws: RoutingError.self) { try Address(parsing: text) }
        guard case .invalidAddress(let input, let reason) = error else {
            Issue.record("unexpected error \(error)")
            return
        }
        #expect(input == text)
        #expect(reason.contains(reasonContains), "reason: \(reason)")
        #expect(error.description.hasPrefix("invalid address \"\(text)\""))
    }

    @Test func descriptionAlwaysShowsTheTransportTypeAndRoundTrips() throws {
        #expect(Address.local("echo").description == "0#echo")
        #expect(Address.tcp("127.0.0.1:4000").description == "1#127.0.0.1:4000")
        #expect(try Address(parsing: "echo").description == "0#echo")
        for text in [
            "0#echo", "1#127.0.0.1:4000", "1#localhost:4000", "4#ockam_ble_1", "255#\u{e9}t\u{e9}", "5#/tmp/s.sock",
        ] {
            let address = try Address(parsing: text)
            #expect(address.description == text)
            #expect(try Address(parsing: address.description) == address)
        }
    }

    @Test func valueStringReplacesInvalidUTF8ForDisplayOnly() {
        let address = Address(.local, [0x61, 0xff])
        #expect(address.value == [0x61, 0xff])
        #expect(address.valueString == "a\u{fffd}")
    }

    @Test func randomAddressesAre32LowercaseHexLocal() {
        var seen = Set<Address>()
        for _ in 0..<64 {
            let address = Address.random()
            #expect(address.isLocal)
            #expect(address.value.count == 32)
            #expect(address.value.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
            #expect(Hex.decode(address.valueString)?.count == 16)
            seen.insert(address)
        }
        #expect(seen.count == 64)
    }

    // MARK: Exact bytes (spec §1.1, §1.5)

    @Test func cborEchoMatchesSpec() throws {
        var writer = CBORWriter()
        Address.local("echo").encode(into: &writer)
        #expect(writer.bytes.hexString == "8200446563686f")
        var reader = CBORReader(writer.bytes)
        #expect(try Address(reading: &reader) == .local("echo"))
        try reader.expectEnd()
    }

    @Test func bareLocalhostMatchesSpec() {
        var out: [UInt8] = []
        Address.tcp("localhost:4000").encodeBARE(into: &out)
        #expect(out.hexString == "010e6c6f63616c686f73743a34303030")
    }

    @Test func cborDecodingEdgeCases() throws {
        // Extra trailing elements in the address array are ignored (minicbor derive rules).
        var extra = CBORReader([UInt8](hex: "83 01 41 61 f6"))
        #expect(try Address(reading: &extra) == Address(.tcp, "a"))
        try extra.expectEnd()

        var short = CBORReader([UInt8](hex: "81 00"))
        #expect(throws: WireError.truncated) { try Address(reading: &short) }

        var bigType = CBORReader([UInt8](hex: "82 190100 41 61"))
        #expect(throws: WireError.integerOverflow) { try Address(reading: &bigType) }

        var textValue = CBORReader([UInt8](hex: "82 00 61 61"))
        #expect(throws: WireError.unexpectedType(expected: "byte string", found: 0x61)) {
            try Address(reading: &textValue)
        }

        var long = CBORReader([UInt8](hex: "82 00 43 616263"))
        #expect(throws: WireError.limitExceeded(what: "byte string", limit: 2)) {
            try Address(reading: &long, limits: RoutingLimits(maxAddressLength: 2))
        }
    }
}
