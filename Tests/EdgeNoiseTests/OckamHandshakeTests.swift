// EdgeNoiseTests/OckamHandshake: Ockam's own XX vectors and the Ockam profile (name, reversed split).
import EdgeCrypto
import EdgeNoise
import EdgeTestSupport
import Testing

@Suite("Ockam handshake", .cpuBound)
struct OckamHandshakeTests {
    static let file = "ockam/ockam-kat.json"

    @Test("noise_xx_core runs from ockam-kat.json: msg1/msg2/msg3 bytes exact")
    func ockamCoreVectors() throws {
        let root = try JSONObject(try TestData.vectorJSON(Self.file), Self.file)
        let core = try root.object("noise_xx_core")
        let paddedName = try core.bytes("protocol_name_padded_hex")
        #expect(paddedName == Array("Noise_XX_25519_AESGCM_SHA256".utf8) + [0, 0, 0, 0])
        let runs = try core.objects("runs")
        var expectedMessages = 0, checkedMessages = 0

        // The padded name and the unpadded one must give identical bytes (Noise §5.2 pads names ≤ 32 bytes).
        let names = [paddedName, Array("Noise_XX_25519_AESGCM_SHA256".utf8)]
        for (runIndex, run) in runs.enumerated() {
            let payloads = try run.strings("payloads").map { [UInt8](hex: $0) }
            #expect(payloads.count == 3)
            let present = ["msg1", "msg2", "msg3"].filter { run.has($0) }
            expectedMessages += present.count
            for (nameIndex, name) in names.enumerated() {
                let noiseProtocol = NoiseProtocol(name: name, pattern: .xx, cipher: .aes256GCM, splitOrder: .reversed)
                var initiator = try HandshakeState(
                    protocol: noiseProtocol, role: .initiator, prologue: [],
                    staticKey: secret(try core.bytes("initiator_static")),
                    ephemeralKey: secret(try core.bytes("initiator_ephemeral"))
                )
                var responder = try HandshakeState(
                    protocol: noiseProtocol, role: .responder, prologue: [],
                    staticKey: secret(try core.bytes("responder_static")),
                    ephemeralKey: secret(try core.bytes("responder_ephemeral"))
                )
                let msg1 = try initiator.writeMessage(payload: payloads[0])
                #expect(try responder.readMessage(msg1) == payloads[0])
                let msg2 = try responder.writeMessage(payload: payloads[1])
                #expect(try initiator.readMessage(msg2) == payloads[1])
                let msg3 = try initiator.writeMessage(payload: payloads[2])
                #expect(try responder.readMessage(msg3) == payloads[2])
                for (key, produced) in [("msg1", msg1), ("msg2", msg2), ("msg3", msg3)] where run.has(key) {
                    let expected = try run.bytes(key)
                    #expect(produced.hexString == expected.hexString, "run \(runIndex) \(key) name #\(nameIndex)")
                    if nameIndex == 0 && produced == expected { checkedMessages += 1 }
                }
                #expect(initiator.handshakeHash == responder.handshakeHash)
            }
        }
        print(
            "ockam noise_xx_core: \(runs.count) runs, \(checkedMessages) of \(expectedMessages) message bytes checked")
        #expect(runs.count == 2)
        #expect(expectedMessages > 0)
        #expect(checkedMessages == expectedMessages)
    }

    @Test("Ockam profile: 32-byte name gives h = ck = name; initial h after the empty prologue is SHA-256(name)")
    func ockamProfileInitialisation() throws {
        let name = Array("OCKAM_XX_25519_AES256_GCM_SHA256".utf8)
        #expect(name.count == 32)
        #expect(NoiseProtocol.ockam.name == name)
        #expect(NoiseProtocol.ockam.pattern == .xx)
        #expect(NoiseProtocol.ockam.cipher == .aes256GCM)
        #expect(NoiseProtocol.ockam.splitOrder == .reversed)
        #expect(SymmetricState(protocolName: name, cipher: .aes256GCM).getHandshakeHash() == name)
        let state = try HandshakeState(protocol: .ockam, role: .initiator, staticKey: X25519.generatePrivateKey())
        #expect(state.handshakeHash == SHA256.hash(name))
        // A name longer than 32 bytes is hashed instead (Noise §5.2).
        let long = Array("Noise_XXpsk3_25519_ChaChaPoly_SHA256".utf8)
        #expect(SymmetricState(protocolName: long, cipher: .chaCha20Poly1305).getHandshakeHash() == SHA256.hash(long))
    }

