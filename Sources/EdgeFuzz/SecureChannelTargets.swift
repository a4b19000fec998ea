// Fuzz targets for secure channels (spec §5): encrypted-message plaintexts and the handshake state machine.
import EdgeCrypto
import EdgeIdentity
import EdgeNoise
import EdgeRouting
import EdgeSecureChannel

extension FuzzTargets {
    /// A plaintext that decodes re-encodes (empty padding) to bytes that decode to the same variant and fields, and
    /// that encoding is a fixed point. Close always encodes to Ockam's `82 82 02 80 40`.
    static func secureChannelMessage(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        guard let message = try? SecureChannelMessage(decoding: input) else { return }
        let encoded = message.encode()
        guard let again = try? SecureChannelMessage(decoding: encoded) else {
            throw FuzzInvariantViolation(description: "re-encoded secure channel message does not decode")
        }
        try check(sameMessage(message, again), "secure channel message round trip changed the message")
        try check(again.encode() == encoded, "secure channel message encoding is not a fixed point")
        if case .close = message { try check(encoded == [0x82, 0x82, 0x02, 0x80, 0x40], "Close does not encode as Ockam's") }
        if case .refreshCredentials(let refresh) = message {
            try check(refresh.identity.encodedHistory.count <= input.count, "refresh history larger than the input")
            try check(refresh.credentials.count <= IdentityLimits.maxCredentials, "more credentials than the limit")
        }
    }

    static func sameMessage(_ a: SecureChannelMessage, _ b: SecureChannelMessage) -> Bool {
        switch (a, b) {
        case (.payload(let o1, let r1, let p1), .payload(let o2, let r2, let p2)):
            return o1 == o2 && r1 == r2 && p1 == p2
        case (.refreshCredentials(let x), .refreshCredentials(let y)):
            return x.identity == y.identity && x.credentials == y.credentials
        case (.close, .close):
            return true
        default:
            return false
        }
    }

    // MARK: Handshake, responder side

    /// The responder, three ways:
    /// 1. the input as message 1 to a fresh responder: throws (leaving the machine finished), or returns
    ///    `.send(m2)` with `m2` ≤ 65535 bytes and exactly `32 + 48 + payload + 16` long; the genuine message 1
    ///    gives the genuine message 2;
    /// 2. the input as message 3 after the genuine message 1: must throw unless it is byte-for-byte the genuine
    ///    message 3 (random bytes cannot authenticate);
    /// 3. the input as the *payload* of a message 3 encrypted by a genuine Noise initiator with the initiator's
    ///    keys: identity/attestation/credential verification on fuzzer-controlled CBOR. It may only establish the
    ///    channel for the initiator's identity with the authority's credential (no forgery), or refuse it by
    ///    trust policy for the initiator's identity; when it establishes, transport keys must match the
    ///    initiator's both ways.
    static func handshakeResponder(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        let transcript = FuzzFixtures.transcript
        let payloadLength = transcript.responderPayload.count

        var fresh = FuzzFixtures.pristineResponder
        do {
            let output = try fresh.receive(input, now: FuzzFixtures.now)
            guard case .send(let m2) = output else {
                throw FuzzInvariantViolation(description: "message 1 produced \(output) instead of .send")
            }
            try check(input.count >= 32, "message 1 shorter than an ephemeral key was accepted")
            try check(input.count <= HandshakeState.maximumMessageByteCount, "message 1 over 65535 bytes was accepted")
            try check(m2.count <= HandshakeState.maximumMessageByteCount, "message 2 is \(m2.count) bytes (> 65535)")
            try check(m2.count == 32 + 48 + payloadLength + 16, "message 2 has length \(m2.count)")
            try check(!fresh.isFinished, "responder finished after message 1")
            if input == transcript.message1 { try check(m2 == transcript.message2, "genuine message 1 gave another message 2") }
        } catch let violation as FuzzInvariantViolation {
            throw violation
        } catch {
            try check(fresh.isFinished, "responder not finished after a failed message 1")
        }

        var awaiting3 = transcript.responderAwaiting3
        if let output = try? awaiting3.receive(input, now: FuzzFixtures.now) {
            try check(input == transcript.message3, "responder accepted a forged message 3 (\(input.count) bytes): \(output)")
            guard case .established(let channel) = output else {
                throw FuzzInvariantViolation(description: "genuine message 3 gave \(output)")
            }
            try check(channel.peer.identifier == FuzzFixtures.initiator.identifier, "genuine message 3: wrong peer")
        } else {
            try check(input != transcript.message3, "genuine message 3 rejected")
            try check(awaiting3.isFinished, "responder not finished after a failed message 3")
        }

        try responderPayload3(input)
    }

