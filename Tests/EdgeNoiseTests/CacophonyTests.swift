// EdgeNoiseTests/Cacophony: every vector of the shared cacophony file, both roles, every message.
import EdgeCrypto
import EdgeNoise
import EdgeTestSupport
import Testing

@Suite("Cacophony vectors", .cpuBound)
struct CacophonyTests {
    static let file = "noise/cacophony-xx-nn-sha256.json"

    /// Patterns this module implements, selected by name here (independently of `NoiseProtocol(parsing:)`).
    static let supportedPatterns: Set<String> = ["XX", "NN", "XXpsk3"]

    @Test("All supported protocols: handshake messages, handshake hash, transport messages (standard split)")
    func allVectors() throws {
        let root = try JSONObject(try TestData.vectorJSON(Self.file), Self.file)
        let vectors = try root.objects("vectors")
        var protocolsRun = 0, messagesChecked = 0, hashesChecked = 0
        var skipped: [String] = []
        var expectedProtocols = 0, expectedMessages = 0

        for vector in vectors {
            let name = try vector.string("protocol_name")
            let messages = try vector.objects("messages")
            let patternName = name.split(separator: "_").dropFirst().first.map(String.init) ?? ""
            guard Self.supportedPatterns.contains(patternName) else {
                skipped.append("\(name): pattern not implemented")
                continue
            }
            expectedProtocols += 1
            expectedMessages += messages.count
            let noiseProtocol = try NoiseProtocol(parsing: name)
            #expect(noiseProtocol.splitOrder == .standard)
            let (checked, hashOK) = try run(vector, noiseProtocol, messages)
            messagesChecked += checked
            hashesChecked += hashOK ? 1 : 0
            protocolsRun += 1
        }

        let reasons = skipped.isEmpty ? "" : " (\(skipped.joined(separator: "; ")))"
        print(
            "cacophony: \(protocolsRun) protocols, \(messagesChecked) messages checked, \(skipped.count) skipped\(reasons)"
        )
        #expect(vectors.count > 0)
        #expect(protocolsRun > 0)
        #expect(protocolsRun == expectedProtocols)
        #expect(hashesChecked == expectedProtocols)
        #expect(messagesChecked == expectedMessages)
        #expect(protocolsRun + skipped.count == vectors.count)
        #expect(skipped.isEmpty, "every protocol in the file is supported")
    }

    /// Runs one vector with both roles; returns the number of messages whose ciphertext and payload matched, and
    /// whether both sides produced the expected handshake hash.
    private func run(
        _ vector: JSONObject, _ noiseProtocol: NoiseProtocol, _ messages: [JSONObject]
    ) throws -> (Int, Bool) {
        let name = noiseProtocol.description
        func psk(_ key: String) throws -> SecretKey? {
            guard vector.has(key) else { return nil }
            let list = try vector.strings(key)
            #expect(list.count <= 1, "\(name): one psk expected")
            return list.first.map { secret([UInt8](hex: $0)) }
        }
        let initiatorStatic = try vector.optionalBytes("init_static")
        let responderStatic = try vector.optionalBytes("resp_static")
        var initiator = try HandshakeState(
            protocol: noiseProtocol, role: .initiator, prologue: try vector.bytes("init_prologue"),
            staticKey: initiatorStatic.map(secret), ephemeralKey: secret(try vector.bytes("init_ephemeral")),
            presharedKey: try psk("init_psks")
        )
        var responder = try HandshakeState(
            protocol: noiseProtocol, role: .responder, prologue: try vector.bytes("resp_prologue"),
            staticKey: responderStatic.map(secret), ephemeralKey: secret(try vector.bytes("resp_ephemeral")),
            presharedKey: try psk("resp_psks")
        )

        var checked = 0
        let handshakeCount = noiseProtocol.pattern.messageCount
        #expect(messages.count >= handshakeCount, "\(name): fewer messages than the pattern")
        for (index, message) in messages.prefix(handshakeCount).enumerated() {
            let payload = try message.bytes("payload"), expected = try message.bytes("ciphertext")
            let initiatorSends = index % 2 == 0
            #expect((initiatorSends ? initiator : responder).nextStep == .writeMessage)
            let written: [UInt8], read: [UInt8]
            if initiatorSends {
                written = try initiator.writeMessage(payload: payload)
                read = try responder.readMessage(written)
            } else {
                written = try responder.writeMessage(payload: payload)
                read = try initiator.readMessage(written)
            }
            #expect(written.hexString == expected.hexString, "\(name) handshake message \(index)")
            #expect(read == payload, "\(name) handshake payload \(index)")
            if written == expected && read == payload { checked += 1 }
        }
        #expect(initiator.nextStep == .split && responder.nextStep == .split)

        var initiatorKeys = try initiator.split()
        var responderKeys = try responder.split()
        let expectedHash = try vector.bytes("handshake_hash")
        #expect(initiatorKeys.handshakeHash.hexString == expectedHash.hexString, "\(name) initiator h")
        #expect(responderKeys.handshakeHash.hexString == expectedHash.hexString, "\(name) responder h")
        let hashOK = initiatorKeys.handshakeHash == expectedHash && responderKeys.handshakeHash == expectedHash
        #expect(
            initiatorKeys.remoteStaticPublicKey == (try responderStatic.map { try X25519.publicKey(privateKey: $0) }))
        #expect(
            responderKeys.remoteStaticPublicKey == (try initiatorStatic.map { try X25519.publicKey(privateKey: $0) }))
        #expect(initiator.nextStep == .finished && responder.nextStep == .finished)

        // Transport messages keep alternating: message i is sent by the initiator when i is even.
        for (index, message) in messages.enumerated().dropFirst(handshakeCount) {
            let payload = try message.bytes("payload"), expected = try message.bytes("ciphertext")
            let written: [UInt8], read: [UInt8]
            if index % 2 == 0 {
                written = try initiatorKeys.sender.encryptWithAd([], plaintext: payload)
                read = try responderKeys.receiver.decryptWithAd([], ciphertext: written)
            } else {
                written = try responderKeys.sender.encryptWithAd([], plaintext: payload)
                read = try initiatorKeys.receiver.decryptWithAd([], ciphertext: written)
            }
            #expect(written.hexString == expected.hexString, "\(name) transport message \(index)")
            #expect(read == payload, "\(name) transport payload \(index)")
            if written == expected && read == payload { checked += 1 }
        }
        return (checked, hashOK)
    }
}