    @Test("Ockam profile: full handshake, reversed split proven against an independent key schedule")
    func ockamReversedSplit() throws {
        let initiatorStatic = seededBytes(32, seed: 1), initiatorEphemeral = seededBytes(32, seed: 2)
        let responderStatic = seededBytes(32, seed: 3), responderEphemeral = seededBytes(32, seed: 4)
        let identity2 = Array("responder identity and credentials".utf8)
        let identity3 = Array("initiator identity and credentials".utf8)

        var initiator = try HandshakeState(
            protocol: .ockam, role: .initiator, staticKey: secret(initiatorStatic),
            ephemeralKey: secret(initiatorEphemeral)
        )
        var responder = try HandshakeState(
            protocol: .ockam, role: .responder, staticKey: secret(responderStatic),
            ephemeralKey: secret(responderEphemeral)
        )
        let msg1 = try initiator.writeMessage()
        #expect(msg1.count == 32, "msg1 = e only (empty payload in clear)")
        #expect(try responder.readMessage(msg1) == [])
        let msg2 = try responder.writeMessage(payload: identity2)
        #expect(msg2.count == 32 + 48 + identity2.count + 16)
        #expect(try initiator.readMessage(msg2) == identity2)
        #expect(initiator.remoteStaticPublicKey == (try X25519.publicKey(privateKey: responderStatic)))
        let msg3 = try initiator.writeMessage(payload: identity3)
        #expect(msg3.count == 48 + identity3.count + 16)
        #expect(try responder.readMessage(msg3) == identity3)

        var initiatorKeys = try initiator.split()
        var responderKeys = try responder.split()
        #expect(initiatorKeys.handshakeHash == responderKeys.handshakeHash)
        #expect(initiatorKeys.remoteStaticPublicKey == (try X25519.publicKey(privateKey: responderStatic)))
        #expect(responderKeys.remoteStaticPublicKey == (try X25519.publicKey(privateKey: initiatorStatic)))

        // Independent key schedule: ck only depends on the DH outputs (ee, es, se), starting from ck = name.
        let ee = try X25519.sharedSecret(
            privateKey: initiatorEphemeral, publicKey: try X25519.publicKey(privateKey: responderEphemeral))
        let es = try X25519.sharedSecret(
            privateKey: initiatorEphemeral, publicKey: try X25519.publicKey(privateKey: responderStatic))
        let se = try X25519.sharedSecret(
            privateKey: initiatorStatic, publicKey: try X25519.publicKey(privateKey: responderEphemeral))
        var ck: any KeyMaterial = NoiseProtocol.ockam.name
        for dh in [ee, es, se] {
            ck = try HKDF.noise(chainingKey: ck, inputKeyMaterial: dh, outputs: 2)[0]
        }
        let split = try HKDF.noise(chainingKey: ck, inputKeyMaterial: [UInt8](), outputs: 2)
        let k1 = split[0].withUnsafeBytes { Array($0) }, k2 = split[1].withUnsafeBytes { Array($0) }
        #expect(k1 != k2)

        // The initiator sends with k2 (Ockam), the responder with k1.
        let plaintext = Array("hello ockam".utf8)
        let fromInitiator = try initiatorKeys.sender.encryptWithAd([], plaintext: plaintext)
        #expect(fromInitiator == (try AES256GCM.seal(key: k2, nonce: aesNonce(0), aad: [], plaintext: plaintext)))
        #expect(throws: CryptoError.authenticationFailure) {
            try AES256GCM.open(key: k1, nonce: aesNonce(0), aad: [], ciphertext: fromInitiator)
        }
        #expect(try responderKeys.receiver.decryptWithAd([], ciphertext: fromInitiator) == plaintext)
        let fromResponder = try responderKeys.sender.encryptWithAd([], plaintext: plaintext)
        #expect(fromResponder == (try AES256GCM.seal(key: k1, nonce: aesNonce(0), aad: [], plaintext: plaintext)))
        #expect(try initiatorKeys.receiver.decryptWithAd([], ciphertext: fromResponder) == plaintext)

