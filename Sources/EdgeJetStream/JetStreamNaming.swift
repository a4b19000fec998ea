// EdgeJetStream: the ingest service's sink that publishes readings to a NATS JetStream stream, exactly once and in
// order per gateway bridge (docs/fleet.md). Naming and settings are plain Swift; the libnats part needs trait JetStream.
import EdgeBridge

/// How readings are named in JetStream: subjects, message ids and headers (docs/fleet.md "Subjects and headers").
public enum JetStreamNaming {
    /// Header names the sink sets on every message (besides `Nats-Msg-Id`).
    public enum Header {
        public static let messageID = "Nats-Msg-Id"
        public static let gateway = "Ockam-Gateway"
        public static let bridge = "Ockam-Bridge"
        public static let device = "Ockam-Device"
        public static let sequence = "Ockam-Sequence"
        public static let epoch = "Ockam-Epoch"
        public static let receivedAt = "Ockam-Received-At"
        /// The header libnats sets from `ExpectLastSubjectSeq` only when that is above 0; the sink sets it itself
        /// for 0 ("no message on this subject yet").
        public static let expectedLastSubjectSequence = "Nats-Expected-Last-Subject-Sequence"
    }

    /// One subject token for any text: ASCII letters, digits, `-` and `_` stand for themselves; every other byte of
    /// the UTF-8 form (`.`, `*`, `>`, whitespace, `%`, `:` …) is `%` and two uppercase hex digits; the empty text is
    /// `%`. So no name can add a token, be a wildcard or collide with another name, and the escaping is reversible.
    public static func token(_ text: String) -> String {
        if text.isEmpty { return "%" }
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if isPlain(byte) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += percent(byte)
            }
        }
        return out
    }

    /// The text a ``token(_:)`` came from; nil for anything `token` does not make.
    public static func untoken(_ token: String) -> String? {
        if token == "%" { return "" }
        var bytes: [UInt8] = []
        var utf8 = token.utf8.makeIterator()
        while let byte = utf8.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = utf8.next().flatMap(hexValue), let low = utf8.next().flatMap(hexValue) else { return nil }
                let decoded = high << 4 | low
                guard !isPlain(decoded) else { return nil }
                bytes.append(decoded)
            } else {
                guard isPlain(byte) else { return nil }
                bytes.append(byte)
            }
        }
        return bytes.isEmpty ? nil : String(validating: bytes, as: UTF8.self)
    }

    /// `<prefix>.<gateway>.<bridge>`, the gateway identifier and the bridge name each one escaped token.
    public static func subject(prefix: String, gateway: String, bridge: String) -> String {
        "\(prefix).\(token(gateway)).\(token(bridge))"
    }

    /// The subjects a stream must capture for `prefix`: `<prefix>.>`.
    public static func streamSubject(prefix: String) -> String { "\(prefix).>" }

    /// `Nats-Msg-Id`: `<gateway>.<bridge>.<epoch hex or ->.<sequence>`, gateway and bridge escaped as subject tokens,
    /// so the id is unique per reading and holds no character a header value may not.
    public static func messageID(_ reading: IngestReading) -> String {
        let envelope = reading.envelope
        return "\(token(reading.gateway)).\(token(envelope.bridge)).\(QueueEpoch.text(envelope.epoch) ?? "-").\(envelope.sequence)"
    }

    /// A header value for any text: printable ASCII other than `%` as is, every other byte (controls, space,
    /// non-ASCII) `%XX`; so a device tag cannot end a header line or add a header.
    public static func headerValue(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if byte > 0x20 && byte < 0x7f && byte != UInt8(ascii: "%") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += percent(byte)
            }
        }
        return out
    }

    /// The headers of the message for `reading`, in a fixed order (the message id first).
    public static func headers(_ reading: IngestReading) -> [(name: String, value: String)] {
        let envelope = reading.envelope
        var headers: [(name: String, value: String)] = [
            (Header.messageID, messageID(reading)),
            (Header.gateway, headerValue(reading.gateway)),
            (Header.bridge, headerValue(envelope.bridge)),
            (Header.device, headerValue(envelope.record.device)),
            (Header.sequence, "\(envelope.sequence)"),
            (Header.receivedAt, "\(envelope.record.receivedAt)"),
        ]
        if let epoch = QueueEpoch.text(envelope.epoch) { headers.append((Header.epoch, epoch)) }
        return headers
    }

    /// Whether `prefix` is usable: dot-separated tokens of ASCII letters, digits, `-` and `_`, at most 200 bytes.
    public static func isValidPrefix(_ prefix: String) -> Bool {
        guard !prefix.isEmpty, prefix.utf8.count <= 200 else { return false }
        return prefix.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { token in
            !token.isEmpty && token.utf8.allSatisfy(isPlain)
        }
    }

    /// Whether `name` is a usable stream name: ASCII letters, digits, `-` and `_`, 1 to 64 bytes.
    public static func isValidStreamName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && name.utf8.allSatisfy(isPlain)
    }

    static func isPlain(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default: false
        }
    }

    static func percent(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        return String(decoding: [UInt8(ascii: "%"), digits[Int(byte >> 4)], digits[Int(byte & 0xf)]], as: UTF8.self)
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
