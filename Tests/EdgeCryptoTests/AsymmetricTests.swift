// EdgeCryptoTests/Asymmetric: X25519, Ed25519 and ECDSA P-256 against Wycheproof, plus round trips and tampering.
import EdgeCrypto
import EdgeTestSupport
import Testing

@Suite("X25519", .cpuBound)
struct X25519Tests {
    /// Policy for Wycheproof "acceptable" vectors: every acceptable vector whose shared secret is all zeros
    /// (low-order public keys) must be rejected with `weakPublicKey`; every other acceptable vector (points on the
    /// twist, non-canonical u-coordinates) must be accepted and produce the listed shared secret, as RFC 7748
    /// specifies.
    @Test("Wycheproof x25519_test.json")
    func wycheproof() throws {
        let file = try WycheproofFile("x25519_test.json")
        var validPassed = 0, acceptableAccepted = 0, acceptableRejected = 0, invalidRejected = 0
        for vector in file.cases {
            let privateKey = vector.bytes("private"), publicKey = vector.bytes("public")
            let expected = vector.bytes("shared")
            let zeroShared = expected.allSatisfy { $0 == 0 }
            let outcome = Result { () throws(CryptoError) -> SecretKey in
                try X25519.sharedSecret(privateKey: privateKey, publicKey: publicKey)
            }
            switch (vector.result, zeroShared) {
            case ("valid", false), ("acceptable", false):
                switch outcome {
                case .success(let shared) where shared.constantTimeEquals(expected):
                    if vector.result == "valid" { validPassed += 1 } else { acceptableAccepted += 1 }
                default:
                    Issue.record("\(vector.label): expected shared secret \(expected.hexString), got \(outcome)")
                }
            case ("acceptable", true), ("invalid", _):
                #expect(vector.result == "invalid" || vector.flags.contains("ZeroSharedSecret"), "\(vector.label)")
                if case .failure(.weakPublicKey) = outcome {
                    if vector.result == "invalid" { invalidRejected += 1 } else { acceptableRejected += 1 }
                } else {
                    Issue.record("\(vector.label): expected weakPublicKey, got \(outcome)")
                }
            default:
                Issue.record("\(vector.label): unexpected result / shared secret combination")
            }
        }
        #expect(file.cases.count > 0 && file.cases.count == file.numberOfTests)
        #expect(validPassed + acceptableAccepted + acceptableRejected + invalidRejected == file.cases.count)
        print("""
            wycheproof x25519: \(validPassed) valid passed, \(acceptableAccepted) acceptable accepted (twist / \
            non-canonical public key), \(acceptableRejected) acceptable rejected as weakPublicKey (all-zero \
            shared secret), \(invalidRejected) invalid rejected, 0 skipped
            """)
    }

    @Test("Key agreement round trip, RFC 7748 §6.1 and rejection of zero and mis-sized keys")
    func roundTripAndRejection() throws {
        let a = X25519.generatePrivateKey(), b = X25519.generatePrivateKey()
        let publicA = try X25519.publicKey(privateKey: a), publicB = try X25519.publicKey(privateKey: b)
        let ab = try X25519.sharedSecret(privateKey: a, publicKey: publicB)
        let ba = try X25519.sharedSecret(privateKey: b, publicKey: publicA)
        #expect(ab.constantTimeEquals(ba))
        #expect(!ab.constantTimeEquals([UInt8](repeating: 0, count: 32)))

        let alice = [UInt8](hex: "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
        let bob = [UInt8](hex: "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
        #expect(try X25519.publicKey(privateKey: alice).hexString
            == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        let shared = try X25519.sharedSecret(privateKey: alice, publicKey: try X25519.publicKey(privateKey: bob))
        #expect(shared.constantTimeEquals([UInt8](
            hex: "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")))