        // The same handshake with the standard split gives the opposite assignment.
        let standard = NoiseProtocol(
            name: NoiseProtocol.ockam.name, pattern: .xx, cipher: .aes256GCM, splitOrder: .standard)
        var standardInitiator = try HandshakeState(
            protocol: standard, role: .initiator, staticKey: secret(initiatorStatic),
            ephemeralKey: secret(initiatorEphemeral))
        var standardResponder = try HandshakeState(
            protocol: standard, role: .responder, staticKey: secret(responderStatic),
            ephemeralKey: secret(responderEphemeral))
        _ = try standardResponder.readMessage(try standardInitiator.writeMessage())
        _ = try standardInitiator.readMessage(try standardResponder.writeMessage(payload: identity2))
        _ = try standardResponder.readMessage(try standardInitiator.writeMessage(payload: identity3))
        var standardKeys = try standardInitiator.split()
        #expect(standardKeys.handshakeHash == initiatorKeys.handshakeHash)
        let standardCiphertext = try standardKeys.sender.encryptWithAd([], plaintext: plaintext)
        #expect(standardCiphertext == (try AES256GCM.seal(key: k1, nonce: aesNonce(0), aad: [], plaintext: plaintext)))
    }

    @Test("Ockam profile: transport round trips through OckamEncryptor/OckamDecryptor built from the split")
    func ockamTransportRoundTrips() throws {
        var initiator = try HandshakeState(protocol: .ockam, role: .initiator, staticKey: X25519.generatePrivateKey())
        var responder = try HandshakeState(protocol: .ockam, role: .responder, staticKey: X25519.generatePrivateKey())
        _ = try responder.readMessage(try initiator.writeMessage())
        _ = try initiator.readMessage(try responder.writeMessage(payload: [1, 2, 3]))
        _ = try responder.readMessage(try initiator.writeMessage(payload: [4, 5, 6]))
        let initiatorKeys = try initiator.split(), responderKeys = try responder.split()

        var initiatorOut = try OckamEncryptor(initiatorKeys.sender)
        var initiatorIn = try OckamDecryptor(initiatorKeys.receiver)
        var responderOut = try OckamEncryptor(responderKeys.sender)
        var responderIn = try OckamDecryptor(responderKeys.receiver)
        for n in 0..<100 {
            let request = Array("request \(n)".utf8), reply = Array("reply \(n)".utf8)
            let wireRequest = try initiatorOut.encrypt(request)
            #expect(wireRequest.count == 8 + request.count + 16)
            #expect(Array(wireRequest[..<8]) == Array(aesNonce(UInt64(n))[4...]))
            let received = try responderIn.decrypt(wireRequest)
            #expect(received.nonce == UInt64(n) && received.plaintext == request)
            let answer = try initiatorIn.decrypt(try responderOut.encrypt(reply))
            #expect(answer.nonce == UInt64(n) && answer.plaintext == reply)
        }
        // Ockam's pinned Close plaintext round-trips too.
        let close: [UInt8] = [0x82, 0x82, 0x02, 0x80, 0x40]
        #expect(try responderIn.decrypt(try initiatorOut.encrypt(close)).plaintext == close)
        // A cipher state that was already used cannot seed an Ockam encryptor.
        var used = CipherState(cipher: .aes256GCM)
        #expect(noiseError { _ = try OckamEncryptor(used) }?.isWrongState == true, "no key")
        try used.initializeKey(X25519.generatePrivateKey())
        _ = try used.encryptWithAd([], plaintext: [])
        #expect(noiseError { _ = try OckamEncryptor(used) }?.isWrongState == true)
    }
}
