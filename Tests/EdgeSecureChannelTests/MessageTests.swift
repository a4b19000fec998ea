import EdgeIdentity
import EdgeRouting
import EdgeTestSupport
import EdgeWire
import Testing

@testable import EdgeSecureChannel

@Suite("Secure channel messages")
struct MessageTests {
    func kat() throws -> [String: String] {
        let json = try #require(try TestData.vectorJSON("ockam/ockam-kat.json") as? [String: Any])
        return try #require(json["secure_channel_plaintexts"] as? [String: String])
    }

    @Test func closeMatchesOckam() throws {
        let close = [UInt8](hex: try #require(try kat()["close"]))
        #expect(SecureChannelMessage.close.encode() == close)
        guard case .close = try SecureChannelMessage(decoding: close) else {
            Issue.record("expected Close")
            return
        }
    }

    @Test func rustRefreshCredentialsDecodesAndReencodesExactly() throws {
        let bytes = [UInt8](hex: try #require(try kat()["refresh_credentials_from_rust"]))
        guard case .refreshCredentials(let refresh) = try SecureChannelMessage(decoding: bytes) else {
            Issue.record("expected RefreshCredentials")
            return
        }
        #expect(refresh.credentials.count == 1)
        #expect(SecureChannelMessage.refreshCredentials(refresh).encode() == bytes)
    }

    @Test func payloadRoundTripAndExactBytes() throws {
        let message = SecureChannelMessage.payload(onwardRoute: [.local("echo")], returnRoute: [.local("app")], payload: [1, 2])
        // [[0, [[ [[0,h'echo']], [[0,h'app']], h'0102' ]]], h'']
        #expect(message.encode() == [UInt8](hex: "82 82 00 81 83 81 82 00 44 6563686f 81 82 00 43 617070 42 0102 40"))
        guard case .payload(let onward, let ret, let payload) = try SecureChannelMessage(decoding: message.encode()) else {
            Issue.record("expected Payload")
            return
        }
        #expect(onward == [.local("echo")])
        #expect(ret == [.local("app")])
        #expect(payload == [1, 2])
    }

    @Test func malformedPlaintextsAreRejected() throws {
        for hex in ["", "80", "8282038040", "82820081", "828200818340", "8282028040ff", "a0"] {
            #expect(throws: SecureChannelError.self, "\(hex)") { _ = try SecureChannelMessage(decoding: [UInt8](hex: hex)) }
        }
        // Extra padding bytes are fine (random padding is allowed by the format).
        guard case .close = try SecureChannelMessage(decoding: [UInt8](hex: "828202804400000000")) else {
            Issue.record("expected Close with padding")
            return
        }
    }

    @Test func handshakeBetweenPureStateMachines() throws {
        let alice = try SecureChannelCredentials.ephemeral()
        let bob = try SecureChannelCredentials.ephemeral()
        var initiator = try SecureChannelHandshake(role: .initiator, local: alice, trust: TrustContext())
        var responder = try SecureChannelHandshake(role: .responder, local: bob, trust: TrustContext())
        let now = currentTimestamp()
        let m1 = try initiator.start()
        #expect(m1.count == 32)
        guard case .send(let m2) = try responder.receive(m1, now: now) else { throw SecureChannelError.closed }
        guard case .sendThenEstablished(let m3, var a) = try initiator.receive(m2, now: now) else {
            throw SecureChannelError.closed
        }
        guard case .established(var b) = try responder.receive(m3, now: now) else { throw SecureChannelError.closed }
        #expect(a.peer.identifier == bob.identity.identifier)
        #expect(b.peer.identifier == alice.identity.identifier)
        #expect(a.handshakeHash == b.handshakeHash)
        let ciphertext = try a.encryptor.encrypt([42])
        #expect(try b.decryptor.decrypt(ciphertext).plaintext == [42])
        let back = try b.encryptor.encrypt([43])
        #expect(try a.decryptor.decrypt(back).plaintext == [43])
        // msg2 is 32 + 48 + payload + 16; with a one-change Ed25519 identity and no credentials the payload is
        // 1 + 128 + 193 + 1 = 323 bytes (spec §5.10).
        #expect(m2.count == 32 + 48 + 323 + 16)
        #expect(m3.count == 48 + 323 + 16)
        #expect(initiator.isFinished && responder.isFinished)
    }

    @Test func attestedKeyMustMatchTheNoiseStaticKey() throws {
        let alice = try SecureChannelCredentials.ephemeral()
        var bob = try SecureChannelCredentials.ephemeral()
        // Bob presents an attestation for a different X25519 key than the one he uses in Noise.
        bob.attestation = try SecureChannelCredentials.ephemeral().attestation
        var initiator = try SecureChannelHandshake(role: .initiator, local: alice, trust: TrustContext())
        var responder = try SecureChannelHandshake(role: .responder, local: bob, trust: TrustContext())
        let now = currentTimestamp()
        guard case .send(let m2) = try responder.receive(try initiator.start(), now: now) else { throw SecureChannelError.closed }
        #expect(throws: SecureChannelError.self) { _ = try initiator.receive(m2, now: now) }
        #expect(initiator.isFinished)
    }
}
