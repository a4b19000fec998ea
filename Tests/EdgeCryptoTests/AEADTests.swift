// EdgeCryptoTests/AEAD: AES-256-GCM (both backends) and ChaCha20-Poly1305 against Wycheproof, plus property tests.
import EdgeSync
import EdgeCrypto
import EdgeTestSupport
import Foundation
import Testing

@Suite("AES-256-GCM", .cpuBound)
struct AES256GCMTests {
    /// Runs the 256-bit-key, 96-bit-IV, 128-bit-tag Wycheproof vectors against one backend.
    @Test("Wycheproof aes_gcm_test.json", arguments: AES256GCM.Backend.allCases)
    func wycheproof(backend: AES256GCM.Backend) throws {
        let file = try WycheproofFile("aes_gcm_test.json")
        if backend == .libsodium && !AES256GCM.isHardwareBackendAvailable {
            #expect(throws: CryptoError.unavailable) {
                try AES256GCM.seal(key: [UInt8](repeating: 0, count: 32), nonce: [UInt8](repeating: 0, count: 12),
                                   plaintext: [], backend: .libsodium)
            }
            print("wycheproof aes_gcm [libsodium]: backend unavailable on this CPU (no AES-NI+CLMUL)")
            return
        }
        var selected = 0, validPassed = 0, invalidRejected = 0, skippedKeySize = 0, skippedIV = 0
        for vector in file.cases {
            guard vector.groupInt("keySize") == 256 else {
                skippedKeySize += 1
                continue
            }
            guard vector.groupInt("ivSize") == 96, vector.groupInt("tagSize") == 128 else {
                skippedIV += 1
                continue
            }
            selected += 1
            let key = vector.bytes("key"), nonce = vector.bytes("iv"), aad = vector.bytes("aad")
            let message = vector.bytes("msg"), sealed = vector.bytes("ct") + vector.bytes("tag")
            switch vector.result {
            case "valid":
                let ours = try AES256GCM.seal(key: key, nonce: nonce, aad: aad, plaintext: message, backend: backend)
                let opened = try AES256GCM.open(key: key, nonce: nonce, aad: aad, ciphertext: sealed, backend: backend)
                if ours == sealed && opened == message {
                    validPassed += 1
                } else {
                    Issue.record("\(backend) \(vector.label): seal/open mismatch")
                }
            case "invalid":
                do {
                    _ = try AES256GCM.open(key: key, nonce: nonce, aad: aad, ciphertext: sealed, backend: backend)
                    Issue.record("\(backend) \(vector.label): forged ciphertext accepted")
                } catch {
                    #expect(error == .authenticationFailure, "\(vector.label)")
                    invalidRejected += 1
                }
            default:
                Issue.record("\(vector.label): unexpected result (no acceptable AES-GCM vectors expected)")
            }
        }
        let expectedSelected = file.cases.count { vector in
            vector.groupInt("keySize") == 256 && vector.groupInt("ivSize") == 96 && vector.groupInt("tagSize") == 128
        }
        #expect(selected > 0)
        #expect(selected == expectedSelected)
        #expect(validPassed + invalidRejected == selected)
        #expect(selected + skippedKeySize + skippedIV == file.numberOfTests)
        print("""
            wycheproof aes_gcm [\(backend)]: \(validPassed) valid passed, \(invalidRejected) invalid rejected, \
            \(skippedKeySize) skipped (non-256-bit key), \(skippedIV) skipped (256-bit key, non-96-bit IV)
            """)
    }

    @Test(
        "Wycheproof valid vectors: libsodium and OpenSSL produce identical ciphertexts",
        .enabled(if: AES256GCM.isHardwareBackendAvailable, "libsodium AES-GCM needs AES-NI + CLMUL")
    )
    func wycheproofBackendsAgree() throws {
        let file = try WycheproofFile("aes_gcm_test.json")
        var compared = 0
        for vector in file.cases
        where vector.groupInt("keySize") == 256 && vector.groupInt("ivSize") == 96 && vector.result == "valid" {
            let key = vector.bytes("key"), nonce = vector.bytes("iv"), aad = vector.bytes("aad")
            let message = vector.bytes("msg")
            let sodium = try AES256GCM.seal(key: key, nonce: nonce, aad: aad, plaintext: message, backend: .libsodium)
            let openssl = try AES256GCM.seal(key: key, nonce: nonce, aad: aad, plaintext: message, backend: .openssl)
            #expect(sodium == openssl, "\(vector.label)")
            #expect(sodium == vector.bytes("ct") + vector.bytes("tag"), "\(vector.label)")
            compared += 1
        }
        #expect(compared > 0)
        #expect(compared == file.cases.count {
            $0.groupInt("keySize") == 256 && $0.groupInt("ivSize") == 96 && $0.result == "valid"
        })
        print("wycheproof aes_gcm: \(compared) valid vectors identical across libsodium and OpenSSL")
    }

    @Test(
        "Random keys, nonces and lengths 0…4096: backends agree and open each other's output",
        .enabled(if: AES256GCM.isHardwareBackendAvailable, "libsodium AES-GCM needs AES-NI + CLMUL")
    )
    func randomizedBackendEquivalence() throws {
        let seed = UInt64.random(in: .min ... .max)
        print("aes_gcm backend equivalence seed: \(seed)")
        var generator = SeededGenerator(seed: seed)
        func randomBytes(_ count: Int) -> [UInt8] {
            (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        }
        let boundaryLengths = [0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 257, 1023, 1024, 4095, 4096]
        let lengths = boundaryLengths + (0..<300).map { _ in Int.random(in: 0...4096, using: &generator) }
        for (index, length) in lengths.enumerated() {
            let key = randomBytes(32), nonce = randomBytes(12)
            let aad = randomBytes(index % 3 == 0 ? 0 : Int.random(in: 0...80, using: &generator))
            let message = randomBytes(length)
            let sodium = try AES256GCM.seal(key: key, nonce: nonce, aad: aad, plaintext: message, backend: .libsodium)
            let openssl = try AES256GCM.seal(key: key, nonce: nonce, aad: aad, plaintext: message, backend: .openssl)
            #expect(sodium == openssl, "length \(length) aad \(aad.count)")
            #expect(sodium.count == length + 16)
            #expect(try AES256GCM.open(key: key, nonce: nonce, aad: aad, ciphertext: sodium, backend: .openssl)
                == message)
            #expect(try AES256GCM.open(key: key, nonce: nonce, aad: aad, ciphertext: openssl, backend: .libsodium)
                == message)
        }
        print("aes_gcm backend equivalence: \(lengths.count) random cases identical")
    }

    @Test("Tampering and truncation are rejected", arguments: AES256GCM.Backend.allCases)
    func tamperRejected(backend: AES256GCM.Backend) throws {
        guard backend == .openssl || AES256GCM.isHardwareBackendAvailable else { return }
        let key = Random.bytes(count: 32), nonce = Random.bytes(count: 12), aad = Array("header".utf8)
        let message = Array("attack at dawn, bring snacks".utf8)
        let sealed = try AES256GCM.seal(key: key, nonce: nonce, aad: aad, plaintext: message, backend: backend)
        #expect(try AES256GCM.open(key: key, nonce: nonce, aad: aad, ciphertext: sealed, backend: backend) == message)

        func rejects(key: [UInt8] = key, nonce: [UInt8] = nonce, aad: [UInt8] = aad, _ ciphertext: [UInt8]) -> Bool {
            do {
                _ = try AES256GCM.open(key: key, nonce: nonce, aad: aad, ciphertext: ciphertext, backend: backend)
                return false
            } catch {
                return error == .authenticationFailure
            }
        }
        for index in sealed.indices {  // every byte of ciphertext and tag
            var modified = sealed
            modified[index] ^= 0x01
            #expect(rejects(modified), "flipped byte \(index)")
        }
        #expect(rejects(Array(sealed.dropLast())), "truncated tag")
        #expect(rejects(Array(sealed.dropFirst())), "dropped first byte")
        #expect(rejects(Array(sealed.prefix(15))), "shorter than a tag")
        #expect(rejects([]), "empty")
        #expect(rejects(sealed + [0]), "appended byte")
        #expect(rejects(aad: aad + [0], sealed), "modified AAD")
        #expect(rejects(aad: [], sealed), "missing AAD")
        var otherNonce = nonce
        otherNonce[11] ^= 0x80
        #expect(rejects(nonce: otherNonce, sealed), "other nonce")
        var otherKey = key
        otherKey[0] ^= 0x01
        #expect(rejects(key: otherKey, sealed), "other key")

        #expect(throws: CryptoError.invalidKeySize) {
            try AES256GCM.seal(key: Array(key.prefix(16)), nonce: nonce, plaintext: message, backend: backend)
        }
        #expect(throws: CryptoError.invalidNonceSize) {
            try AES256GCM.seal(key: key, nonce: nonce + [0], plaintext: message, backend: backend)
        }
        #expect(throws: CryptoError.invalidNonceSize) {
            try AES256GCM.open(key: key, nonce: Array(nonce.prefix(8)), ciphertext: sealed, backend: backend)
        }
    }

    @Test("SecretKey keys work and match [UInt8] keys")
    func secretKeyInput() throws {
        let raw = Random.bytes(count: 32), nonce = Random.bytes(count: 12), message = Random.bytes(count: 100)
        let key = SecretKey(copying: raw)
        let a = try AES256GCM.seal(key: key, nonce: nonce, plaintext: message)
        let b = try AES256GCM.seal(key: raw, nonce: nonce, plaintext: message)
        #expect(a == b)
        #expect(try AES256GCM.open(key: key, nonce: nonce, ciphertext: a) == message)
    }

    @Test("OpenSSL backend is safe to use from many threads at once")
    func concurrentOpenSSL() throws {
        let failures = EdgeMutex(0)
        DispatchQueue.concurrentPerform(iterations: 16) { worker in
            for round in 0..<100 {
                let key = Random.bytes(count: 32), nonce = Random.bytes(count: 12)
                let message = Random.bytes(count: (worker * 131 + round * 17) % 2048)
                do {
                    let sealed = try AES256GCM.seal(key: key, nonce: nonce, plaintext: message, backend: .openssl)
                    let opened = try AES256GCM.open(key: key, nonce: nonce, ciphertext: sealed, backend: .openssl)
                    var forged = sealed
                    forged[forged.count - 1] ^= 1
                    let forgedOpened = try? AES256GCM.open(key: key, nonce: nonce, ciphertext: forged,
                                                           backend: .openssl)
                    if opened != message || forgedOpened != nil { failures.withLock { $0 += 1 } }
                } catch {
                    failures.withLock { $0 += 1 }
                }
            }
        }
        #expect(failures.withLock { $0 } == 0)
    }

    /// The only test that touches the process-wide switch (Swift Testing runs tests in parallel).
    @Test("Backend selection: environment variable, forceSoftwareFallback and activeBackend")
    func backendSwitch() throws {
        let environmentValue = ProcessInfo.processInfo.environment[AES256GCM.forceSoftwareEnvironmentVariable]
        #expect(AES256GCM.environmentForcesSoftwareFallback == (environmentValue == "1"))
        let original = AES256GCM.forceSoftwareFallback
        #expect(original == AES256GCM.environmentForcesSoftwareFallback)
        defer { AES256GCM.forceSoftwareFallback = original }
        print("aes_gcm active backend: \(AES256GCM.activeBackend) (hardware available: "
            + "\(AES256GCM.isHardwareBackendAvailable), env forces fallback: "
            + "\(AES256GCM.environmentForcesSoftwareFallback))")

        let key = Random.bytes(count: 32), nonce = Random.bytes(count: 12), message = Random.bytes(count: 77)
        let reference = try AES256GCM.seal(key: key, nonce: nonce, plaintext: message, backend: .openssl)

        AES256GCM.forceSoftwareFallback = true
        #expect(AES256GCM.activeBackend == .openssl)
        #expect(try AES256GCM.seal(key: key, nonce: nonce, plaintext: message) == reference)
        #expect(try AES256GCM.open(key: key, nonce: nonce, ciphertext: reference) == message)

        AES256GCM.forceSoftwareFallback = false
        #expect(AES256GCM.activeBackend == (AES256GCM.isHardwareBackendAvailable ? .libsodium : .openssl))
        #expect(try AES256GCM.seal(key: key, nonce: nonce, plaintext: message) == reference)
        #expect(try AES256GCM.open(key: key, nonce: nonce, ciphertext: reference) == message)
    }
}