        #expect(throws: CryptoError.weakPublicKey) {
            try X25519.sharedSecret(privateKey: a, publicKey: [UInt8](repeating: 0, count: 32))
        }
        var one = [UInt8](repeating: 0, count: 32)
        one[0] = 1  // u = 1 has order 4
        #expect(throws: CryptoError.weakPublicKey) { try X25519.sharedSecret(privateKey: a, publicKey: one) }
        #expect(throws: CryptoError.invalidKeySize) {
            try X25519.sharedSecret(privateKey: a, publicKey: Array(publicB.prefix(31)))
        }
        #expect(throws: CryptoError.invalidKeySize) {
            try X25519.sharedSecret(privateKey: Random.bytes(count: 33), publicKey: publicB)
        }
        #expect(throws: CryptoError.invalidKeySize) { try X25519.publicKey(privateKey: Random.bytes(count: 16)) }
    }
}

@Suite("Ed25519", .cpuBound)
struct Ed25519Tests {
    @Test("Wycheproof ed25519_test.json")
    func wycheproof() throws {
        let file = try WycheproofFile("ed25519_test.json")
        var validPassed = 0, invalidRejected = 0
        for vector in file.cases {
            guard let publicKeyHex = (vector.group["publicKey"] as? [String: Any])?["pk"] as? String else {
                Issue.record("\(vector.label): missing public key")
                continue
            }
            let accepted = Ed25519.verify(signature: vector.bytes("sig"), message: vector.bytes("msg"),
                                          publicKey: [UInt8](hex: publicKeyHex))
            switch vector.result {
            case "valid":
                if accepted { validPassed += 1 } else { Issue.record("\(vector.label): valid signature rejected") }
            case "invalid":
                if !accepted { invalidRejected += 1 } else { Issue.record("\(vector.label): invalid accepted") }
            default:
                Issue.record("\(vector.label): unexpected result (the file has no acceptable vectors)")
            }
        }
        #expect(file.cases.count > 0 && file.cases.count == file.numberOfTests)
        #expect(validPassed + invalidRejected == file.cases.count)
        print("wycheproof ed25519: \(validPassed) valid passed, \(invalidRejected) invalid rejected, 0 skipped")
    }

    @Test("RFC 8032 test 1, sign/verify round trip and tampering")
    func roundTrip() throws {
        let rfcSeed = [UInt8](hex: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        let rfcPublic = try Ed25519.publicKey(seed: rfcSeed)
        #expect(rfcPublic.hexString == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        #expect(try Ed25519.sign(message: [], seed: rfcSeed).hexString
            == "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
            + "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")

        let seed = Ed25519.generateSeed()
        let (publicKey, secretKey) = try Ed25519.keyPair(seed: seed)
        #expect(publicKey == (try Ed25519.publicKey(seed: seed)))
        #expect(secretKey.count == 64)
        let message = Random.bytes(count: 123)
        let signature = try Ed25519.sign(message: message, seed: seed)
        #expect(signature.count == 64)
        #expect(try Ed25519.sign(message: message, secretKey: secretKey) == signature)  // deterministic
        #expect(Ed25519.verify(signature: signature, message: message, publicKey: publicKey))

        var badMessage = message
        badMessage[5] ^= 1
        #expect(!Ed25519.verify(signature: signature, message: badMessage, publicKey: publicKey))
        for index in [0, 31, 32, 63] {
            var badSignature = signature
            badSignature[index] ^= 0x10
            #expect(!Ed25519.verify(signature: badSignature, message: message, publicKey: publicKey), "byte \(index)")
        }
        #expect(!Ed25519.verify(signature: signature, message: message, publicKey: rfcPublic))
        #expect(!Ed25519.verify(signature: Array(signature.dropLast()), message: message, publicKey: publicKey))
        #expect(!Ed25519.verify(signature: signature, message: message, publicKey: Array(publicKey.dropLast())))
    }

