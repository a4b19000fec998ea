// EdgeFuzz: fuzz entry points for every decoder, with invariants beyond "did not crash".
import EdgeBridge
import EdgeControl
import EdgeIdentity
import EdgeIdentityStore
import EdgeRouting
import EdgeSecureChannel
import EdgeTransportTCP
import EdgeWire
import NIOCore

/// A failed invariant: the fuzz driver traps on it so libFuzzer records the input.
public struct FuzzInvariantViolation: Error, CustomStringConvertible {
    public let description: String
}

/// The registry of fuzz targets, by name (`make fuzz TARGET=<name>`).
public enum FuzzTargets {
    public static let all: [String: @Sendable ([UInt8]) throws(FuzzInvariantViolation) -> Void] = [
        "cbor": cbor,
        "bare": bare,
        "routing-message": routingMessage,
        "multiaddr-text": multiaddrText,
        "multiaddr-binary": multiaddrBinary,
        "tcp-frames": tcpFrames,
        "tcp-read-deadline": tcpReadDeadline,
        "tcp-destination": tcpDestination,
        "quantity": quantity,
        "host-port": hostPort,
        "identity": identity,
        "attestation": attestation,
        "credential": credential,
        "identity-payload": identityPayload,
        "secure-channel-message": secureChannelMessage,
        "handshake-responder": handshakeResponder,
        "handshake-initiator": handshakeInitiator,
        "encrypted-message": encryptedMessage,
        "control-request": controlRequest,
        "control-response": controlResponse,
        "queue-record": queueRecord,
        "bridge-envelope": bridgeEnvelope,
        "serial-frames": serialFrames,
        "ble-sdus": bleSDUs,
        "agent-config": agentConfig,
        "queue-recovery": queueRecovery,
        "device-record": deviceRecord,
    ]

    public static var names: [String] { all.keys.sorted() }

    /// For the decoder targets: whether the decoder accepts an input. Lets the replay tests pin that the `kat-*`
    /// and `gen-*` seeds are valid, so fuzzing starts from inputs that reach the accepting paths.
    public static let accepts: [String: @Sendable ([UInt8]) -> Bool] = [
        "routing-message": { (try? RoutingMessage(decoding: $0, limits: RoutingLimits(maxMessageSize: 1 << 20))) != nil },
        "identity": { (try? Identity(decoding: $0)) != nil },
        "attestation": { (try? PurposeKeyAttestation(decoding: $0)) != nil },
        "credential": { (try? CredentialAndPurposeKey(decoding: $0)) != nil },
        "identity-payload": { (try? IdentityAndCredentials(decoding: $0)) != nil },
        "secure-channel-message": { (try? SecureChannelMessage(decoding: $0)) != nil },
        "control-request": { (try? ControlCommand(decoding: $0)) != nil },
        "control-response": { (try? ControlResponse(decoding: $0)) != nil },
        "queue-record": queueRecordAccepts,
        "bridge-envelope": { input in
            guard let selector = input.first else { return false }
            let body = Array(input.dropFirst())
            switch selector % 4 {
            case 0: return (try? BridgeEnvelope(decoding: body)) != nil
            case 1: return (try? BridgeRecord(decoding: body)) != nil
            case 2: return (try? BridgeAck(decoding: body)) != nil
            default: return (try? BridgeReply(decoding: body)) != nil
            }
        },
        "device-record": { (try? DeviceRecord(name: "fuzz", decoding: $0)) != nil },
    ]

    static func check(_ condition: Bool, _ message: @autoclosure () -> String) throws(FuzzInvariantViolation) {
        if !condition { throw FuzzInvariantViolation(description: message()) }
    }

    /// Skipping any input either fails with a typed error or consumes a prefix; skipping is deterministic.
    static func cbor(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        var reader = CBORReader(input)
        guard let raw = try? reader.skipValue() else { return }
        var again = CBORReader(Array(raw))
        let second = try? again.skipValue()
        try check(second.map(Array.init) == Array(raw), "skipValue is not stable on its own output")
        try check(again.isAtEnd, "re-skip left bytes")
    }

    /// A decoded BARE string re-encodes to exactly the input (the encoding is canonical if it decodes).
    static func bare(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        var position = 0
        if let value = try? BARE.readVarint(input[...], at: &position) {
            let canonical = BARE.varint(value)
            var p2 = 0
            try check((try? BARE.readVarint(canonical[...], at: &p2)) == value, "varint round trip")
        }
        guard let text = try? BARE.decodeString(input, limit: 1 << 20) else { return }
        let encoded = BARE.encodeString(text)
        try check((try? BARE.decodeString(encoded)) == text, "BARE string round trip")
    }

    /// decode → encode → decode is stable, and the re-encoding never grows beyond the limits.
    static func routingMessage(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        let limits = RoutingLimits(maxMessageSize: 1 << 20)
        guard let message = try? RoutingMessage(decoding: input, limits: limits) else { return }
        try check(message.onwardRoute.count <= limits.maxRouteLength, "route length above limit")
        try check(message.returnRoute.count <= limits.maxRouteLength, "route length above limit")
        let encoded = message.encode()
        guard let again = try? RoutingMessage(decoding: encoded, limits: limits) else {
            throw FuzzInvariantViolation(description: "re-encoded message does not decode")
        }
        try check(again == message, "decode → encode → decode changed the message")
        try check(again.encode() == encoded, "encoding is not stable")
    }

    static func multiaddrText(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        guard let text = String(validating: input, as: UTF8.self), let parsed = try? Multiaddr(parsing: text) else {
            return
        }
        guard let reparsed = try? Multiaddr(parsing: parsed.description) else {
            throw FuzzInvariantViolation(description: "printed multiaddr does not parse: \(parsed)")
        }
        try check(reparsed == parsed, "text round trip changed the multiaddr")
        try check((try? Multiaddr(decoding: parsed.encode()[...])) == parsed, "binary round trip")
        _ = try? parsed.routeSegments(resolveNode: { _ in "127.0.0.1:4000" })
    }

    static func multiaddrBinary(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        guard let decoded = try? Multiaddr(decoding: input[...]) else { return }
        try check((try? Multiaddr(decoding: decoded.encode()[...])) == decoded, "binary round trip")
    }

    /// Feeds the TCP stream decoder in chunks: it yields frames within the limit or throws, never traps,
    /// and frames it yields are exactly the bytes announced.
    static func tcpFrames(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        let limit = 4096
        var decoder = OckamTCPFrameDecoder(maxFrameSize: limit)
        var buffer = ByteBuffer()
        var offset = 0
        var chunk = 1
        while offset < input.count {
            let end = min(input.count, offset + chunk)
            buffer.writeBytes(input[offset..<end])
            offset = end
            chunk = chunk % 7 + 1
            while true {
                let frame: ByteBuffer?
                do { frame = try decoder.decode(buffer: &buffer) } catch { return }
                guard let frame else { break }
                try check(frame.readableBytes > 0 && frame.readableBytes <= limit, "frame size outside limits")
                _ = try? RoutingMessage(decoding: Array(frame.readableBytesView))
            }
            buffer.discardReadBytes()
        }
    }
}
