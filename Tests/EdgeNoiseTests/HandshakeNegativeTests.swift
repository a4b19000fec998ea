// EdgeNoiseTests/HandshakeNegative: tampering, turn order, weak keys, sizes, bad parameters.
import EdgeCrypto
import EdgeNoise
import EdgeTestSupport
import Testing

/// A pair of Ockam-profile handshake states with fixed keys, and helpers to drive them.
private struct Pair {
    var initiator: HandshakeState
    var responder: HandshakeState

    init(protocol noiseProtocol: NoiseProtocol = .ockam) throws {
        initiator = try HandshakeState(
            protocol: noiseProtocol, role: .initiator, staticKey: secret(seededBytes(32, seed: 11)),
            ephemeralKey: secret(seededBytes(32, seed: 12)))
        responder = try HandshakeState(
            protocol: noiseProtocol, role: .responder, staticKey: secret(seededBytes(32, seed: 13)),
            ephemeralKey: secret(seededBytes(32, seed: 14)))
    }
}

/// Flips one bit of byte `index`.
private func flipping(_ bytes: [UInt8], at index: Int) -> [UInt8] {
    var copy = bytes
    copy[index] ^= 0x01
    return copy
}

@Suite("Handshake negative cases", .cpuBound)
struct HandshakeNegativeTests {
    @Test("Tampered msg2 (every region) → decryptionFailed, state unchanged, genuine msg2 still accepted")
    func tamperedMessage2() throws {
        var pair = try Pair()
        _ = try pair.responder.readMessage(try pair.initiator.writeMessage())
        let msg2 = try pair.responder.writeMessage(payload: Array("identity 2".utf8))
        let hashBefore = pair.initiator.handshakeHash
        // re (changes ee), encrypted s, its tag, the encrypted payload, the payload tag.
        for index in [0, 31, 32, 63, 79, 80, msg2.count - 1] {
            let error = noiseError("byte \(index)") { _ = try pair.initiator.readMessage(flipping(msg2, at: index)) }
            #expect(error == .decryptionFailed, "byte \(index)")
            #expect(pair.initiator.nextStep == .readMessage)
            #expect(pair.initiator.handshakeHash == hashBefore)
            #expect(pair.initiator.remoteStaticPublicKey == nil)
        }
        #expect(noiseError { _ = try pair.initiator.readMessage(Array(msg2.dropLast())) } == .decryptionFailed)
        #expect(try pair.initiator.readMessage(msg2) == Array("identity 2".utf8))
        _ = try pair.responder.readMessage(try pair.initiator.writeMessage(payload: [3]))
        #expect(try pair.initiator.split().handshakeHash == (try pair.responder.split().handshakeHash))
    }

    @Test("Tampered msg3 → decryptionFailed, state unchanged, genuine msg3 still accepted")
    func tamperedMessage3() throws {
        var pair = try Pair()
        _ = try pair.responder.readMessage(try pair.initiator.writeMessage())
        _ = try pair.initiator.readMessage(try pair.responder.writeMessage(payload: [2]))
        let msg3 = try pair.initiator.writeMessage(payload: Array("identity 3".utf8))
        let hashBefore = pair.responder.handshakeHash
        for index in [0, 31, 32, 47, 48, msg3.count - 1] {
            let error = noiseError("byte \(index)") { _ = try pair.responder.readMessage(flipping(msg3, at: index)) }
            #expect(error == .decryptionFailed, "byte \(index)")
            #expect(pair.responder.nextStep == .readMessage)
            #expect(pair.responder.handshakeHash == hashBefore)
            #expect(pair.responder.remoteStaticPublicKey == nil)
            #expect(noiseError { _ = try pair.responder.split() }?.isWrongState == true)
        }
        #expect(try pair.responder.readMessage(msg3) == Array("identity 3".utf8))
        #expect(pair.responder.nextStep == .split)
    }