    @Test("A 64-byte secret key whose public half does not match its seed is refused")
    func mismatchedSecretKey() throws {
        let (_, secretKey) = try Ed25519.keyPair(seed: Ed25519.generateSeed())
        let otherPublic = try Ed25519.publicKey(seed: Ed25519.generateSeed())
        let forged = secretKey.withUnsafeBytes { [UInt8]($0.prefix(32)) } + otherPublic
        #expect(throws: CryptoError.invalidPrivateKey) { try Ed25519.sign(message: [1, 2, 3], secretKey: forged) }
        #expect(throws: CryptoError.invalidKeySize) { try Ed25519.sign(message: [1], seed: Random.bytes(count: 64)) }
        #expect(throws: CryptoError.invalidKeySize) {
            try Ed25519.sign(message: [1], secretKey: Random.bytes(count: 32))
        }
    }
}

@Suite("ECDSA P-256", .cpuBound)
struct ECDSAP256Tests {
    /// P-256 generator and order (SEC 2 / FIPS 186-4 domain parameters).
    static let generatorX = "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
    static let generatorY = "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
    static let negatedGeneratorY = "b01cbd1c01e58065711814b583f061e9d431cca994cea1313449bf97c840ae0a"
    static let order = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"
    static let orderMinusOne = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632550"

