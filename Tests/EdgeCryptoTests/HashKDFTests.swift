// EdgeCryptoTests/HashKDF: SHA-256, HMAC-SHA256 (Wycheproof), HKDF (Wycheproof, RFC 5869) and the Noise HKDF.
import EdgeCrypto
import EdgeTestSupport
import Testing

@Suite("SHA-256", .cpuBound)
struct SHA256Tests {
    @Test("FIPS 180-2 known answers")
    func knownAnswers() {
        #expect(SHA256.hash([]).hexString == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hash(Array("abc".utf8)).hexString
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let twoBlocks = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256.hash(twoBlocks).hexString
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test("Incremental hashing equals one-shot for every split point")
    func incremental() {
        let message = Random.bytes(count: 200)
        let expected = SHA256.hash(message)
        for split in stride(from: 0, through: message.count, by: 7) {
            var hasher = SHA256.Hasher()
            hasher.update(Array(message[..<split]))
            let fork = hasher  // copying forks the computation
            hasher.update(Array(message[split...]))
            #expect(hasher.finalize() == expected, "split \(split)")
            #expect(fork.finalize() == SHA256.hash(Array(message[..<split])))
        }
    }
}

@Suite("HMAC-SHA256", .cpuBound)
struct HMACTests {
    @Test("Wycheproof hmac_sha256_test.json (truncated-tag groups compare tagSize/8 bytes)")
    func wycheproof() throws {
        let file = try WycheproofFile("hmac_sha256_test.json")
        var validPassed = 0, invalidRejected = 0, truncatedVectors = 0
        for vector in file.cases {
            let key = vector.bytes("key"), message = vector.bytes("msg"), tag = vector.bytes("tag")
            let tagBytes = vector.groupInt("tagSize") / 8
            #expect(tag.count == tagBytes, "\(vector.label)")
            let mac = HMACSHA256.authenticate(key: key, message: message)
            let matches: Bool
            if tagBytes == 32 {
                matches = HMACSHA256.verify(mac: tag, key: key, message: message)
                #expect(matches == ConstantTime.equals(mac, tag), "\(vector.label)")
            } else {
                truncatedVectors += 1
                matches = ConstantTime.equals(Array(mac.prefix(tagBytes)), tag)
                // Policy: verify() only accepts full 32-byte MACs.
                #expect(!HMACSHA256.verify(mac: tag, key: key, message: message), "\(vector.label)")
            }
            switch vector.result {
            case "valid":
                if matches { validPassed += 1 } else { Issue.record("\(vector.label): MAC mismatch") }
            case "invalid":
                if !matches { invalidRejected += 1 } else { Issue.record("\(vector.label): invalid MAC accepted") }
            default:
                Issue.record("\(vector.label): unexpected result")
            }
        }
        #expect(file.cases.count > 0 && file.cases.count == file.numberOfTests)
        #expect(validPassed + invalidRejected == file.cases.count)
        print("""
            wycheproof hmac_sha256: \(validPassed) valid passed, \(invalidRejected) invalid rejected, 0 skipped \
            (\(truncatedVectors) vectors in 128-bit truncated-tag groups compared on 16 bytes)
            """)
    }

    @Test("RFC 4231 test case 2 and key-length handling")
    func knownAnswerAndKeys() {
        let mac = HMACSHA256.authenticate(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(mac.hexString == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // Keys longer than the 64-byte block are hashed first (RFC 2104): HMAC(k) == HMAC(SHA256(k)).
        let longKey = Random.bytes(count: 100), message = Random.bytes(count: 33)
        #expect(HMACSHA256.authenticate(key: longKey, message: message)
            == HMACSHA256.authenticate(key: SHA256.hash(longKey), message: message))
        // SecretKey and [UInt8] keys agree; an empty key works.
        #expect(HMACSHA256.authenticate(key: SecretKey(copying: longKey), message: message)
            == HMACSHA256.authenticate(key: longKey, message: message))
        let emptyKeyMAC = HMACSHA256.authenticate(key: [UInt8](), message: message)
        #expect(emptyKeyMAC == HMACSHA256.authenticate(key: [UInt8](repeating: 0, count: 32), message: message))
        var tampered = mac
        tampered[31] ^= 1
        #expect(!HMACSHA256.verify(mac: tampered, key: Array("Jefe".utf8),
                                   message: Array("what do ya want for nothing?".utf8)))
    }
}

