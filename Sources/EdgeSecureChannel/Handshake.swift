// The secure-channel handshake as a pure state machine: Noise XX plus Ockam identity payloads (spec §5.2–§5.4).
import EdgeCrypto
import EdgeIdentity
import EdgeNoise

/// Which suite a channel uses. AES-256-GCM is Ockam's only suite (and our default, for compatibility); the
/// ChaCha20-Poly1305 suite is for ockam-edge-to-ockam-edge channels on CPUs without AES instructions.
public enum ChannelSuite: String, Sendable, Hashable, CaseIterable {
    case aes256GCM = "aes-gcm"
    case chaCha20Poly1305 = "chacha20-poly1305"

    public var noiseProtocol: NoiseProtocol {
        switch self {
        case .aes256GCM: return .ockam
        case .chaCha20Poly1305:
            // A distinct name (longer than 32 bytes, so hashed into h as Noise requires): a stock Ockam node can
            // never mistake it for its own suite; the handshake simply fails to decrypt.
            return NoiseProtocol(
                name: Array("OCKAM_EDGE_XX_25519_ChaChaPoly_SHA256".utf8), pattern: .xx, cipher: .chaCha20Poly1305,
                splitOrder: .reversed)
        }
    }
}

/// Who we trust, and which authorities' credentials we accept.
public struct TrustContext: Sendable {
    public var policy: TrustPolicy
    public var authorities: [Identity]

    public init(policy: TrustPolicy = .everyone, authorities: [Identity] = []) {
        self.policy = policy
        self.authorities = authorities
    }
}

/// The outcome of a completed handshake.
public struct EstablishedChannel: Sendable {
    public var encryptor: OckamEncryptor
    public var decryptor: OckamDecryptor
    public var peerIdentity: Identity
    public var peer: PeerInfo
    public var handshakeHash: [UInt8]
    /// Credentials that did not verify (logged, not fatal — as Ockam).
    public var rejectedCredentials: [String]
}

/// Noise XX with Ockam's identity payloads. Pure: no I/O, no clock (the caller passes `now`).
///
/// ### Invariants
/// - The peer's Noise static key must equal the X25519 key its identity attested (else ``SecureChannelError/invalidAttestation(_:)``).
/// - The trust policy is evaluated on a verified identifier and only verified credential attributes.
/// - A failed step leaves the machine in `.failed`; it never produces keys afterwards.
public struct SecureChannelHandshake: Sendable {
    public enum Output: Sendable {
        /// Send this handshake message.
        case send([UInt8])
        /// The handshake completed (responder, after message 3).
        case established(EstablishedChannel)
        /// Send this message, then the channel is established (initiator, message 3).
        case sendThenEstablished([UInt8], EstablishedChannel)
        /// The responder's trust policy refused the initiator after a cryptographically complete handshake. The
        /// caller sends one encrypted Close with this encryptor (so the initiator learns at once instead of timing
        /// out) and drops the channel. Ockam initiators handle Close as usual.
        case refused(SecureChannelError, closeWith: OckamEncryptor)
    }

    private enum State: Sendable {
        case initiatorStart(HandshakeState)
        case initiatorAwaitingMessage2(HandshakeState)
        case responderAwaitingMessage1(HandshakeState)
        case responderAwaitingMessage3(HandshakeState)
        case done
        case failed
    }

    public let role: NoiseRole
    public let suite: ChannelSuite
    private var state: State
    private let local: SecureChannelCredentials
    private let trust: TrustContext

    public init(
        role: NoiseRole, suite: ChannelSuite = .aes256GCM, local: SecureChannelCredentials, trust: TrustContext,
        ephemeralKey: SecretKey? = nil
    ) throws(SecureChannelError) {
        self.role = role
        self.suite = suite
        self.local = local
        self.trust = trust
        do {
            let noise = try HandshakeState(
                protocol: suite.noiseProtocol, role: role, prologue: [], staticKey: local.staticKey,
                staticPublicKey: local.staticPublicKey, ephemeralKey: ephemeralKey)
            state = role == .initiator ? .initiatorStart(noise) : .responderAwaitingMessage1(noise)
        } catch {
            throw .handshakeFailed("\(error)")
        }
    }

    public var isFinished: Bool {
        if case .done = state { return true }
        if case .failed = state { return true }
        return false
    }

    /// Initiator: produces message 1 (`e`, empty payload).
    public mutating func start() throws(SecureChannelError) -> [UInt8] {
        guard case .initiatorStart(var noise) = state else { throw .handshakeFailed("start() is for a new initiator") }
        do {
            let message = try noise.writeMessage(payload: [])
            state = .initiatorAwaitingMessage2(noise)
            return message
        } catch {
            state = .failed
            throw .handshakeFailed("\(error)")
        }
    }

