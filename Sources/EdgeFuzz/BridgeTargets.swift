// Fuzz target for the bridge wire format (docs/bridge.md): envelopes, queued records and acknowledgements.
import EdgeBridge

extension FuzzTargets {
    /// The first byte picks the decoder (envelope, record, ack); whatever decodes re-encodes canonically and stays
    /// within the documented limits, and decode → encode → decode is the identity.
    static func bridgeEnvelope(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        guard let selector = input.first else { return }
        let body = Array(input.dropFirst())
        switch selector % 4 {
        case 0:
            guard let envelope = try? BridgeEnvelope(decoding: body) else { return }
            try check(envelope.record.payload.count <= BridgeLimits.maxPayload, "envelope payload over the limit")
            try check(
                envelope.bridge.utf8.count <= BridgeLimits.maxText && envelope.record.device.utf8.count <= BridgeLimits.maxText,
                "envelope text over the limit")
            try check(envelope.epoch.map { !$0.isEmpty && $0.count <= BridgeLimits.maxEpoch } ?? true, "envelope epoch empty or over the limit")
            let encoded = envelope.encoded()
            try check((try? BridgeEnvelope(decoding: encoded)) == envelope, "envelope round trip")
            try check(encoded.count <= body.count, "canonical envelope longer than its input")
        case 1:
            guard let record = try? BridgeRecord(decoding: body) else { return }
            try check(record.payload.count <= BridgeLimits.maxPayload, "record payload over the limit")
            try check((try? BridgeRecord(decoding: record.encoded())) == record, "record round trip")
        case 2:
            guard let ack = try? BridgeAck(decoding: body) else { return }
            try check((try? BridgeAck(decoding: ack.encoded())) == ack, "ack round trip")
        default:
            guard let reply = try? BridgeReply(decoding: body) else { return }
            switch reply {
            case .ack(let ack): try check((try? BridgeReply(decoding: ack.encoded())) == reply, "reply (ack) round trip")
            case .refused(let refusal):
                try check((try? BridgeReply(decoding: refusal.encoded())) == reply, "reply (refusal) round trip")
                try check((try? BridgeAck(decoding: body)) == nil, "a refusal decodes as an acknowledgement")
            }
        }
    }
}
