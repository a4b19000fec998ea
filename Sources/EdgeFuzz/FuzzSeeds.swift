// Seeds that need the fixtures' keys (genuine handshake messages, signed objects, genuine ciphertexts).
//
// `Tests/Fuzz/make-seeds.py` writes the spec/KAT seeds and then runs `OckamEdgeFuzz --write-seeds`, which writes
// these into Tests/Fuzz/Corpus/<target>/gen-<name>. The fixtures are deterministic, so the output is stable;
// CorpusReplayTests checks that the committed files still equal what this produces.
import EdgeCrypto
import EdgeIdentity
import EdgeNoise
import EdgeRouting
import EdgeSecureChannel

public enum FuzzSeeds {
    /// File-name prefix of generated seeds (so make-seeds.py and the drift test can tell them apart).
    public static let prefix = "gen-"

    /// target → (seed name without prefix → bytes).
    public static func generated() -> [String: [String: [UInt8]]] {
        let transcript = FuzzFixtures.transcript
        let initiator = FuzzFixtures.initiator.credentials
        let authority = FuzzFixtures.authority

        // A two-change history: the authority's identity rotated to a new key (signed by both keys).
        let rotated: Identity
        do {
            let first = try SigningKey(kind: .ed25519, secret: FuzzFixtures.key(0xA1))
            let second = try SigningKey(kind: .ed25519, secret: FuzzFixtures.key(0xA3))
            rotated = try authority.identity.rotated(from: first, to: second, now: FuzzFixtures.createdAt + 60)
        } catch {
            fatalError("EdgeFuzz: rotated identity seed: \(error)")
        }

        let payloadMessage = SecureChannelMessage.payload(
            onwardRoute: [.local("echo")], returnRoute: [.local("app"), Address(.tcp, "127.0.0.1:4000")],
            payload: Array("hello".utf8))
        let refresh = SecureChannelMessage.refreshCredentials(
            RefreshCredentials(identity: initiator.identity, credentials: initiator.credentials))

        return [
            "identity": [
                "fixture-initiator": initiator.identity.encodedHistory,
                "fixture-rotated": rotated.encodedHistory,
            ],
            "attestation": [
                "secure-channel-key": initiator.attestation.encode(),
                "credential-signing-key": authority.attestation.encode(),
            ],
            "credential": [
                "initiator-credential": initiator.credentials[0].encode(),
            ],
            "identity-payload": [
                "initiator": transcript.initiatorPayload,
                "responder": transcript.responderPayload,
            ],
            "secure-channel-message": [
                "payload-tcp-return": payloadMessage.encode(),
                "refresh-fixture": refresh.encode(),
            ],
            "handshake-responder": [
                "message1": transcript.message1,
                "message3": transcript.message3,
                "payload3-initiator": transcript.initiatorPayload,
                "payload3-no-credential": IdentityAndCredentials(
                    identity: initiator.identity, attestation: initiator.attestation, credentials: []
                ).encode(),
            ],
            "handshake-initiator": [
                "message2": transcript.message2,
                "payload2-responder": transcript.responderPayload,
                "payload2-initiator-identity": transcript.initiatorPayload,
            ],
            "encrypted-message": encryptedMessageSeeds(),
        ]
    }

    /// Genuine ciphertexts of the fixed transport key for modes 0 and 1 (mode-2 scripts are plain bytes and live
    /// in make-seeds.py).
    static func encryptedMessageSeeds() -> [String: [UInt8]] {
        guard var encryptor = try? OckamEncryptor(key: FuzzFixtures.transportKey) else {
            fatalError("EdgeFuzz: encryptor fixture")
        }
        var messages: [[UInt8]] = []
        for index in 0..<40 {
            guard let message = try? encryptor.encrypt(index % 8 == 0 ? Array("hello \(index)".utf8) : []) else {
                fatalError("EdgeFuzz: encrypting seed \(index)")
            }
            messages.append(message)
        }
        func sequence(_ nonces: [Int]) -> [UInt8] {
            [1] + nonces.flatMap { [UInt8(messages[$0].count)] + messages[$0] }
        }
        return [
            "single-nonce0": [0] + messages[0],
            "single-nonce32": [0] + messages[32],
            "sequence-in-order": sequence(Array(0..<6)),
            "sequence-replay-reorder": sequence([0, 2, 1, 2, 0, 5, 3]),
            "sequence-rekey": sequence([0, 31, 32, 33, 1, 39, 30]),
        ]
    }
}
