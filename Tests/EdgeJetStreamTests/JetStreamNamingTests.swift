import EdgeBridge
import EdgeJetStream
import Testing

@Suite("JetStream naming")
struct JetStreamNamingTests {
    @Test func plainNamesStandForThemselves() {
        #expect(JetStreamNaming.token("sensors") == "sensors")
        #expect(JetStreamNaming.token("meter_2-b") == "meter_2-b")
        let gateway = "I" + String(repeating: "ab", count: 32)
        #expect(JetStreamNaming.subject(prefix: "fleet.readings", gateway: gateway, bridge: "sensors") == "fleet.readings.\(gateway).sensors")
    }

    /// No bridge name can add a token, be a wildcard, or contain whitespace: `.`, `*`, `>`, whitespace, `%` and
    /// every other byte are escaped, and the escaping is reversible, so two names never share a subject.
    @Test(arguments: [
        ("a.b", "a%2Eb"), ("*", "%2A"), (">", "%3E"), ("a b", "a%20b"), ("tab\t", "tab%09"), ("100%", "100%25"),
        ("serial:a", "serial%3Aa"), ("", "%"), ("é", "%C3%A9"), ("a\r\nb", "a%0D%0Ab"), ("a/b", "a%2Fb"),
    ])
    func namesAreEscaped(name: String, token: String) {
        #expect(JetStreamNaming.token(name) == token)
        #expect(JetStreamNaming.untoken(token) == name)
        let subject = JetStreamNaming.subject(prefix: "p", gateway: "I00", bridge: name)
        #expect(subject.split(separator: ".", omittingEmptySubsequences: false).count == 3)
        #expect(!subject.contains(where: { $0 == "*" || $0 == ">" || $0.isWhitespace }))
    }

    @Test func untokenRefusesWhatTokenDoesNotMake() {
        for bad in ["a%2", "a%zz", "%41", "a.b", "a b", "%2e", "%FF"] { #expect(JetStreamNaming.untoken(bad) == nil, "\(bad)") }
    }

    @Test func theMessageIDNamesGatewayBridgeEpochAndSequence() {
        let record = BridgeRecord(device: "serial:a b", receivedAt: 1_764_000_000_123, payload: [1])
        let withEpoch = IngestReading(
            gateway: "I01", envelope: BridgeEnvelope(sequence: 42, bridge: "s.1", record: record, epoch: [0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]))
        #expect(JetStreamNaming.messageID(withEpoch) == "I01.s%2E1.deadbeef00010203.42")
        let without = IngestReading(gateway: "I01", envelope: BridgeEnvelope(sequence: 42, bridge: "s.1", record: record))
        #expect(JetStreamNaming.messageID(without) == "I01.s%2E1.-.42")
        // Different epochs, bridges or gateways never share an id.
        var other = withEpoch
        other.envelope.epoch = [0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 4]
        #expect(JetStreamNaming.messageID(other) != JetStreamNaming.messageID(withEpoch))
        let headers = JetStreamNaming.headers(withEpoch)
        #expect(headers.map(\.name) == ["Nats-Msg-Id", "Ockam-Gateway", "Ockam-Bridge", "Ockam-Device", "Ockam-Sequence", "Ockam-Received-At", "Ockam-Epoch"])
        #expect(headers.first { $0.name == "Ockam-Device" }?.value == "serial:a%20b")
        #expect(headers.first { $0.name == "Ockam-Sequence" }?.value == "42")
        #expect(headers.first { $0.name == "Ockam-Received-At" }?.value == "1764000000123")
        #expect(headers.first { $0.name == "Ockam-Epoch" }?.value == "deadbeef00010203")
        #expect(!JetStreamNaming.headers(without).contains { $0.name == "Ockam-Epoch" })
    }

    @Test func headerValuesCannotEndALine() {
        #expect(JetStreamNaming.headerValue("a\r\nX-Evil: 1") == "a%0D%0AX-Evil:%201")
        #expect(JetStreamNaming.headerValue("ble:AA:BB") == "ble:AA:BB")
        #expect(JetStreamNaming.headerValue("50%") == "50%25")
    }

    @Test func prefixesAndStreamNames() {
        #expect(JetStreamNaming.isValidPrefix("ockam-edge") && JetStreamNaming.isValidPrefix("fleet.readings"))
        for bad in ["", "a..b", ".a", "a.", "a.*", "a.>", "a b"] { #expect(!JetStreamNaming.isValidPrefix(bad), "\(bad)") }
        #expect(JetStreamNaming.isValidStreamName("OCKAM_EDGE"))
        #expect(!JetStreamNaming.isValidStreamName("a.b") && !JetStreamNaming.isValidStreamName(""))
        #expect(JetStreamNaming.streamSubject(prefix: "p.q") == "p.q.>")
    }
}
