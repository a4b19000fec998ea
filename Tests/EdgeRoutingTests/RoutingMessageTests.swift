// RoutingMessage: the CBOR TCP/UDP frame body of spec §2.2 — exact bytes, limits, robustness.
import EdgeRouting
import EdgeTestSupport
import EdgeWire
import Testing

@Suite("Routing message", .cpuBound)
struct RoutingMessageTests {
    /// What a sender checks before sending: exactly what the receiver's decoder refuses (one hop added to a full
    /// route, an address over the limit, an encoding over the size), nothing it accepts.
    @Test func checkLimitsAgreesWithTheDecoder() throws {
        let limits = RoutingLimits(maxMessageSize: 400, maxRouteLength: 4, maxAddressLength: 8)
        func verdicts(_ message: RoutingMessage) -> (sender: Bool, receiver: Bool) {
            let bytes = message.encode()
            let sender = (try? message.checkLimits(limits, encodedSize: bytes.count)) != nil
            let receiver = (try? RoutingMessage(decoding: bytes[...], limits: limits)) != nil
            return (sender, receiver)
        }
        let hop = Address.local("12345678")
        let cases: [RoutingMessage] = [
            RoutingMessage(onwardRoute: [hop], returnRoute: Route(Array(repeating: hop, count: 4)), payload: []),
            RoutingMessage(onwardRoute: [hop], returnRoute: Route(Array(repeating: hop, count: 5)), payload: []),
            RoutingMessage(onwardRoute: Route(Array(repeating: hop, count: 5)), returnRoute: [], payload: []),
            RoutingMessage(onwardRoute: [.local("123456789")], returnRoute: [], payload: []),
            RoutingMessage(onwardRoute: [hop], returnRoute: [.local("123456789")], payload: []),
            RoutingMessage(onwardRoute: [hop], returnRoute: [], payload: Array(repeating: 1, count: 300)),
            RoutingMessage(onwardRoute: [hop], returnRoute: [], payload: Array(repeating: 1, count: 400)),
        ]
        let seen = cases.map(verdicts)
        #expect(seen.map(\.sender) == [true, false, false, false, false, true, false])
        #expect(seen.map(\.sender) == seen.map(\.receiver))
    }

    private static func decode(_ hex: String, limits: RoutingLimits = .default) throws(RoutingError) -> RoutingMessage {
        try RoutingMessage(decoding: [UInt8](hex: hex), limits: limits)
    }

    private static func malformed(_ error: WireError) -> RoutingError {
        .malformed(error, context: "routing message")
    }

    // MARK: Spec bytes

    @Test func heartbeatWithoutTracing() throws {
        let message = try Self.decode("83 80 80 40")
        #expect(message.onwardRoute.isEmpty)
        #expect(message.returnRoute.isEmpty)
        #expect(message.payload.isEmpty)
        #expect(message.tracingContext == nil)
        #expect(message.isHeartbeat)
        #expect(message.encode().hexString == "83808040")
    }

    @Test func heartbeatWithNilTracing() throws {
        let message = try Self.decode("84 80 80 40 f6")
        #expect(message.isHeartbeat)
        #expect(message.tracingContext == nil)
        #expect(message == RoutingMessage(onwardRoute: [], returnRoute: [], payload: []))
    }

    /// onward [0#echo], return [0#app], payload "hi", worked out from spec §0.3 / §2.2:
    /// array(3) | array(1) [82 00 44 "echo"] | array(1) [82 00 43 "app"] | bytes(2) "hi"
    static let fullMessageHex = "83" + "81" + "8200446563686f" + "81" + "820043617070" + "426869"

    @Test func fullMessageExactBytes() throws {
        let message = RoutingMessage(
            onwardRoute: [.local("echo")], returnRoute: [.local("app")], payload: Array("hi".utf8))
        #expect(!message.isHeartbeat)
        #expect(message.encode().hexString == Self.fullMessageHex)
        let decoded = try Self.decode(Self.fullMessageHex)
        #expect(decoded == message)
        #expect(decoded.onwardRoute.description == "0#echo")
        #expect(decoded.returnRoute.description == "0#app")
        #expect(decoded.payload == [0x68, 0x69])
    }

