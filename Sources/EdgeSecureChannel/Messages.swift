// EdgeSecureChannel: Ockam secure channels — Noise XX handshakes with identities, encrypted routing across any route.
import EdgeIdentity
import EdgeRouting
import EdgeWire

/// The plaintext inside an encrypted secure-channel message (spec §5.5): `SecureChannelPaddedMessage =
/// array(2) [message, padding bytes]` where `message` is the enum `0 Payload | 1 RefreshCredentials | 2 Close`.
public enum SecureChannelMessage: Sendable {
    /// `PlaintextPayloadMessage = array(3) [onward Route, return Route, payload bytes]`.
    case payload(onwardRoute: Route, returnRoute: Route, payload: [UInt8])
    case refreshCredentials(RefreshCredentials)
    case close

    /// Encodes with empty padding (Ockam's random padding is disabled too).
    public func encode() -> [UInt8] {
        var writer = CBORWriter(capacity: 64)
        writer.writeArrayHeader(2)
        writer.writeArrayHeader(2)
        switch self {
        case .payload(let onward, let returnRoute, let payload):
            writer.writeUnsigned(0)
            writer.writeArrayHeader(1)
            writer.writeArrayHeader(3)
            onward.encode(into: &writer)
            returnRoute.encode(into: &writer)
            writer.writeBytes(payload)
        case .refreshCredentials(let refresh):
            writer.writeUnsigned(1)
            writer.writeArrayHeader(1)
            refresh.encode(into: &writer)
        case .close:
            writer.writeUnsigned(2)
            writer.writeArrayHeader(0)
        }
        writer.writeBytes([UInt8]())
        return writer.bytes
    }

    public init(decoding bytes: [UInt8], limits: RoutingLimits = .default) throws(SecureChannelError) {
        do {
            var reader = CBORReader(bytes)
            let outer = try reader.readArrayHeader(limit: 16)
            guard outer >= 1 else { throw WireError.truncated }
            guard try reader.readArrayHeader(limit: 16) == 2 else { throw WireError.unsupported("message enum") }
            let variant = try reader.readUnsigned()
            let fields = try reader.readArrayHeader(limit: 16)
            switch variant {
            case 0:
                guard fields >= 1 else { throw WireError.truncated }
                let count = try reader.readArrayHeader(limit: 16)
                guard count >= 3 else { throw WireError.truncated }
                let onward = try Route(reading: &reader, limits: limits)
                let returnRoute = try Route(reading: &reader, limits: limits)
                let payload = Array(try reader.readBytes(limit: limits.maxMessageSize))
                try reader.skipValues(count - 3)
                try reader.skipValues(fields - 1)
                self = .payload(onwardRoute: onward, returnRoute: returnRoute, payload: payload)
            case 1:
                guard fields >= 1 else { throw WireError.truncated }
                self = .refreshCredentials(try RefreshCredentials(reading: &reader))
                try reader.skipValues(fields - 1)
            case 2:
                try reader.skipValues(fields)
                self = .close
            default:
                throw WireError.unsupported("secure channel message type \(variant)")
            }
            // Padding (bytes) and any later elements are ignored.
            try reader.skipValues(outer - 1)
            try reader.expectEnd()
        } catch let error as SecureChannelError {
            throw error
        } catch {
            throw .malformedMessage("\(error)")
        }
    }
}

/// Errors of secure channels. Each names the failed check; none contains key material or plaintext.
public enum SecureChannelError: Error, Hashable, Sendable, CustomStringConvertible {
    case malformedMessage(String)
    case handshakeFailed(String)
    case handshakeTimeout
    case trustPolicyRefused(String)
    case invalidIdentity(String)
    case invalidAttestation(String)
    case invalidCredential(String)
    case decryptionFailed(String)
    case closed
    case tooManyHandshakes(Int)
    case unsupportedProtocol(String)
    /// A channel a request went through closed before the reply came (e.g. its listener refused this identity).
    case closedBeforeReply(peer: String, reason: String)

    public var description: String {
        switch self {
        case .malformedMessage(let s): return "malformed secure channel message: \(s)"
        case .handshakeFailed(let s): return "handshake failed: \(s)"
        case .handshakeTimeout: return "handshake timed out"
        case .trustPolicyRefused(let s): return "trust policy refused the peer: \(s)"
        case .invalidIdentity(let s): return "peer identity invalid: \(s)"
        case .invalidAttestation(let s): return "peer purpose key attestation invalid: \(s)"
        case .invalidCredential(let s): return "peer credential invalid: \(s)"
        case .decryptionFailed(let s): return "decryption failed: \(s)"
        case .closed: return "secure channel closed"
        case .tooManyHandshakes(let n): return "too many concurrent handshakes (limit \(n))"
        case .unsupportedProtocol(let s): return "unsupported protocol: \(s)"
        case .closedBeforeReply(let peer, let reason):
            return "the secure channel to \(peer) closed before the reply (\(reason))"
        }
    }
}
