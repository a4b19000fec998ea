// EdgeCryptoTests/SecretBytes: guarded secret storage, constant-time comparison, zeroing and randomness.
import EdgeCrypto
import EdgeTestSupport
import Testing

@Suite("SecretBytes, SecretKey and utilities")
struct SecretBytesTests {
    @Test("Zeroed, random and copied initialisation")
    func initialisation() {
        let zeroed = SecretBytes(zeroedCount: 48)
        #expect(zeroed.count == 48)
        #expect(zeroed.withUnsafeBytes { $0.allSatisfy { $0 == 0 } })

        let random1 = SecretBytes(randomCount: 32), random2 = SecretBytes(randomCount: 32)
        #expect(!random1.withUnsafeBytes { $0.allSatisfy { $0 == 0 } })
        let randomsEqual = random1.constantTimeEquals(random2)
        #expect(!randomsEqual)

        let source = Random.bytes(count: 40)
        let copied = SecretBytes(copying: source)
        #expect(copied.withUnsafeBytes { [UInt8]($0) } == source)
        let empty = SecretBytes(copying: [UInt8]())
        #expect(empty.count == 0)
        let emptyEqual = empty.constantTimeEquals([UInt8]())
        #expect(emptyEqual)
    }

    @Test("Constant-time comparison: equal, one bit apart, different lengths")
    func comparison() {
        let bytes = Random.bytes(count: 32)
        let a = SecretBytes(copying: bytes), b = SecretBytes(copying: bytes)
        let sameBytesEqual = a.constantTimeEquals(b)
        #expect(sameBytesEqual)
        let arrayEqual = a.constantTimeEquals(bytes)
        #expect(arrayEqual)
        for index in [0, 15, 31] {
            var flipped = bytes
            flipped[index] ^= 0x80
            let flippedEqual = a.constantTimeEquals(SecretBytes(copying: flipped))
            #expect(!flippedEqual, "byte \(index)")
            let flippedArrayEqual = a.constantTimeEquals(flipped)
            #expect(!flippedArrayEqual)
        }
        let shorterEqual = a.constantTimeEquals(SecretBytes(copying: Array(bytes.prefix(31))))
        #expect(!shorterEqual)
        let longerEqual = a.constantTimeEquals(bytes + [0])
        #expect(!longerEqual)

        #expect(ConstantTime.equals(bytes, bytes))
        #expect(ConstantTime.equals([], []))
        #expect(!ConstantTime.equals(bytes, Array(bytes.dropLast())))
        var other = bytes
        other[31] ^= 1
        #expect(!ConstantTime.equals(bytes, other))
    }

    @Test("Mutation through withUnsafeMutableBytes, and SecretKey wrapping")
    func mutationAndWrapping() {
        var secret = SecretBytes(zeroedCount: 16)
        secret.withUnsafeMutableBytes { buffer in
            for index in buffer.indices { buffer[index] = UInt8(index) }
        }
        #expect(secret.withUnsafeBytes { [UInt8]($0) } == Array(0..<16))
        let key = SecretKey(secret)  // consumes `secret`
        #expect(key.count == 16 && key.keyByteCount == 16)
        #expect(key.constantTimeEquals(Array(0..<16)))
        #expect(!key.constantTimeEquals(Array(1...16)))
        #expect(key.constantTimeEquals(SecretKey(copying: Array(0..<16))))
        let keys = [key, SecretKey(randomCount: 32), SecretKey(copying: [1, 2, 3])]  // storable in arrays
        #expect(keys.map(\.count) == [16, 32, 3])
    }

    @Test("SecretKey descriptions never reveal key bytes")
    func redaction() {
        let bytes: [UInt8] = Array(repeating: 0xab, count: 32)
        let key = SecretKey(copying: bytes)
        let rendered = "\(key) \(String(describing: key)) \(String(reflecting: key))"
        #expect(!rendered.lowercased().contains("abab"))
        #expect(!rendered.contains("171"))  // 0xab in decimal
        #expect(key.description == "SecretKey(32 bytes, redacted)")
        for error in [CryptoError.authenticationFailure, .weakPublicKey, .invalidKeySize, .internalFailure] {
            #expect(!"\(error)".isEmpty)
        }
    }

    @Test("Memory.zero and Random")
    func zeroAndRandom() {
        var array = Random.bytes(count: 64)
        #expect(array.contains { $0 != 0 })
        Memory.zero(&array)
        #expect(array.count == 64 && array.allSatisfy { $0 == 0 })

        #expect(Random.bytes(count: 0).isEmpty)
        let r1 = Random.bytes(count: 32), r2 = Random.bytes(count: 32)
        #expect(r1.count == 32 && r1 != r2)
        var buffer = [UInt8](repeating: 0, count: 32)
        Random.fill(&buffer)
        #expect(buffer.contains { $0 != 0 })
        #expect(Set(Random.bytes(count: 4096)).count > 200)  // all 256 values expected; 200 leaves huge margin
    }
}