@Suite("HKDF", .cpuBound)
struct HKDFTests {
    @Test("Wycheproof hkdf_sha256_test.json")
    func wycheproof() throws {
        let file = try WycheproofFile("hkdf_sha256_test.json")
        var validPassed = 0, invalidRejected = 0
        for vector in file.cases {
            let size = vector.test["size"] as? Int ?? -1
            let ikm = vector.bytes("ikm"), salt = vector.bytes("salt"), info = vector.bytes("info")
            switch vector.result {
            case "valid":
                let okm = try HKDF.deriveKey(salt: salt, ikm: ikm, info: info, length: size)
                if okm.count == size && okm.constantTimeEquals(vector.bytes("okm")) {
                    validPassed += 1
                } else {
                    Issue.record("\(vector.label): OKM mismatch")
                }
            case "invalid":
                #expect(vector.flags.contains("SizeTooLarge"), "\(vector.label)")
                #expect(throws: CryptoError.invalidLength) {
                    try HKDF.deriveKey(salt: salt, ikm: ikm, info: info, length: size)
                }
                invalidRejected += 1
            default:
                Issue.record("\(vector.label): unexpected result")
            }
        }
        #expect(file.cases.count > 0 && file.cases.count == file.numberOfTests)
        #expect(validPassed + invalidRejected == file.cases.count)
        print("wycheproof hkdf_sha256: \(validPassed) valid passed, \(invalidRejected) invalid rejected, 0 skipped")
    }

    struct RFC5869Case: Sendable, CustomTestStringConvertible {
        let number: Int
        let ikm: [UInt8], salt: [UInt8], info: [UInt8], length: Int
        let prk: String, okm: String
        var testDescription: String { "RFC 5869 test case \(number)" }
    }

    static let rfc5869Cases: [RFC5869Case] = [
        RFC5869Case(
            number: 1, ikm: [UInt8](repeating: 0x0b, count: 22), salt: Array(0x00...0x0c), info: Array(0xf0...0xf9),
            length: 42,
            prk: "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        ),
        RFC5869Case(
            number: 2, ikm: Array(0x00...0x4f), salt: Array(0x60...0xaf), info: Array(0xb0...0xff), length: 82,
            prk: "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
            okm: "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
                + "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
                + "cc30c58179ec3e87c14c01d5c1f3434f1d87"
        ),
        RFC5869Case(
            number: 3, ikm: [UInt8](repeating: 0x0b, count: 22), salt: [], info: [], length: 42,
            prk: "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        ),
    ]

    @Test("RFC 5869 test cases 1–3", arguments: rfc5869Cases)
    func rfc5869(_ testCase: RFC5869Case) throws {
        let prk = HKDF.extract(salt: testCase.salt, ikm: testCase.ikm)
        #expect(prk.withUnsafeBytes { [UInt8]($0) }.hexString == testCase.prk)
        let okm = try HKDF.expand(prk: prk, info: testCase.info, length: testCase.length)
        #expect(okm.withUnsafeBytes { [UInt8]($0) }.hexString == testCase.okm)
        let derived = try HKDF.deriveKey(salt: testCase.salt, ikm: testCase.ikm, info: testCase.info,
                                         length: testCase.length)
        #expect(derived.constantTimeEquals(okm))
    }

    @Test("Output length bounds and prefix property")
    func lengths() throws {
        let prk = Random.bytes(count: 32), info = Random.bytes(count: 5)
        let full = try HKDF.expand(prk: prk, info: info, length: HKDF.maximumOutputByteCount)
        #expect(full.count == 8160)
        let fullBytes = full.withUnsafeBytes { [UInt8]($0) }
        for length in [0, 1, 31, 32, 33, 64, 100, 8159] {
            let okm = try HKDF.expand(prk: prk, info: info, length: length)
            #expect(okm.withUnsafeBytes { [UInt8]($0) } == Array(fullBytes.prefix(length)), "length \(length)")
        }
        #expect(throws: CryptoError.invalidLength) { try HKDF.expand(prk: prk, info: info, length: 8161) }
        #expect(throws: CryptoError.invalidLength) { try HKDF.expand(prk: prk, info: info, length: -1) }
    }

    @Test("Noise HKDF with 2 and 3 outputs equals the §4.3 composition of HMAC calls", arguments: [0, 32, 56])
    func noise(inputLength: Int) throws {
        for _ in 0..<20 {
            let chainingKey = Random.bytes(count: 32), ikm = Random.bytes(count: inputLength)
            let temp = HMACSHA256.authenticate(key: chainingKey, message: ikm)
            let output1 = HMACSHA256.authenticate(key: temp, message: [0x01])
            let output2 = HMACSHA256.authenticate(key: temp, message: output1 + [0x02])
            let output3 = HMACSHA256.authenticate(key: temp, message: output2 + [0x03])

            let two = try HKDF.noise(chainingKey: chainingKey, inputKeyMaterial: ikm, outputs: 2)
            #expect(two.count == 2)
            #expect(two[0].constantTimeEquals(output1) && two[1].constantTimeEquals(output2))

            let three = try HKDF.noise(chainingKey: SecretKey(copying: chainingKey),
                                       inputKeyMaterial: SecretKey(copying: ikm), outputs: 3)
            #expect(three.count == 3)
            #expect(three[0].constantTimeEquals(output1))
            #expect(three[1].constantTimeEquals(output2))
            #expect(three[2].constantTimeEquals(output3))
        }
        for outputs in [0, 1, 4] {
            #expect(throws: CryptoError.invalidLength) {
                try HKDF.noise(chainingKey: Random.bytes(count: 32), inputKeyMaterial: [UInt8](), outputs: outputs)
            }
        }
    }
}