    @Test("Calls out of turn → wrongState, without changing anything")
    func wrongTurns() throws {
        var pair = try Pair()
        #expect(pair.initiator.nextStep == .writeMessage && pair.responder.nextStep == .readMessage)
        #expect(
            noiseError { _ = try pair.initiator.readMessage([UInt8](repeating: 9, count: 96)) }?.isWrongState == true)
        #expect(noiseError { _ = try pair.responder.writeMessage() }?.isWrongState == true)
        #expect(noiseError { _ = try pair.initiator.split() }?.isWrongState == true)
        let msg1 = try pair.initiator.writeMessage()
        #expect(noiseError { _ = try pair.initiator.writeMessage() }?.isWrongState == true)
        _ = try pair.responder.readMessage(msg1)
        #expect(noiseError { _ = try pair.responder.readMessage(msg1) }?.isWrongState == true)
        let msg2 = try pair.responder.writeMessage()
        _ = try pair.initiator.readMessage(msg2)
        let msg3 = try pair.initiator.writeMessage()
        _ = try pair.responder.readMessage(msg3)
        #expect(pair.initiator.isHandshakeComplete && pair.responder.isHandshakeComplete)
        #expect(noiseError { _ = try pair.initiator.writeMessage() }?.isWrongState == true)
        #expect(noiseError { _ = try pair.responder.readMessage(msg3) }?.isWrongState == true)
        let hash = pair.initiator.handshakeHash
        _ = try pair.initiator.split()
        #expect(pair.initiator.nextStep == .finished)
        #expect(pair.initiator.handshakeHash == hash)
        #expect(noiseError { _ = try pair.initiator.split() }?.isWrongState == true)
        #expect(noiseError { _ = try pair.initiator.writeMessage() }?.isWrongState == true)
        #expect(noiseError { _ = try pair.initiator.readMessage(msg2) }?.isWrongState == true)
    }

    @Test("All-zero remote ephemeral → weakPublicKey (initiator reading msg2; responder writing msg2)")
    func weakRemoteEphemeral() throws {
        var pair = try Pair()
        _ = try pair.responder.readMessage(try pair.initiator.writeMessage())
        let msg2 = try pair.responder.writeMessage()
        var forged = msg2
        forged.replaceSubrange(0..<32, with: [UInt8](repeating: 0, count: 32))
        #expect(noiseError { _ = try pair.initiator.readMessage(forged) } == .weakPublicKey)
        #expect(pair.initiator.nextStep == .readMessage)
        _ = try pair.initiator.readMessage(msg2)  // still works

        var responder = try Pair().responder
        _ = try responder.readMessage([UInt8](repeating: 0, count: 32))  // no DH in msg1: accepted
        #expect(noiseError { _ = try responder.writeMessage() } == .weakPublicKey)
        #expect(responder.nextStep == .writeMessage)

        // Another low-order point (u = 1) is rejected the same way.
        var responder2 = try Pair().responder
        _ = try responder2.readMessage([1] + [UInt8](repeating: 0, count: 31))
        #expect(noiseError { _ = try responder2.writeMessage() } == .weakPublicKey)
    }

    @Test("Handshake messages over 65535 bytes are rejected; exactly 65535 is accepted")
    func oversizeMessages() throws {
        var pair = try Pair()
        #expect(
            noiseError { _ = try pair.initiator.writeMessage(payload: [UInt8](repeating: 1, count: 65536)) }
                == .messageTooLong)
        // msg1 = e (32) ‖ payload in clear: 65504 bytes of payload make 65536.
        #expect(
            noiseError { _ = try pair.initiator.writeMessage(payload: [UInt8](repeating: 1, count: 65504)) }
                == .messageTooLong)
        #expect(pair.initiator.nextStep == .writeMessage)
        #expect(
            noiseError { _ = try pair.responder.readMessage([UInt8](repeating: 1, count: 65536)) } == .messageTooLong)
        let largest = try pair.initiator.writeMessage(payload: [UInt8](repeating: 1, count: 65503))
        #expect(largest.count == 65535)
        #expect(try pair.responder.readMessage(largest).count == 65503)
        // msg2 = e (32) ‖ s (48) ‖ payload + tag (16): 65439 bytes of payload make 65535, one more is too long.
        #expect(
            noiseError { _ = try pair.responder.writeMessage(payload: [UInt8](repeating: 2, count: 65440)) }
                == .messageTooLong)
        let msg2 = try pair.responder.writeMessage(payload: [UInt8](repeating: 2, count: 65439))
        #expect(msg2.count == 65535)
        #expect(try pair.initiator.readMessage(msg2).count == 65439)
    }

    @Test("Truncated handshake messages → invalidMessage")
    func truncatedMessages() throws {
        var pair = try Pair()
        let msg1 = try pair.initiator.writeMessage()
        #expect(noiseError { _ = try pair.responder.readMessage(Array(msg1.prefix(31))) }?.isInvalidMessage == true)
        _ = try pair.responder.readMessage(msg1)
        let msg2 = try pair.responder.writeMessage()
        for length in [0, 31, 32, 79, 80, 95] {
            let error = noiseError("length \(length)") {
                _ = try pair.initiator.readMessage(Array(msg2.prefix(length)))
            }
            #expect(error?.isInvalidMessage == true, "length \(length)")
        }
        #expect(pair.initiator.nextStep == .readMessage)
        _ = try pair.initiator.readMessage(msg2)
    }

    @Test("Missing or wrong-length keys, unsupported names")
    func badParameters() throws {
        #expect(
            noiseError { _ = try HandshakeState(protocol: .ockam, role: .initiator) }
                == .invalidKey("pattern XX needs a static key"))
        #expect(
            noiseError {
                _ = try HandshakeState(
                    protocol: .ockam, role: .responder, staticKey: secret([UInt8](repeating: 1, count: 31)))
            } == .invalidKey("static key must be 32 bytes"))
        #expect(
            noiseError {
                _ = try HandshakeState(
                    protocol: .ockam, role: .responder, staticKey: X25519.generatePrivateKey(),
                    ephemeralKey: secret([1, 2, 3]))
            } == .invalidKey("ephemeral key must be 32 bytes"))
        #expect(
            noiseError {
                _ = try HandshakeState(
                    protocol: .ockam, role: .responder, staticKey: X25519.generatePrivateKey(), staticPublicKey: [1, 2])
            } == .invalidKey("static public key must be 32 bytes"))
        let psk3 = try NoiseProtocol(parsing: "Noise_XXpsk3_25519_AESGCM_SHA256")
        #expect(
            noiseError {
                _ = try HandshakeState(protocol: psk3, role: .initiator, staticKey: X25519.generatePrivateKey())
            } == .invalidKey("pattern XXpsk3 needs a pre-shared key"))
        // NN needs no static key.
        _ = try HandshakeState(
            protocol: try NoiseProtocol(parsing: "Noise_NN_25519_ChaChaPoly_SHA256"), role: .initiator)

        for name in [
            "Noise_IK_25519_AESGCM_SHA256", "Noise_XX_448_AESGCM_SHA256", "Noise_XX_25519_AESGCM_BLAKE2s",
            "Noise_XX_25519_AESGCM", "OCKAM_XX_25519_AES256_GCM_SHA256", "Noise_XX_25519_Foo_SHA256",
        ] {
            let error = noiseError(Comment(rawValue: name)) { _ = try NoiseProtocol(parsing: name) }
            if case .unsupportedProtocol = error {} else { Issue.record("\(name): \(String(describing: error))") }
        }
        let parsed = try NoiseProtocol(parsing: "Noise_XX_25519_ChaChaPoly_SHA256", splitOrder: .reversed)
        #expect(parsed.pattern == .xx && parsed.cipher == .chaCha20Poly1305 && parsed.splitOrder == .reversed)
    }

    @Test("Random ephemerals: two handshakes with the same static keys give different transcripts")
    func randomEphemerals() throws {
        func transcript() throws -> [UInt8] {
            var initiator = try HandshakeState(
                protocol: .ockam, role: .initiator, staticKey: secret(seededBytes(32, seed: 5)))
            var responder = try HandshakeState(
                protocol: .ockam, role: .responder, staticKey: secret(seededBytes(32, seed: 6)))
            let msg1 = try initiator.writeMessage()
            _ = try responder.readMessage(msg1)
            _ = try initiator.readMessage(try responder.writeMessage())
            _ = try responder.readMessage(try initiator.writeMessage())
            let keys = try initiator.split()
            #expect(keys.handshakeHash == (try responder.split().handshakeHash))
            return msg1 + keys.handshakeHash
        }
        #expect(try transcript() != (try transcript()))
    }

    @Test("Error descriptions carry no key material")
    func descriptions() {
        let all: [NoiseError] = [
            .decryptionFailed, .invalidMessage("x"), .messageTooLong, .nonceExhausted, .wrongState("y"), .weakPublicKey,
            .invalidKey("z"), .unsupportedProtocol("w"), .replayedNonce, .nonceOutOfWindow, .internalFailure,
        ]
        for error in all { #expect(error.description.hasPrefix("Noise: ")) }
    }

    /// A static public key the caller already has (the credentials keep it) gives exactly the handshake the computed
    /// one gives.
    @Test func aKnownStaticPublicKeyGivesTheSameHandshake() throws {
        let staticKey = secret(seededBytes(32, seed: 11))
        let publicKey = try X25519.publicKey(privateKey: staticKey)
        func messages(known: [UInt8]?) throws -> [[UInt8]] {
            var initiator = try HandshakeState(
                protocol: .ockam, role: .initiator, staticKey: staticKey, staticPublicKey: known,
                ephemeralKey: secret(seededBytes(32, seed: 12)))
            var responder = try HandshakeState(
                protocol: .ockam, role: .responder, staticKey: secret(seededBytes(32, seed: 13)),
                ephemeralKey: secret(seededBytes(32, seed: 14)))
            let m1 = try initiator.writeMessage()
            _ = try responder.readMessage(m1)
            let m2 = try responder.writeMessage()
            _ = try initiator.readMessage(m2)
            let m3 = try initiator.writeMessage()
            _ = try responder.readMessage(m3)
            return [m1, m2, m3]
        }
        #expect(try messages(known: publicKey) == messages(known: nil))
    }
}