    private static func responderPayload3(_ payload: [UInt8]) throws(FuzzInvariantViolation) {
        let transcript = FuzzFixtures.transcript
        var noise = transcript.noiseInitiatorAfter2
        guard let m3 = try? noise.writeMessage(payload: payload) else {
            try check(payload.count > HandshakeState.maximumMessageByteCount - 64, "Noise refused a short payload 3")
            return
        }
        try check(m3.count <= HandshakeState.maximumMessageByteCount, "message 3 is \(m3.count) bytes (> 65535)")
        try check(m3.count == 48 + payload.count + 16, "message 3 has length \(m3.count)")
        var responder = transcript.responderAwaiting3
        let output: SecureChannelHandshake.Output
        do throws(SecureChannelError) {
            output = try responder.receive(m3, now: FuzzFixtures.now)
        } catch {
            try check(payload != transcript.initiatorPayload, "genuine payload 3 rejected: \(error)")
            if case .trustPolicyRefused = error { throw FuzzInvariantViolation(description: "refusal thrown, not returned") }
            try check(responder.isFinished, "responder not finished after a failed payload 3")
            return
        }
        guard let keys = try? noise.split() else {
            throw FuzzInvariantViolation(description: "raw initiator cannot split after message 3")
        }
        guard let decoded = try? IdentityAndCredentials(decoding: payload) else {
            throw FuzzInvariantViolation(description: "responder accepted a payload 3 that does not decode")
        }
        let initiator = FuzzFixtures.initiator
        try check(decoded.identity.identifier == initiator.identifier, "payload 3 authenticated another identity (forgery)")
        try check(decoded.attestation.secureChannelKey == initiator.staticPublicKey, "attested key is not the Noise key")
        switch output {
        case .established(let channel):
            try check(channel.peer.identifier == initiator.identifier, "established with the wrong peer")
            try check(channel.peerIdentity == decoded.identity, "peer identity differs from the payload's")
            try checkAttributes(channel.peer)
            try check(
                channel.peer.attributes[FuzzFixtures.authority.identity.identifier] == FuzzFixtures.requiredAttribute,
                "established without the credential the trust policy requires")
            try check(channel.handshakeHash == keys.handshakeHash, "handshake hashes differ")
            try exchange(initiatorKeys: keys, responder: channel, sample: payload)
        case .refused(let error, let closeWith):
            guard case .trustPolicyRefused = error else {
                throw FuzzInvariantViolation(description: "refused with \(error)")
            }
            try check(responder.isFinished, "responder not finished after refusing")
            // The Close it sends must be readable by the initiator.
            var encryptor = closeWith
            var decryptor: OckamDecryptor
            do { decryptor = try OckamDecryptor(keys.receiver) } catch {
                throw FuzzInvariantViolation(description: "initiator receive keys: \(error)")
            }
            guard let close = try? encryptor.encrypt(SecureChannelMessage.close.encode()),
                let opened = try? decryptor.decrypt(close), case .close? = try? SecureChannelMessage(decoding: opened.plaintext)
            else { throw FuzzInvariantViolation(description: "refusal Close is not readable by the initiator") }
        default:
            throw FuzzInvariantViolation(description: "message 3 gave \(output)")
        }
    }

    // MARK: Handshake, initiator side

