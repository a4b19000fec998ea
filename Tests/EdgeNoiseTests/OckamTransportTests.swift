// EdgeNoiseTests/OckamTransport: rekeying, replay window, reordering, tampering, exhaustion (ockam-wire.md §5.5–§5.7).
@testable import EdgeNoise
import EdgeCrypto
import EdgeTestSupport
import Testing

/// An encryptor/decryptor pair sharing a fixed key `k0`.
private func makePair(seed: UInt64 = 42) throws -> (OckamEncryptor, OckamDecryptor, [UInt8]) {
    let k0 = seededBytes(32, seed: seed)
    return (try OckamEncryptor(key: secret(k0)), try OckamDecryptor(key: secret(k0)), k0)
}

/// `count` messages from `encryptor`; message `n` has plaintext `[n >> 8, n & 0xff]` (as in Ockam's tests).
private func encryptMany(_ encryptor: inout OckamEncryptor, _ count: Int) throws -> [[UInt8]] {
    try (0..<count).map { n in try encryptor.encrypt([UInt8(n >> 8), UInt8(n & 0xff)]) }
}

@Suite("Ockam transport", .cpuBound)
struct OckamTransportTests {
    @Test("1,000 messages in order; every message opens with k_⌊n/32⌋ of an independently computed REKEY chain")
    func rekeyChain() throws {
        var (encryptor, decryptor, k0) = try makePair()
        let messages = try encryptMany(&encryptor, 1000)
        #expect(encryptor.nextNonce == 1000)

        var chain = [k0]  // chain[i] = k_i, with k_{i+1} = REKEY(k_i) computed with AES256GCM.seal directly
        while chain.count <= 1000 / 32 { chain.append(try independentRekey(chain.last!)) }
        var opened = 0
        for (n, message) in messages.enumerated() {
            let plaintext: [UInt8] = [UInt8(n >> 8), UInt8(n & 0xff)]
            #expect(message.count == 8 + 2 + 16)
            #expect(Array(message[..<8]) == Array(aesNonce(UInt64(n))[4...]), "big-endian nonce prefix")
            let independent = try AES256GCM.open(
                key: chain[n / 32], nonce: aesNonce(UInt64(n)), aad: [], ciphertext: Array(message[8...]))
            #expect(independent == plaintext)
            let decrypted = try decryptor.decrypt(message)
            #expect(decrypted.nonce == UInt64(n) && decrypted.plaintext == plaintext)
            if independent == plaintext && decrypted.plaintext == plaintext { opened += 1 }
        }
        #expect(opened == 1000)
        #expect(decryptor.highestNonce == 999)

        // The rekey boundary: nonce 31 is the last under k0, nonce 32 the first under k1 = REKEY(k0).
        #expect(chain[1] == (try independentRekey(k0)))
        #expect(throws: CryptoError.authenticationFailure) {
            try AES256GCM.open(key: k0, nonce: aesNonce(32), aad: [], ciphertext: Array(messages[32][8...]))
        }
        #expect(throws: CryptoError.authenticationFailure) {
            try AES256GCM.open(key: chain[1], nonce: aesNonce(31), aad: [], ciphertext: Array(messages[31][8...]))
        }
        // The module's own REKEY agrees with the independent one, and so does CipherState.rekey().
        #expect(try NoiseCipher.aes256GCM.rekey(secret(k0)).withUnsafeBytes { Array($0) } == chain[1])
        var cipherState = CipherState(cipher: .aes256GCM)
        try cipherState.initializeKey(secret(k0))
        try cipherState.rekey()
        cipherState.setNonce(32)
        #expect(try cipherState.decryptWithAd([], ciphertext: Array(messages[32][8...])) == [0, 32])
    }

    @Test("Messages lost (two of three dropped) still decrypt, across rekeys")
    func messagesLost() throws {
        var (encryptor, decryptor, _) = try makePair()
        for (n, message) in try encryptMany(&encryptor, 300).enumerated() where n % 3 == 0 {
            #expect(try decryptor.decrypt(message).plaintext == [UInt8(n >> 8), UInt8(n & 0xff)])
        }
    }

    @Test("Reordered delivery: 100 batches of 30 shuffled are all accepted; every replay is then rejected")
    func reorderedBatches() throws {
        var (encryptor, decryptor, _) = try makePair()
        var generator = SeededGenerator(seed: 0x0c4a_3000)
        var delivery: [(Int, [UInt8])] = []
        for batch in 0..<100 {
            var messages = try (0..<30).map { m in (batch * 30 + m, try encryptor.encrypt([UInt8(batch), UInt8(m)])) }
            messages.shuffle(using: &generator)
            delivery += messages
        }
        var accepted = 0
        for (n, message) in delivery {
            let result = try decryptor.decrypt(message)
            #expect(result.nonce == UInt64(n) && result.plaintext == [UInt8(n / 30), UInt8(n % 30)])
            accepted += 1
        }
        #expect(accepted == 3000)
        var rejected = 0
        for (n, message) in delivery {
            let error = noiseError("replay \(n)") { _ = try decryptor.decrypt(message) }
            // Within 32 of the highest nonce: recognised as a replay; older: outside the window.
            #expect(error == (2999 - n <= 32 ? .replayedNonce : .nonceOutOfWindow), "replay \(n)")
            if error != nil { rejected += 1 }
        }
        #expect(rejected == 3000)
        let fresh = try encryptor.encrypt([1, 1])
        #expect(try decryptor.decrypt(fresh) == (3000, [1, 1]))
    }

    @Test("Window edges: nonce 0 exactly once, 32 ahead/behind accepted, 33 ahead/behind rejected")
    func windowEdges() throws {
        var (encryptor, decryptor, _) = try makePair()
        let m = try encryptMany(&encryptor, 200)

        // Nonce 0 is accepted exactly once, also when it arrives after nonce 1.
        #expect(try decryptor.decrypt(m[1]).nonce == 1)
        #expect(try decryptor.decrypt(m[0]).nonce == 0)
        #expect(noiseError { _ = try decryptor.decrypt(m[0]) } == .replayedNonce)
        #expect(noiseError { _ = try decryptor.decrypt(m[1]) } == .replayedNonce)

        // highest = 1: 34 is 33 ahead (rejected), 33 is 32 ahead (accepted, next interval → rekey).
        #expect(noiseError { _ = try decryptor.decrypt(m[34]) } == .nonceOutOfWindow)
        #expect(decryptor.highestNonce == 1)
        #expect(try decryptor.decrypt(m[33]).nonce == 33)
        // highest = 33: 0 is 33 behind, outside the window (checked before the replay bitmap).
        #expect(noiseError { _ = try decryptor.decrypt(m[0]) } == .nonceOutOfWindow)
        // 1 is 32 behind and already seen: replay; 2 is 31 behind, unseen, previous interval: accepted.
        #expect(noiseError { _ = try decryptor.decrypt(m[1]) } == .replayedNonce)
        #expect(try decryptor.decrypt(m[2]).nonce == 2)
        #expect(try decryptor.decrypt(m[32]).nonce == 32)
        #expect(try decryptor.decrypt(m[31]).nonce == 31)

        // highest = 65 (interval 2 committed): 3 and 32 are too old; 40 is 25 behind, unseen, previous interval.
        #expect(try decryptor.decrypt(m[65]).nonce == 65)
        #expect(noiseError { _ = try decryptor.decrypt(m[3]) } == .nonceOutOfWindow)  // 62 behind
        #expect(noiseError { _ = try decryptor.decrypt(m[32]) } == .nonceOutOfWindow)  // 33 behind
        #expect(try decryptor.decrypt(m[33 + 7]).nonce == 40)
        // Two intervals ahead of the current key (interval 2 → 4): rejected.
        #expect(noiseError { _ = try decryptor.decrypt(m[128]) } == .nonceOutOfWindow)
        #expect(noiseError { _ = try decryptor.decrypt(m[98]) } == .nonceOutOfWindow)  // 33 ahead
        #expect(try decryptor.decrypt(m[97]).nonce == 97)  // 32 ahead, interval 3 = next
        #expect(decryptor.highestNonce == 97)
    }

    @Test("Replay window matches Ockam's nonce_tracker.rs test sequence")
    func ockamNonceTrackerSequence() throws {
        let k: UInt64 = OckamTransport.rekeyInterval
        var tracker = ReplayWindow()
        func accept(_ nonce: UInt64) throws { tracker = try tracker.marking(nonce) }
        func reject(_ nonce: UInt64, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(
                noiseError { _ = try tracker.marking(nonce) } != nil, "nonce \(nonce)", sourceLocation: sourceLocation)
        }
        try accept(0)
        try accept(1)
        reject(0)
        reject(k + 2)
        try accept(k + 1)
        reject(1)
        try accept(k + 2)
        try accept(k + 3)
        reject(k + 1)
        reject(k + 2)
        try accept(2 * k)
        reject(k - 1)
        try accept(3 * k)
        try accept(4 * k)
        for n in (3 * k + 1)..<(4 * k) { try accept(n) }
        for n in (4 * k + 1)..<(5 * k + 1) { try accept(n) }
        #expect(tracker.highest == 5 * k)
    }

    @Test("Key tracker matches Ockam's key_tracker.rs: current, previous, next; two ahead and too old rejected")
    func ockamKeyTracker() throws {
        var keys = IntervalKeys(key: secret(seededBytes(32, seed: 7)))
        #expect(try keys.key(for: 0, cipher: .aes256GCM).1 == .current)
        #expect(try keys.key(for: 31, cipher: .aes256GCM).1 == .current)
        #expect(try keys.key(for: 32, cipher: .aes256GCM).1 == .next)
        #expect(try keys.key(for: 63, cipher: .aes256GCM).1 == .next)
        #expect(noiseError { _ = try keys.key(for: 64, cipher: .aes256GCM) } == .nonceOutOfWindow)
        #expect(noiseError { _ = try keys.key(for: .max, cipher: .aes256GCM) } == .nonceOutOfWindow)
        // The cached next key is reused until committed.
        let next1 = try keys.key(for: 32, cipher: .aes256GCM).0, next2 = try keys.key(for: 40, cipher: .aes256GCM).0
        #expect(next1 === next2)
        keys.advance()  // interval 1: previous = k0, current = k1
        #expect(try keys.key(for: 64, cipher: .aes256GCM).1 == .next)
        keys.advance()  // interval 2: previous = k1, current = k2
        #expect(keys.currentInterval == 2)
        #expect(try keys.key(for: 32, cipher: .aes256GCM).1 == .previous)
        #expect(try keys.key(for: 63, cipher: .aes256GCM).1 == .previous)
        #expect(try keys.key(for: 64, cipher: .aes256GCM).1 == .current)
        #expect(try keys.key(for: 96, cipher: .aes256GCM).1 == .next)
        #expect(noiseError { _ = try keys.key(for: 31, cipher: .aes256GCM) } == .nonceOutOfWindow)
        #expect(noiseError { _ = try keys.key(for: 0, cipher: .aes256GCM) } == .nonceOutOfWindow)
        #expect(noiseError { _ = try keys.key(for: 128, cipher: .aes256GCM) } == .nonceOutOfWindow)
    }

    @Test("Rejected messages change nothing: tampered, truncated, wrong key, forged far/next-interval nonces")
    func rejectionsLeaveStateUnchanged() throws {
        var (encryptor, decryptor, _) = try makePair()
        var (otherEncryptor, _, _) = try makePair(seed: 99)
        let m = try encryptMany(&encryptor, 200)
        let foreign = try encryptMany(&otherEncryptor, 200)
        var delivered = 0

        func checkRejections(before n: Int) {
            let highest = decryptor.highestNonce
            let message = m[n]
            // Tampered tag, ciphertext body and nonce prefix.
            #expect(noiseError { _ = try decryptor.decrypt(flipLast(message)) } == .decryptionFailed)
            #expect(noiseError { _ = try decryptor.decrypt(flip(message, at: 8)) } == .decryptionFailed)
            let moved = noiseError { _ = try decryptor.decrypt(flip(message, at: 7)) }
            #expect(moved == .decryptionFailed || moved == .nonceOutOfWindow || moved == .replayedNonce)
            // Truncated: below nonce + tag is malformed, above it fails authentication.
            for length in [0, 7, 8, 23] {
                #expect(
                    noiseError { _ = try decryptor.decrypt(Array(message.prefix(length))) }?.isInvalidMessage == true)
            }
            #expect(noiseError { _ = try decryptor.decrypt(Array(message.dropLast())) } == .decryptionFailed)
            // Same nonce, other key.
            #expect(noiseError { _ = try decryptor.decrypt(foreign[n]) } == .decryptionFailed)
            // Forged messages at the far edge of the window and in the next interval, with a stolen body.
            for forgedNonce in [highest + 32, (highest / 32 + 1) * 32, highest + 1] {
                var forged = Array(aesNonce(forgedNonce)[4...]) + Array(message[8...])
                if forgedNonce == UInt64(n) { forged = flipLast(forged) }
                let error = noiseError("forged \(forgedNonce)") { _ = try decryptor.decrypt(forged) }
                #expect(error == .decryptionFailed || error == .nonceOutOfWindow, "forged \(forgedNonce)")
            }
            // Far future (as in Ockam's test_attack_nonce).
            #expect(
                noiseError { _ = try decryptor.decrypt(Array(aesNonce(1_000_000)[4...]) + Array(message[8...])) }
                    == .nonceOutOfWindow)
            #expect(decryptor.highestNonce == highest, "rejections must not move the window")
        }

        for n in 0..<200 {
            checkRejections(before: n)
            #expect(try decryptor.decrypt(m[n]).nonce == UInt64(n), "legitimate message \(n) after rejections")
            delivered += 1
        }
        #expect(delivered == 200)

        // A forged message 32 ahead must not slide the window: the message 32 behind stays acceptable.
        var (encryptor2, decryptor2, _) = try makePair(seed: 7)
        let m2 = try encryptMany(&encryptor2, 100)
        for n in 0..<40 where n != 8 { _ = try decryptor2.decrypt(m2[n]) }  // highest 39, nonce 8 unseen
        #expect(noiseError { _ = try decryptor2.decrypt(flipLast(m2[71])) } == .decryptionFailed)
        #expect(try decryptor2.decrypt(m2[8]).nonce == 8)  // 31 behind 39: still inside
        #expect(try decryptor2.decrypt(m2[71]).nonce == 71)  // genuine 71 (interval 2 = next) commits the rekey
        #expect(noiseError { _ = try decryptor2.decrypt(m2[8]) } == .nonceOutOfWindow)
    }

    @Test("Nonce exhaustion: the encryptor never uses 2⁶⁴−1; the decryptor refuses it; CipherState likewise")
    func nonceExhaustion() throws {
        let key = seededBytes(32, seed: 3)
        var encryptor = try OckamEncryptor(key: secret(key), cipher: .aes256GCM, nextNonce: .max - 1)
        let last = try encryptor.encrypt([7])
        #expect(Array(last[..<8]) == [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe])
        #expect(try AES256GCM.open(key: key, nonce: aesNonce(.max - 1), aad: [], ciphertext: Array(last[8...])) == [7])
        #expect(encryptor.nextNonce == UInt64.max)
        #expect(noiseError { _ = try encryptor.encrypt([8]) } == .nonceExhausted)
        #expect(encryptor.nextNonce == UInt64.max)

        var decryptor = try OckamDecryptor(key: secret(key))
        let maxNonce = [UInt8](repeating: 0xff, count: 8) + [UInt8](repeating: 0, count: 16)
        #expect(noiseError { _ = try decryptor.decrypt(maxNonce) } == .nonceExhausted)

        var cipherState = CipherState(cipher: .chaCha20Poly1305)
        #expect(try cipherState.encryptWithAd([], plaintext: [1]) == [1], "no key: identity")
        try cipherState.initializeKey(secret(key))
        cipherState.setNonce(.max - 1)
        let ciphertext = try cipherState.encryptWithAd([9], plaintext: [1])
        #expect(noiseError { _ = try cipherState.encryptWithAd([], plaintext: [2]) } == .nonceExhausted)
        var receiver = CipherState(cipher: .chaCha20Poly1305)
        try receiver.initializeKey(secret(key))
        receiver.setNonce(.max - 1)
        #expect(noiseError { _ = try receiver.decryptWithAd([8], ciphertext: ciphertext) } == .decryptionFailed)
        #expect(receiver.nonce == UInt64.max - 1, "failed decryption keeps n")
        #expect(try receiver.decryptWithAd([9], ciphertext: ciphertext) == [1])
        #expect(noiseError { _ = try receiver.decryptWithAd([9], ciphertext: ciphertext) } == .nonceExhausted)
    }

    @Test("ChaCha20-Poly1305 variant: little-endian Noise nonce inside, big-endian wire prefix, rekey at 32")
    func chachaVariant() throws {
        let k0 = seededBytes(32, seed: 8)
        var encryptor = try OckamEncryptor(key: secret(k0), cipher: .chaCha20Poly1305)
        var decryptor = try OckamDecryptor(key: secret(k0), cipher: .chaCha20Poly1305)
        let messages = try encryptMany(&encryptor, 70)
        let leNonce: (UInt64) -> [UInt8] = { n in
            [0, 0, 0, 0] + (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) }
        }
        let rekeyNonce = leNonce(.max)
        let zeros = [UInt8](repeating: 0, count: 32)
        let k1 = Array(try ChaCha20Poly1305.seal(key: k0, nonce: rekeyNonce, aad: [], plaintext: zeros)[..<32])
        let opened5 = try ChaCha20Poly1305.open(
            key: k0, nonce: leNonce(5), aad: [], ciphertext: Array(messages[5][8...]))
        let opened33 = try ChaCha20Poly1305.open(
            key: k1, nonce: leNonce(33), aad: [], ciphertext: Array(messages[33][8...]))
        #expect(opened5 == [0, 5])
        #expect(opened33 == [0, 33])
        #expect(Array(messages[33][..<8]) == [0, 0, 0, 0, 0, 0, 0, 33])
        for (n, message) in messages.enumerated() { #expect(try decryptor.decrypt(message).nonce == UInt64(n)) }
    }
}

private func flip(_ bytes: [UInt8], at index: Int) -> [UInt8] {
    var copy = bytes
    copy[index] ^= 0x80
    return copy
}

private func flipLast(_ bytes: [UInt8]) -> [UInt8] { flip(bytes, at: bytes.count - 1) }