    @Test func encodeIntoAppendsToAnExistingWriter() {
        var writer = CBORWriter()
        writer.writeUnsigned(7)
        RoutingMessage(onwardRoute: [.local("echo")], returnRoute: [.local("app")], payload: Array("hi".utf8))
            .encode(into: &writer)
        #expect(writer.bytes.hexString == "07" + Self.fullMessageHex)
    }

    @Test func tracingContextMakesItArrayOfFour() throws {
        let message = RoutingMessage(
            onwardRoute: [.local("echo")], returnRoute: [.local("app")], payload: Array("hi".utf8), tracingContext: "{}"
        )
        let expected = "84" + Self.fullMessageHex.dropFirst(2) + "627b7d"
        #expect(message.encode().hexString == expected)
        let decoded = try Self.decode(expected)
        #expect(decoded.tracingContext == "{}")
        #expect(decoded == message)
    }

    @Test func decodesFromASliceOfALargerFrame() throws {
        // A TCP frame: u32 big-endian length then the body.
        let body = [UInt8](hex: Self.fullMessageHex)
        let frame = [0, 0, 0, UInt8(body.count)] + body
        let message = try RoutingMessage(decoding: frame[4...])
        #expect(message.onwardRoute == [.local("echo")])
    }

    // MARK: Lenient decoding (minicbor derive rules, spec §0.2)

    @Test func extraTrailingElementsAreIgnored() throws {
        let six = try Self.decode("86 80 80 40 6178 01 f6")
        #expect(six.tracingContext == "x")
        #expect(six.isHeartbeat)
        let five = try Self.decode("85 81 820041 61 80 41 00 f6 a1 00 82 01 02")
        #expect(five.onwardRoute == [.local("a")])
        #expect(five.payload == [0])
        #expect(five.tracingContext == nil)
    }

    @Test func nonTextTracingIsIgnored() throws {
        #expect(try Self.decode("84 80 80 40 01").tracingContext == nil)
        #expect(try Self.decode("84 80 80 40 43 010203").tracingContext == nil)
        #expect(try Self.decode("84 80 80 40 82 6161 f5").tracingContext == nil)
        #expect(try Self.decode("84 80 80 40 a1 00 f6").tracingContext == nil)
        #expect(try Self.decode("84 80 80 40 f7").tracingContext == nil)
    }