    /// The initiator after `start()`:
    /// 1. the input as message 2 must throw unless it is the genuine message 2 (which must give the genuine
    ///    message 3);
    /// 2. the input as the payload of a message 2 written by a genuine Noise responder: may only complete for the
    ///    responder's identity; message 3 then is ≤ 65535 bytes, carries the initiator's payload, and the
    ///    transport keys match the responder's both ways.
    static func handshakeInitiator(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        let transcript = FuzzFixtures.transcript
        var awaiting2 = transcript.initiatorAwaiting2
        if let output = try? awaiting2.receive(input, now: FuzzFixtures.now) {
            try check(input == transcript.message2, "initiator accepted a forged message 2 (\(input.count) bytes)")
            guard case .sendThenEstablished(let m3, let channel) = output else {
                throw FuzzInvariantViolation(description: "genuine message 2 gave \(output)")
            }
            try check(m3 == transcript.message3, "genuine message 2 gave another message 3")
            try check(channel.peer.identifier == FuzzFixtures.responder.identifier, "genuine message 2: wrong peer")
        } else {
            try check(input != transcript.message2, "genuine message 2 rejected")
            try check(awaiting2.isFinished, "initiator not finished after a failed message 2")
        }

        var noise = transcript.noiseResponderAfter1
        guard let m2 = try? noise.writeMessage(payload: input) else {
            try check(input.count > HandshakeState.maximumMessageByteCount - 96, "Noise refused a short payload 2")
            return
        }
        try check(m2.count <= HandshakeState.maximumMessageByteCount, "message 2 is \(m2.count) bytes (> 65535)")
        try check(m2.count == 32 + 48 + input.count + 16, "message 2 has length \(m2.count)")
        var initiator = transcript.initiatorAwaiting2
        let output: SecureChannelHandshake.Output
        do throws(SecureChannelError) {
            output = try initiator.receive(m2, now: FuzzFixtures.now)
        } catch {
            try check(input != transcript.responderPayload, "genuine payload 2 rejected: \(error)")
            if case .trustPolicyRefused = error { throw FuzzInvariantViolation(description: "trust-everyone refused") }
            try check(initiator.isFinished, "initiator not finished after a failed payload 2")
            return
        }
        guard case .sendThenEstablished(let m3, let channel) = output else {
            throw FuzzInvariantViolation(description: "message 2 gave \(output)")
        }
        let responder = FuzzFixtures.responder
        try check(channel.peer.identifier == responder.identifier, "payload 2 authenticated another identity (forgery)")
        guard let decoded = try? IdentityAndCredentials(decoding: input) else {
            throw FuzzInvariantViolation(description: "initiator accepted a payload 2 that does not decode")
        }
        try check(decoded.attestation.secureChannelKey == responder.staticPublicKey, "attested key is not the Noise key")
        try check(channel.peerIdentity == decoded.identity, "peer identity differs from the payload's")
        try checkAttributes(channel.peer)
        try check(m3.count <= HandshakeState.maximumMessageByteCount, "message 3 is \(m3.count) bytes (> 65535)")
        guard let payload3 = try? noise.readMessage(m3) else {
            throw FuzzInvariantViolation(description: "the responder cannot read the initiator's message 3")
        }
        try check(payload3 == transcript.initiatorPayload, "message 3 does not carry the initiator's payload")
        guard let keys = try? noise.split() else {
            throw FuzzInvariantViolation(description: "raw responder cannot split after message 3")
        }
        try check(channel.handshakeHash == keys.handshakeHash, "handshake hashes differ")
        try exchange(initiatorKeys: keys, responder: channel, sample: input)
    }

    // MARK: Helpers

    /// Only the fixture authority is trusted, so attributes can only be credited to it.
    private static func checkAttributes(_ peer: PeerInfo) throws(FuzzInvariantViolation) {
        for authority in peer.attributes.keys {
            try check(authority == FuzzFixtures.authority.identity.identifier, "attributes credited to untrusted \(authority)")
        }
    }

    /// One message each way between an established channel and the raw Noise peer's split keys.
    private static func exchange(
        initiatorKeys keys: TransportKeys, responder channel: EstablishedChannel, sample: [UInt8]
    ) throws(FuzzInvariantViolation) {
        let plaintext = Array(sample.prefix(32))
        do {
            var peerEncryptor = try OckamEncryptor(keys.sender)
            var peerDecryptor = try OckamDecryptor(keys.receiver)
            var encryptor = channel.encryptor
            var decryptor = channel.decryptor
            let there = try decryptor.decrypt(try peerEncryptor.encrypt(plaintext))
            try check(there.nonce == 0 && there.plaintext == plaintext, "peer → channel message garbled")
            let back = try peerDecryptor.decrypt(try encryptor.encrypt(plaintext.reversed()))
            try check(back.nonce == 0 && back.plaintext == plaintext.reversed(), "channel → peer message garbled")
        } catch let violation as FuzzInvariantViolation {
            throw violation
        } catch {
            throw FuzzInvariantViolation(description: "established channel keys do not match the peer's: \(error)")
        }
    }
}

extension FuzzFixtures {
    /// A responder that has not seen message 1 yet (copied per run; its ephemeral key is fixed).
    static let pristineResponder = freshResponder()
}