    /// Processes the peer's next handshake message.
    public mutating func receive(_ message: [UInt8], now: Timestamp) throws(SecureChannelError) -> Output {
        let current = state
        state = .failed  // until this step succeeds
        switch current {
        case .responderAwaitingMessage1(var noise):
            do {
                _ = try noise.readMessage(message)  // payload 1 is empty; it is hashed, and ignored
                let reply = try noise.writeMessage(payload: payload())
                state = .responderAwaitingMessage3(noise)
                return .send(reply)
            } catch {
                throw .handshakeFailed("message 1: \(error)")
            }
        case .initiatorAwaitingMessage2(var noise):
            let payload2: [UInt8]
            do {
                payload2 = try noise.readMessage(message)
            } catch {
                throw .handshakeFailed("message 2: \(error)")
            }
            let verified = try verifyPeer(payload2, remoteStatic: noise.remoteStaticPublicKey, now: now)
            do {
                let message3 = try noise.writeMessage(payload: payload())
                let keys = try noise.split()
                state = .done
                return .sendThenEstablished(message3, try established(keys, verified))
            } catch let error as SecureChannelError {
                throw error
            } catch {
                throw .handshakeFailed("message 3: \(error)")
            }
        case .responderAwaitingMessage3(var noise):
            let payload3: [UInt8]
            do {
                payload3 = try noise.readMessage(message)
            } catch {
                throw .handshakeFailed("message 3: \(error)")
            }
            let verified: VerifiedPeer
            do {
                verified = try verifyPeer(payload3, remoteStatic: noise.remoteStaticPublicKey, now: now)
            } catch {
                guard case .trustPolicyRefused = error, let keys = try? noise.split(),
                    let encryptor = try? OckamEncryptor(keys.sender)
                else { throw error }
                return .refused(error, closeWith: encryptor)
            }
            do {
                let keys = try noise.split()
                state = .done
                return .established(try established(keys, verified))
            } catch let error as SecureChannelError {
                throw error
            } catch {
                throw .handshakeFailed("split: \(error)")
            }
        case .initiatorStart:
            throw .handshakeFailed("initiator must call start() first")
        case .done:
            throw .handshakeFailed("handshake already complete")
        case .failed:
            throw .handshakeFailed("handshake already failed")
        }
    }

    /// Our identity payload for messages 2 and 3.
    private func payload() -> [UInt8] {
        IdentityAndCredentials(identity: local.identity, attestation: local.attestation, credentials: local.credentials)
            .encode()
    }

    private struct VerifiedPeer {
        var identity: Identity
        var peer: PeerInfo
        var rejected: [String]
    }

    /// Spec §5.4: identity history, attestation bound to `rs`, credentials against trusted authorities, trust policy.
    private func verifyPeer(_ payload: [UInt8], remoteStatic: [UInt8]?, now: Timestamp) throws(SecureChannelError)
        -> VerifiedPeer
    {
        let decoded: IdentityAndCredentials
        do {
            decoded = try IdentityAndCredentials(decoding: payload)
        } catch {
            throw .invalidIdentity("\(error)")
        }
        do {
            try decoded.attestation.verify(subject: decoded.identity, now: now)
        } catch {
            throw .invalidAttestation("\(error)")
        }
        guard let attested = decoded.attestation.secureChannelKey else {
            throw .invalidAttestation("the attested key is not a secure-channel key")
        }
        guard let remoteStatic, ConstantTime.equals(attested, remoteStatic) else {
            throw .invalidAttestation("the Noise static key is not the key the identity attested")
        }
        var attributes: [Identifier: [String: String]] = [:]
        var rejected: [String] = []
        for credential in decoded.credentials {
            do {
                try credential.verify(subject: decoded.identity.identifier, authorities: trust.authorities, now: now)
                attributes[credential.issuer, default: [:]].merge(credential.attributes.strings) { $1 }
            } catch {
                rejected.append("\(error)")
            }
        }
        let peer = PeerInfo(identifier: decoded.identity.identifier, attributes: attributes)
        guard trust.policy.allows(peer) else {
            let detail = rejected.isEmpty ? "" : " (rejected credentials: \(rejected.joined(separator: "; ")))"
            throw .trustPolicyRefused("\(peer.identifier) is not allowed by \(trust.policy)\(detail)")
        }
        return VerifiedPeer(identity: decoded.identity, peer: peer, rejected: rejected)
    }

    private func established(_ keys: TransportKeys, _ verified: VerifiedPeer) throws(SecureChannelError) -> EstablishedChannel {
        do {
            return EstablishedChannel(
                encryptor: try OckamEncryptor(keys.sender), decryptor: try OckamDecryptor(keys.receiver),
                peerIdentity: verified.identity, peer: verified.peer, handshakeHash: keys.handshakeHash,
                rejectedCredentials: verified.rejected)
        } catch {
            throw .handshakeFailed("transport keys: \(error)")
        }
    }
}