    @Test("Wycheproof ecdsa_secp256r1_sha256_test.json (DER signatures; raw r‖s path cross-checked)")
    func wycheproof() throws {
        let file = try WycheproofFile("ecdsa_secp256r1_sha256_test.json")
        var validPassed = 0, invalidRejected = 0, rawChecked = 0, notStrictDER = 0
        for vector in file.cases {
            guard let publicKeyHex = (vector.group["publicKey"] as? [String: Any])?["uncompressed"] as? String else {
                Issue.record("\(vector.label): missing public key")
                continue
            }
            let publicKey = [UInt8](hex: publicKeyHex), message = vector.bytes("msg"), der = vector.bytes("sig")
            #expect(ECDSAP256.isValidPublicKey(publicKey), "\(vector.label)")
            let accepted = ECDSAP256.verify(derSignature: der, message: message, publicKey: publicKey)
            switch vector.result {
            case "valid":
                if accepted { validPassed += 1 } else { Issue.record("\(vector.label): valid signature rejected") }
            case "invalid":
                if !accepted { invalidRejected += 1 } else { Issue.record("\(vector.label): invalid accepted") }
            default:
                Issue.record("\(vector.label): unexpected result (the file has no acceptable vectors)")
            }
            // The raw r‖s path must agree wherever the DER is strict and both integers fit 32 bytes.
            if let raw = try? ECDSAP256.rawSignature(fromDER: der) {
                #expect(try ECDSAP256.derSignature(fromRaw: raw) == der, "\(vector.label)")
                #expect(ECDSAP256.verify(signature: raw, message: message, publicKey: publicKey) == accepted,
                        "\(vector.label)")
                rawChecked += 1
            } else {
                #expect(vector.result == "invalid", "\(vector.label): valid DER signature failed to convert")
                notStrictDER += 1
            }
        }
        #expect(file.cases.count > 0 && file.cases.count == file.numberOfTests)
        #expect(validPassed + invalidRejected == file.cases.count)
        #expect(rawChecked + notStrictDER == file.cases.count)
        print("""
            wycheproof ecdsa_secp256r1_sha256: \(validPassed) valid passed, \(invalidRejected) invalid rejected, \
            0 skipped; raw r‖s path cross-checked on \(rawChecked) (\(notStrictDER) not convertible: non-DER or \
            oversized integers)
            """)
    }

    @Test("Public key derivation: d = 1 gives G, d = n − 1 gives −G")
    func publicKeyDerivation() throws {
        #expect(try ECDSAP256.publicKey(privateKey: [UInt8](repeating: 0, count: 31) + [1]).hexString
            == "04" + Self.generatorX + Self.generatorY)
        #expect(try ECDSAP256.publicKey(privateKey: [UInt8](hex: Self.orderMinusOne)).hexString
            == "04" + Self.generatorX + Self.negatedGeneratorY)
        #expect(throws: CryptoError.invalidPrivateKey) {
            try ECDSAP256.publicKey(privateKey: [UInt8](repeating: 0, count: 32))
        }
        #expect(throws: CryptoError.invalidPrivateKey) { try ECDSAP256.publicKey(privateKey: [UInt8](hex: Self.order)) }
        #expect(throws: CryptoError.invalidPrivateKey) {
            try ECDSAP256.sign(message: [1], privateKey: [UInt8](repeating: 0xff, count: 32))
        }
        #expect(throws: CryptoError.invalidKeySize) { try ECDSAP256.publicKey(privateKey: Random.bytes(count: 31)) }
    }

    @Test("Sign → verify round trip, tampering, key validation and DER conversion")
    func roundTrip() throws {
        let privateKey = ECDSAP256.generatePrivateKey()
        #expect(privateKey.count == 32)
        let publicKey = try ECDSAP256.publicKey(privateKey: privateKey)
        #expect(publicKey.count == 65 && publicKey[0] == 0x04)
        #expect(ECDSAP256.isValidPublicKey(publicKey))

        let message = Array("ockam identity change".utf8)
        let signature = try ECDSAP256.sign(message: message, privateKey: privateKey)
        #expect(signature.count == 64)
        #expect(ECDSAP256.verify(signature: signature, message: message, publicKey: publicKey))
        let der = try ECDSAP256.derSignature(fromRaw: signature)
        #expect(ECDSAP256.verify(derSignature: der, message: message, publicKey: publicKey))
        #expect(try ECDSAP256.rawSignature(fromDER: der) == signature)
        #expect(throws: CryptoError.invalidSignatureEncoding) { try ECDSAP256.rawSignature(fromDER: der + [0]) }
        #expect(throws: CryptoError.invalidSignatureEncoding) { try ECDSAP256.rawSignature(fromDER: []) }

        // ECDSA is randomised: two signatures differ but both verify.
        let second = try ECDSAP256.sign(message: message, privateKey: privateKey)
        #expect(second != signature)
        #expect(ECDSAP256.verify(signature: second, message: message, publicKey: publicKey))

        var badMessage = message
        badMessage[0] ^= 1
        #expect(!ECDSAP256.verify(signature: signature, message: badMessage, publicKey: publicKey))
        for index in [0, 31, 32, 63] {
            var badSignature = signature
            badSignature[index] ^= 0x01
            #expect(!ECDSAP256.verify(signature: badSignature, message: message, publicKey: publicKey), "\(index)")
        }
        #expect(!ECDSAP256.verify(signature: [UInt8](repeating: 0, count: 64), message: message, publicKey: publicKey))
        #expect(!ECDSAP256.verify(signature: Array(signature.prefix(63)), message: message, publicKey: publicKey))
        let otherKey = try ECDSAP256.publicKey(privateKey: ECDSAP256.generatePrivateKey())
        #expect(!ECDSAP256.verify(signature: signature, message: message, publicKey: otherKey))

        // Off-curve, compressed-prefix and truncated public keys are invalid.
        var offCurve = publicKey
        offCurve[64] ^= 0x01
        #expect(!ECDSAP256.isValidPublicKey(offCurve))
        #expect(!ECDSAP256.verify(signature: signature, message: message, publicKey: offCurve))
        var wrongPrefix = publicKey
        wrongPrefix[0] = 0x02
        #expect(!ECDSAP256.isValidPublicKey(wrongPrefix))
        #expect(!ECDSAP256.isValidPublicKey(Array(publicKey.prefix(33))))
        #expect(!ECDSAP256.isValidPublicKey([0x04] + [UInt8](repeating: 0, count: 64)))
    }
}