    /// A float (or another value the decoder does not support) is not a tracing context to ignore: the message is
    /// malformed, as with a float anywhere else (docs/routing.md).
    @Test func aFloatOrTagInTheTracingFieldMakesTheMessageMalformed() {
        #expect(throws: Self.malformed(.unsupported("simple/float value 0xf9"))) { try Self.decode("84 80 80 40 f9 3c00") }
        #expect(throws: Self.malformed(.unsupported("simple/float value 0xfb"))) {
            try Self.decode("84 80 80 40 fb 3ff0000000000000")
        }
        #expect(throws: Self.malformed(.unsupported("tag"))) { try Self.decode("84 80 80 40 c1 01") }
    }

    @Test func tracingLongerThanTheLimitIsIgnoredNotFatal() throws {
        let limits = RoutingLimits(maxTracingContextLength: 4)
        let message = RoutingMessage(onwardRoute: [.local("a")], returnRoute: [], payload: [1], tracingContext: "12345")
        let decoded = try RoutingMessage(decoding: message.encode(), limits: limits)
        #expect(decoded.tracingContext == nil)
        #expect(decoded.onwardRoute == [.local("a")])
        #expect(decoded.payload == [1])
        // At the limit it is kept.
        let exact = RoutingMessage(onwardRoute: [], returnRoute: [], payload: [], tracingContext: "1234")
        #expect(try RoutingMessage(decoding: exact.encode(), limits: limits).tracingContext == "1234")

        // The realistic case: an OpenTelemetry JSON context above the default 4096-byte limit.
        let big = "{\"traceparent\":\"00-" + String(repeating: "a", count: 5000) + "-01\"}"
        let withBig = RoutingMessage(
            onwardRoute: [.local("echo")], returnRoute: [.local("app")], payload: [7], tracingContext: big)
        let decodedBig = try RoutingMessage(decoding: withBig.encode())
        #expect(decodedBig.tracingContext == nil)
        #expect(decodedBig.payload == [7])
    }

    @Test func tracingWithInvalidUTF8IsIgnoredNotFatal() throws {
        let decoded = try Self.decode("84 80 80 40 62 c328")
        #expect(decoded.tracingContext == nil)
        // And the skipped field is consumed whole: later elements still line up.
        let five = try Self.decode("85 80 80 40 62 c328 00")
        #expect(five.tracingContext == nil)
    }

    @Test func truncatedTracingContextIsNotMistakenForASkippableItem() {
        // text(2) with one byte left: "0" (0x30) is itself a valid one-byte CBOR item, so a decoder that
        // skips from the middle of the text would accept this truncated frame.
        #expect(throws: Self.malformed(.truncated)) { try Self.decode("84 80 80 40 62 30") }
        #expect(throws: Self.malformed(.truncated)) { try Self.decode("84 80 80 40 63 7b7d") }
    }

    // MARK: Rejections

    @Test func tooFewElementsAreRejected() {
        #expect(throws: Self.malformed(.truncated)) { try Self.decode("82 80 80") }
        #expect(throws: Self.malformed(.truncated)) { try Self.decode("80") }
        #expect(throws: Self.malformed(.truncated)) { try Self.decode("") }
        #expect(throws: Self.malformed(.unexpectedType(expected: "array", found: 0xa3))) {
            try Self.decode("a3 80 80 40")
        }
    }

    @Test func nonBytesPayloadIsRejected() {
        #expect(throws: Self.malformed(.unexpectedType(expected: "byte string", found: 0x62))) {
            try Self.decode("83 80 80 62 6869")
        }
        #expect(throws: Self.malformed(.unexpectedType(expected: "byte string", found: 0x80))) {
            try Self.decode("83 80 80 80")
        }
        #expect(throws: Self.malformed(.unexpectedType(expected: "byte string", found: 0xf6))) {
            try Self.decode("83 80 80 f6")
        }
    }

    @Test func routeLongerThanTheLimitIsRejected() throws {
        func message(onward: Int, back: Int) -> [UInt8] {
            RoutingMessage(
                onwardRoute: Route((0..<onward).map { .local("w\($0)") }),
                returnRoute: Route((0..<back).map { .local("r\($0)") }), payload: []
            ).encode()
        }
        let limit = RoutingLimits.default.maxRouteLength
        #expect(limit == 64)
        #expect(try RoutingMessage(decoding: message(onward: limit, back: limit)).onwardRoute.count == limit)
        #expect(throws: RoutingError.limitExceeded(what: "route length", limit: limit)) {
            try RoutingMessage(decoding: message(onward: limit + 1, back: 0))
        }
        #expect(throws: RoutingError.limitExceeded(what: "route length", limit: limit)) {
            try RoutingMessage(decoding: message(onward: 1, back: limit + 1))
        }
        let small = RoutingLimits(maxRouteLength: 2)
        #expect(throws: RoutingError.limitExceeded(what: "route length", limit: 2)) {
            try RoutingMessage(decoding: message(onward: 3, back: 0), limits: small)
        }
    }

    @Test func addressValueLongerThanTheLimitIsRejected() throws {
        let limit = RoutingLimits.default.maxAddressLength
        #expect(limit == 1024)
        func message(valueLength: Int) -> [UInt8] {
            RoutingMessage(
                onwardRoute: [Address(.tcp, [UInt8](repeating: 0x61, count: valueLength))], returnRoute: [], payload: []
            ).encode()
        }
        #expect(try RoutingMessage(decoding: message(valueLength: limit)).onwardRoute.first?.value.count == limit)
        #expect(throws: Self.malformed(.limitExceeded(what: "byte string", limit: limit))) {
            try RoutingMessage(decoding: message(valueLength: limit + 1))
        }
    }

    @Test func messageBiggerThanMaxMessageSizeIsRejected() throws {
        #expect(RoutingLimits.default.maxMessageSize == 16 * 1024 * 1024)
        let bytes = [UInt8](hex: Self.fullMessageHex)
        let exact = RoutingLimits(maxMessageSize: bytes.count)
        #expect(try RoutingMessage(decoding: bytes, limits: exact).payload == Array("hi".utf8))
        let tooSmall = RoutingLimits(maxMessageSize: bytes.count - 1)
        #expect(throws: RoutingError.limitExceeded(what: "routing message size", limit: bytes.count - 1)) {
            try RoutingMessage(decoding: bytes, limits: tooSmall)
        }
        // The default limit, with a payload just over 16 MiB.
        let huge = RoutingMessage(
            onwardRoute: [.local("a")], returnRoute: [], payload: [UInt8](repeating: 0, count: 16 * 1024 * 1024))
        #expect(throws: RoutingError.limitExceeded(what: "routing message size", limit: 16 * 1024 * 1024)) {
            try RoutingMessage(decoding: huge.encode())
        }
    }

    @Test func trailingBytesAreRejected() {
        #expect(throws: Self.malformed(.trailingBytes(1))) { try Self.decode(Self.fullMessageHex + "00") }
        #expect(throws: Self.malformed(.trailingBytes(4))) { try Self.decode("83 80 80 40 83 80 80 40") }
    }

    @Test func transportType256IsRejected() throws {
        #expect(throws: Self.malformed(.integerOverflow)) { try Self.decode("83 81 82 190100 41 61 80 40") }
        #expect(try Self.decode("83 81 82 18ff 41 61 80 40").onwardRoute == [Address(TransportType(255), "a")])
    }

    @Test func malformedAddressesAreRejected() {
        #expect(throws: Self.malformed(.truncated)) { try Self.decode("83 81 81 00 80 40") }
        #expect(throws: Self.malformed(.unexpectedType(expected: "unsigned integer", found: 0x20))) {
            try Self.decode("83 81 82 20 41 61 80 40")
        }
        #expect(throws: Self.malformed(.unexpectedType(expected: "byte string", found: 0x61))) {
            try Self.decode("83 81 82 00 61 61 80 40")
        }
        #expect(throws: Self.malformed(.unsupported("indefinite length"))) { try Self.decode("83 9f ff 80 40") }
    }

    @Test func hostileCountsAreRejectedCheaply() {
        #expect(throws: Self.malformed(.limitExceeded(what: "array length", limit: 1 << 16))) {
            try Self.decode("9b ffffffffffffffff")
        }
        #expect(throws: Self.malformed(.truncated)) { try Self.decode("83 9a 0000ffff 80 40") }
        #expect(throws: Self.malformed(.truncated)) { try Self.decode("83 80 80 5a 00ffffff") }
    }

    @Test func errorDescriptionNamesTheContext() throws {
        let error = try #require(throws: RoutingError.self) { try Self.decode("82 80 80") }
        #expect(error.description == "malformed routing message: input truncated")
    }

    // MARK: Property and robustness tests

    private static func randomAddress(_ g: inout SeededGenerator) -> Address {
        let tt = TransportType(UInt8.random(in: 0...255, using: &g))
        let length = Int.random(in: 0...40, using: &g)
        return Address(tt, (0..<length).map { _ in UInt8.random(in: 0...255, using: &g) })
    }

    private static func randomMessage(_ g: inout SeededGenerator, maxPayload: Int = 2000) -> RoutingMessage {
        let onward = Route((0..<Int.random(in: 0...8, using: &g)).map { _ in randomAddress(&g) })
        let back = Route((0..<Int.random(in: 0...8, using: &g)).map { _ in randomAddress(&g) })
        let payload = (0..<Int.random(in: 0...maxPayload, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) }
        var tracing: String?
        if Bool.random(using: &g) {
            let pool: [Character] = ["{", "}", "\"", "a", "0", "-", ":", "\u{e9}", "\u{1F600}"]
            tracing = String(
                (0..<Int.random(in: 0...120, using: &g)).map { _ in pool[Int.random(in: 0..<pool.count, using: &g)] })
        }
        return RoutingMessage(onwardRoute: onward, returnRoute: back, payload: payload, tracingContext: tracing)
    }

    @Test("random messages round-trip exactly (seeded)")
    func randomRoundTrip() throws {
        var g = SeededGenerator(seed: 0x0CCA_3ED6E)
        var withTracing = 0
        for _ in 0..<600 {
            let message = Self.randomMessage(&g)
            let bytes = message.encode()
            #expect(bytes.first == (message.tracingContext == nil ? 0x83 : 0x84))
            let decoded = try RoutingMessage(decoding: bytes)
            #expect(decoded == message)
            #expect(decoded.encode() == bytes)
            if message.tracingContext != nil { withTracing += 1 }
        }
        #expect(withTracing > 100 && withTracing < 500)
    }

    @Test("every strict prefix of a valid encoding throws")
    func prefixTruncation() throws {
        var g = SeededGenerator(seed: 7)
        var samples = [
            RoutingMessage(onwardRoute: [.local("echo")], returnRoute: [.local("app")], payload: Array("hi".utf8))
                .encode(),
            RoutingMessage(onwardRoute: [], returnRoute: [], payload: [], tracingContext: "{}").encode(),
            RoutingMessage(
                onwardRoute: [.tcp("127.0.0.1:4000"), .local("printer")], returnRoute: [.local("x")],
                payload: [UInt8](repeating: 1, count: 300), tracingContext: "{\"traceparent\":\"00-ab-01\"}"
            ).encode(),
        ]
        for _ in 0..<10 { samples.append(Self.randomMessage(&g, maxPayload: 400).encode()) }
        var checked = 0
        for bytes in samples {
            #expect(throws: Never.self) { try RoutingMessage(decoding: bytes) }
            for length in 0..<bytes.count {
                #expect(throws: RoutingError.self, "prefix of \(length)/\(bytes.count)") {
                    try RoutingMessage(decoding: bytes[..<length])
                }
                checked += 1
            }
        }
        #expect(checked > 1000)
    }

    @Test("random byte mutations of valid encodings decode or throw, never trap (seeded)")
    func mutations() throws {
        var g = SeededGenerator(seed: 0xF0221)
        let pool = (0..<20).map { _ in Self.randomMessage(&g, maxPayload: 64).encode() }
        var decoded = 0
        var rejected = 0
        for _ in 0..<2000 {
            var bytes = pool[Int.random(in: 0..<pool.count, using: &g)]
            for _ in 0..<Int.random(in: 1...3, using: &g) {
                let index = Int.random(in: 0..<bytes.count, using: &g)
                switch Int.random(in: 0..<4, using: &g) {
                case 0: bytes[index] = UInt8.random(in: 0...255, using: &g)
                case 1: bytes[index] ^= 1 << UInt8.random(in: 0...7, using: &g)
                case 2: bytes.insert(UInt8.random(in: 0...255, using: &g), at: index)
                default: if bytes.count > 1 { bytes.remove(at: index) }
                }
            }
            do {
                let message = try RoutingMessage(decoding: bytes)
                // Whatever was accepted re-encodes to something that decodes to the same message.
                #expect(try RoutingMessage(decoding: message.encode()) == message)
                decoded += 1
            } catch {
                rejected += 1
            }
        }
        #expect(decoded + rejected == 2000)
        #expect(decoded > 0)
        #expect(rejected > 0)
    }
}
