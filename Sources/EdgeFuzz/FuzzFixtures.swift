// Fixed, deterministic keys and identities for the secure-channel fuzz targets, created once per process.
//
// Everything here is derived from constant seeds and a constant clock, so a fuzz input reproduces the same path in
// every process and on every machine, and the genuine handshake transcript can be committed as seeds
// (see ``FuzzSeeds``). Nothing here is a real secret.
import EdgeCrypto
import EdgeIdentity
import EdgeNoise
import EdgeSecureChannel

enum FuzzFixtures {
    /// The clock of every fixture: identities and attestations are created at `createdAt`, handshakes run at `now`.
    static let createdAt: Timestamp = 1_700_000_000
    static let now: Timestamp = createdAt + 3600

    /// A 32-byte key made of `byte` repeated (distinct bytes give distinct keys).
    static func key(_ byte: UInt8) -> SecretKey { SecretKey(copying: [UInt8](repeating: byte, count: 32)) }

    /// One party's long-term material: what `SecureChannelCredentials.ephemeral(now:)` builds, but from fixed seeds.
    struct Party: Sendable {
        var signingKey: SigningKey
        var credentials: SecureChannelCredentials
        var staticPublicKey: [UInt8]
        var identifier: Identifier { credentials.identity.identifier }
    }

    /// The credential authority both parties trust: identity plus its credential-signing purpose key.
    struct Authority: Sendable {
        var identity: Identity
        var credentialKey: SigningKey
        var attestation: PurposeKeyAttestation
    }

    /// The attribute the responder's trust policy requires (and the authority grants both parties).
    static let requiredAttribute = ["role": "fuzz"]

    static let authority: Authority = {
        do {
            let key = try SigningKey(kind: .ed25519, secret: Self.key(0xA1))
            let identity = try Identity.create(key: key, now: createdAt)
            let credentialKey = try SigningKey(kind: .ed25519, secret: Self.key(0xA2))
            let attestation = try PurposeKeyAttestation.create(
                for: identity, signingKey: key, publicKey: .credentialSigning(credentialKey.publicKey), now: createdAt)
            return Authority(identity: identity, credentialKey: credentialKey, attestation: attestation)
        } catch {
            fatalError("EdgeFuzz: authority fixture: \(error)")
        }
    }()

    static func party(signingSeed: UInt8, staticSeed: UInt8) -> Party {
        do {
            let key = try SigningKey(kind: .ed25519, secret: Self.key(signingSeed))
            let identity = try Identity.create(key: key, now: createdAt)
            let staticKey = Self.key(staticSeed)
            let staticPublic = try X25519.publicKey(privateKey: staticKey)
            let attestation = try PurposeKeyAttestation.create(
                for: identity, signingKey: key, publicKey: .secureChannelStatic(staticPublic), now: createdAt)
            let credential = try CredentialAndPurposeKey.issue(
                subject: identity, attributes: Attributes(strings: requiredAttribute),
                issuerAttestation: authority.attestation, credentialSigningKey: authority.credentialKey, now: createdAt)
            let credentials = SecureChannelCredentials(
                identity: identity, staticKey: staticKey, attestation: attestation, credentials: [credential])
            return Party(signingKey: key, credentials: credentials, staticPublicKey: staticPublic)
        } catch {
            fatalError("EdgeFuzz: party fixture: \(error)")
        }
    }

    static let initiator = party(signingSeed: 0x11, staticSeed: 0x12)
    static let responder = party(signingSeed: 0x21, staticSeed: 0x22)
    static let initiatorEphemeral = key(0x13)
    static let responderEphemeral = key(0x23)

    /// The initiator accepts anyone (verifying credentials from the authority); the responder requires the
    /// authority's `role = fuzz` credential, so a payload without it reaches the `.refused` path.
    static let initiatorTrust = TrustContext(policy: .everyone, authorities: [authority.identity])
    static let responderTrust = TrustContext(
        policy: .credential(authority: authority.identity.identifier, required: requiredAttribute),
        authorities: [authority.identity])

