import EdgeControl
import EdgeWire
import Testing

@Suite("control protocol (typed CBOR)")
struct ControlProtocolTests {
    static let channel = ChannelSummary(
        address: "/service/ab", encryptor: "0#ab", decryptor: "0#cd", role: "initiator", peer: "I" + String(repeating: "e", count: 64),
        remoteRoute: "[1#127.0.0.1:4000, 0#api]", listener: nil, cipher: "aes-gcm", verificationCode: "042 917")
    static let device = DeviceSummary(
        name: "sensor1", identifier: "I" + String(repeating: "1", count: 64), attributes: ["room": "lab", "floor": "2"],
        transport: "serial:s1", linkSecurity: "high", pairedAt: 1_765_000_000, channels: ["/service/ab"])

    static let commands: [ControlCommand] = [
        .ping, .status, .metrics, .listChannels, .listDevices,
        .createChannel(to: "/node/cloud", timeout: .seconds(30)), .createChannel(to: "/node/cloud", timeout: nil),
        .showChannel(address: "/service/ab"), .deleteChannel(address: "0#ab"),
        .sendMessage(to: "/node/c/service/echo", message: "héllo", timeout: .milliseconds(1500), raw: true),
        .startPairing(PairingRequest(transport: "ble", target: "00:11:22:33:44:55,psm=0x81", security: "high", timeout: .seconds(5))),
        .startPairing(PairingRequest(transport: "serial", target: "s1")),
        .confirmPairing(channel: "/service/ab", name: "sensor1", attributes: ["b": "2", "a": "1"]),
        .cancelPairing(channel: "/service/ab"), .removeDevice(name: "sensor1"),
    ]

    static let replies: [ControlReply] = [
        .pong, .metrics("# HELP x\nx 1\n"), .channel(channel), .channels([channel, channel]), .channels([]),
        .channelDeleted(address: "/service/ab"), .messageReply("HELLO"),
        .pairingStarted(PairingStarted(channel: "/service/ab", identifier: "I1", code: "042 917", transport: "serial:s1", alreadyPairedAs: nil)),
        .pairingStarted(PairingStarted(channel: "/service/ab", identifier: "I1", code: "042 917", transport: "ble:x", alreadyPairedAs: "old")),
        .pairingConfirmed(channel: "/service/ab", device: device), .pairingCancelled(channel: "/service/ab"),
        .devices([device]), .deviceRemoved(DeviceRemoved(name: "sensor1", identifier: "I1", closedChannels: ["/service/ab"])),
        .status(
            .object([
                ("name", .string("n")), ("counters", .object([("delivered", .uint(7))])), ("offset", .int(-3)),
                ("links", .array([.object([("up", .bool(true)), ("peer", .null)])])),
            ])),
    ]

    @Test func everyCommandRoundTrips() throws {
        for command in Self.commands {
            let bytes = command.encode()
            #expect(try ControlCommand(decoding: bytes) == command, "\(command.name)")
            #expect(bytes.count <= ControlLimits.maxFrame)
        }
        #expect(Self.commands.count == 15)
    }

    @Test func everyReplyRoundTrips() throws {
        for reply in Self.replies {
            let bytes = ControlResponse.ok(reply).encode()
            #expect(try ControlResponse(decoding: bytes) == .ok(reply), "\(reply)")
        }
        let error = ControlResponse.error("no secure channel 0#ab")
        #expect(try ControlResponse(decoding: error.encode()) == error)
    }

    @Test func theStatusDocumentKeepsMemberOrderAndTypes() throws {
        guard case .ok(.status(let document)) = try ControlResponse(decoding: ControlResponse.ok(Self.replies.last!).encode()) else {
            Issue.record("not a status reply")
            return
        }
        #expect(document.serialized(pretty: false) == #"{"name":"n","counters":{"delivered":7},"offset":-3,"links":[{"up":true,"peer":null}]}"#)
    }

    @Test func aRequestOfAnotherVersionIsRefusedNamingBoth() {
        var w = CBORWriter()
        w.writeArrayHeader(3)
        w.writeUnsigned(1)
        w.writeText("status")
        w.writeMapHeader(0)
        #expect {
            _ = try ControlCommand(decoding: w.bytes)
        } throws: { error in
            "\(error)".contains("control protocol version 1") && "\(error)".contains("version 2")
        }
    }

    /// A version-2 request whose command is what `body` writes.
    static func request(_ body: (inout CBORWriter) -> Void) -> [UInt8] {
        var w = CBORWriter()
        w.writeArrayHeader(2)
        w.writeUnsigned(controlProtocolVersion)
        body(&w)
        return w.bytes
    }

    static let malformed: [(String, [UInt8])] = [
        ("a duration over a year", request {
            $0.writeArrayHeader(3); $0.writeText("secure-channel/create"); $0.writeText("/node/x"); $0.writeUnsigned(1 << 40)
        }),
        ("an unknown command", request { $0.writeArrayHeader(1); $0.writeText("stop") }),
        ("a missing field", request { $0.writeArrayHeader(2); $0.writeText("message/send"); $0.writeText("/x") }),
        ("an extra field", request { $0.writeArrayHeader(2); $0.writeText("status"); $0.writeNull() }),
        ("a duplicate attribute", request {
            $0.writeArrayHeader(4); $0.writeText("pair/confirm"); $0.writeText("/service/ab"); $0.writeText("s")
            $0.writeMapHeader(2); $0.writeText("k"); $0.writeText("1"); $0.writeText("k"); $0.writeText("2")
        }),
        ("a text where a duration goes", request {
            $0.writeArrayHeader(3); $0.writeText("secure-channel/create"); $0.writeText("/node/x")
            $0.writeText("9223372036854775807s")
        }),
    ]

    @Test(arguments: malformed)
    func malformedCommandsAreRefused(what: String, bytes: [UInt8]) {
        #expect(throws: WireError.self, "\(what)") { _ = try ControlCommand(decoding: bytes) }
    }

    @Test func aStatusDocumentNestedTooDeepIsRefused() {
        var document = JSON.null
        for _ in 0..<40 { document = .array([document]) }
        let bytes = ControlResponse.ok(.status(document)).encode()
        #expect(throws: WireError.self) { _ = try ControlResponse(decoding: bytes) }
    }

    @Test func theJSONViewIsWhatTheDocsList() {
        #expect(ControlReply.messageReply("HI").json.serialized(pretty: false) == #"{"reply":"HI"}"#)
        #expect(ControlReply.channelDeleted(address: "/service/ab").json.serialized(pretty: false) == #"{"deleted":"/service/ab"}"#)
        let confirmed = ControlReply.pairingConfirmed(channel: "/service/ab", device: Self.device).json.serialized(pretty: false)
        #expect(confirmed.hasSuffix(#""channels":["/service/ab"],"channel":"/service/ab"}"#), "\(confirmed)")
        #expect(confirmed.contains(#""attributes":{"floor":"2","room":"lab"}"#))
    }
}