@Suite("ChaCha20-Poly1305", .cpuBound)
struct ChaCha20Poly1305Tests {
    @Test("Wycheproof chacha20_poly1305_test.json")
    func wycheproof() throws {
        let file = try WycheproofFile("chacha20_poly1305_test.json")
        var validPassed = 0, invalidRejected = 0, badNonceRejected = 0
        for vector in file.cases {
            let key = vector.bytes("key"), nonce = vector.bytes("iv"), aad = vector.bytes("aad")
            let message = vector.bytes("msg"), sealed = vector.bytes("ct") + vector.bytes("tag")
            #expect(vector.groupInt("keySize") == 256 && vector.groupInt("tagSize") == 128, "\(vector.label)")
            switch vector.result {
            case "valid":
                let ours = try ChaCha20Poly1305.seal(key: key, nonce: nonce, aad: aad, plaintext: message)
                let opened = try ChaCha20Poly1305.open(key: key, nonce: nonce, aad: aad, ciphertext: sealed)
                if ours == sealed && opened == message {
                    validPassed += 1
                } else {
                    Issue.record("\(vector.label): seal/open mismatch")
                }
            case "invalid":
                // Policy: nonces other than 96 bits are rejected up front (invalidNonceSize) by seal and open.
                let expected: CryptoError = nonce.count == 12 ? .authenticationFailure : .invalidNonceSize
                do {
                    _ = try ChaCha20Poly1305.open(key: key, nonce: nonce, aad: aad, ciphertext: sealed)
                    Issue.record("\(vector.label): invalid vector accepted")
                } catch {
                    #expect(error == expected, "\(vector.label)")
                    if nonce.count == 12 {
                        invalidRejected += 1
                    } else {
                        #expect(throws: CryptoError.invalidNonceSize) {
                            try ChaCha20Poly1305.seal(key: key, nonce: nonce, aad: aad, plaintext: message)
                        }
                        badNonceRejected += 1
                    }
                }
            default:
                Issue.record("\(vector.label): unexpected result")
            }
        }
        #expect(file.cases.count > 0)
        #expect(validPassed + invalidRejected + badNonceRejected == file.cases.count)
        #expect(file.cases.count == file.numberOfTests)
        print("""
            wycheproof chacha20_poly1305: \(validPassed) valid passed, \(invalidRejected) invalid rejected \
            (tag), \(badNonceRejected) invalid rejected (nonce size), 0 skipped
            """)
    }

    @Test("Tampering and truncation are rejected")
    func tamperRejected() throws {
        let key = SecretKey(randomCount: 32), nonce = Random.bytes(count: 12), aad = Random.bytes(count: 9)
        let message = Random.bytes(count: 64)
        let sealed = try ChaCha20Poly1305.seal(key: key, nonce: nonce, aad: aad, plaintext: message)
        #expect(sealed.count == message.count + 16)
        #expect(try ChaCha20Poly1305.open(key: key, nonce: nonce, aad: aad, ciphertext: sealed) == message)
        for index in sealed.indices {
            var modified = sealed
            modified[index] ^= 0x40
            #expect(throws: CryptoError.authenticationFailure) {
                try ChaCha20Poly1305.open(key: key, nonce: nonce, aad: aad, ciphertext: modified)
            }
        }
        #expect(throws: CryptoError.authenticationFailure) {
            try ChaCha20Poly1305.open(key: key, nonce: nonce, aad: aad, ciphertext: Array(sealed.dropLast()))
        }
        #expect(throws: CryptoError.authenticationFailure) {
            try ChaCha20Poly1305.open(key: key, nonce: nonce, aad: aad, ciphertext: Array(sealed.prefix(10)))
        }
        #expect(throws: CryptoError.authenticationFailure) {
            try ChaCha20Poly1305.open(key: key, nonce: nonce, aad: [], ciphertext: sealed)
        }
        #expect(throws: CryptoError.invalidKeySize) {
            try ChaCha20Poly1305.seal(key: Random.bytes(count: 31), nonce: nonce, plaintext: message)
        }
    }
}