    static func freshInitiator() -> SecureChannelHandshake {
        do {
            return try SecureChannelHandshake(
                role: .initiator, local: initiator.credentials, trust: initiatorTrust, ephemeralKey: initiatorEphemeral)
        } catch {
            fatalError("EdgeFuzz: initiator fixture: \(error)")
        }
    }

    static func freshResponder() -> SecureChannelHandshake {
        do {
            return try SecureChannelHandshake(
                role: .responder, local: responder.credentials, trust: responderTrust, ephemeralKey: responderEphemeral)
        } catch {
            fatalError("EdgeFuzz: responder fixture: \(error)")
        }
    }

    /// A genuine run of the handshake between the two fixed parties, with the intermediate states the targets
    /// resume from. Value types all the way down, so each fuzz run copies a state instead of redoing DH work.
    struct Transcript: Sendable {
        var message1: [UInt8]
        var message2: [UInt8]
        var message3: [UInt8]
        /// Initiator after `start()`, waiting for message 2.
        var initiatorAwaiting2: SecureChannelHandshake
        /// Responder after message 1, waiting for message 3.
        var responderAwaiting3: SecureChannelHandshake
        /// Raw Noise responder (same keys) that has read message 1: writes message 2 around any payload.
        var noiseResponderAfter1: HandshakeState
        /// Raw Noise initiator (same keys) that has read message 2: writes message 3 around any payload.
        var noiseInitiatorAfter2: HandshakeState
        /// The identity payloads the two parties send (CBOR `IdentityAndCredentials`).
        var initiatorPayload: [UInt8]
        var responderPayload: [UInt8]
    }

    static let transcript: Transcript = {
        do {
            var initiatorHandshake = freshInitiator()
            let m1 = try initiatorHandshake.start()
            let initiatorAwaiting2 = initiatorHandshake
            var responderHandshake = freshResponder()
            guard case .send(let m2) = try responderHandshake.receive(m1, now: now) else {
                fatalError("EdgeFuzz: genuine message 1 did not produce message 2")
            }
            let responderAwaiting3 = responderHandshake
            guard case .sendThenEstablished(let m3, _) = try initiatorHandshake.receive(m2, now: now) else {
                fatalError("EdgeFuzz: genuine message 2 did not complete the initiator")
            }
            guard case .established = try responderHandshake.receive(m3, now: now) else {
                fatalError("EdgeFuzz: genuine message 3 did not complete the responder")
            }

            var noiseResponder = try HandshakeState(
                protocol: .ockam, role: .responder, staticKey: responder.credentials.staticKey,
                ephemeralKey: responderEphemeral)
            _ = try noiseResponder.readMessage(m1)
            var noiseInitiator = try HandshakeState(
                protocol: .ockam, role: .initiator, staticKey: initiator.credentials.staticKey,
                ephemeralKey: initiatorEphemeral)
            guard try noiseInitiator.writeMessage(payload: []) == m1 else {
                fatalError("EdgeFuzz: raw Noise initiator disagrees with the handshake's message 1")
            }
            _ = try noiseInitiator.readMessage(m2)

            func payload(_ party: Party) -> [UInt8] {
                IdentityAndCredentials(
                    identity: party.credentials.identity, attestation: party.credentials.attestation,
                    credentials: party.credentials.credentials
                ).encode()
            }
            return Transcript(
                message1: m1, message2: m2, message3: m3, initiatorAwaiting2: initiatorAwaiting2,
                responderAwaiting3: responderAwaiting3, noiseResponderAfter1: noiseResponder,
                noiseInitiatorAfter2: noiseInitiator, initiatorPayload: payload(initiator),
                responderPayload: payload(responder))
        } catch {
            fatalError("EdgeFuzz: handshake transcript fixture: \(error)")
        }
    }()

    /// The fixed key of the `encrypted-message` target (the split key `k_0` of one direction).
    static let transportKey = key(0x5A)
}

extension FuzzFixtures {
    /// Every fixture identity with the attestations it signed (the only ones that may verify against it).
    static let knownAttestations: [(Identity, [PurposeKeyAttestation])] = [
        (authority.identity, [authority.attestation]),
        (initiator.credentials.identity, [initiator.credentials.attestation]),
        (responder.credentials.identity, [responder.credentials.attestation]),
    ]
}
