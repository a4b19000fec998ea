// EdgeVaultTests/FormatTests: the key file, vault.meta and record decoders on bad input (typed errors, no traps).
import EdgeCrypto
import EdgeTestSupport
import Foundation
import SystemPackage
import Testing

@testable import EdgeVault

@Suite("File formats", .cpuBound)
struct FormatTests {
    /// A valid key file of `type`, plaintext or encrypted with `key`.
    func encodedKeyFile(_ type: KeyType, key: SecretKey? = nil) throws -> (bytes: [UInt8], handle: KeyHandle) {
        let secret = type.generateSecret()
        let publicKey = try type.publicKey(secret: secret)
        let bytes = KeyFile.withEncoded(type: type, publicKey: publicKey, secret: secret, key: key) { [UInt8]($0) }
        return (bytes, KeyHandle(publicKey: publicKey))
    }

    func parse(_ bytes: [UInt8]) -> Result<KeyFile.Parsed, FormatError> {
        bytes.withUnsafeBytes { raw in
            do throws(FormatError) { return .success(try KeyFile.parse(raw)) } catch { return .failure(error) }
        }
    }

    func parseError(_ bytes: [UInt8]) -> FormatError? {
        if case .failure(let error) = parse(bytes) { return error }
        return nil
    }

    @Test("valid key files of every type and encryption state decode", arguments: KeyType.allCases)
    func valid(type: KeyType) throws {
        let key = SecretKey(randomCount: 32)
        for encryption in [nil, key] {
            let (bytes, handle) = try encodedKeyFile(type, key: encryption)
            #expect(bytes.count == KeyFile.byteCount(type: type, encrypted: encryption != nil))
            let parsed = try parse(bytes).get()
            #expect(parsed.type == type)
            #expect(parsed.isEncrypted == (encryption != nil))
            #expect(KeyHandle(publicKey: parsed.publicKey) == handle)
            let secret = try bytes.withUnsafeBytes { raw in
                try KeyFile.secret(of: try KeyFile.parse(raw), key: encryption)
            }
            #expect(try type.publicKey(secret: secret) == parsed.publicKey)
        }
    }

    @Test("every truncation of a key file is a typed error", arguments: KeyType.allCases)
    func truncations(type: KeyType) throws {
        for encrypted in [false, true] {
            let (bytes, _) = try encodedKeyFile(type, key: encrypted ? SecretKey(randomCount: 32) : nil)
            for length in 0..<bytes.count {
                #expect(parseError(Array(bytes[..<length])) == .truncated, "length \(length)")
            }
            #expect(parseError(bytes + [0]) == .trailingBytes)
        }
    }

    @Test("bad headers are typed errors")
    func badHeaders() throws {
        let (bytes, _) = try encodedKeyFile(.ed25519)
        var wrongMagic = bytes
        wrongMagic[0] = UInt8(ascii: "X")
        #expect(parseError(wrongMagic) == .badMagic)
        #expect(parseError(Array("XY".utf8)) == .badMagic)
        var version = bytes
        version[4] = 2
        #expect(parseError(version) == .unsupportedVersion(2))
        for badType: UInt8 in [0, 4, 0xff] {
            var type = bytes
            type[5] = badType
            #expect(parseError(type) == .unknownKeyType(badType))
        }
        var flags = bytes
        flags[6] = 0x02
        #expect(parseError(flags) == .unknownFlags(0x02))
    }

    @Test("oversize key files are rejected before parsing")
    func oversize() {
        #expect(parseError([UInt8](repeating: 0x4f, count: KeyFile.maximumByteCount + 1)) == .tooLarge(limit: 4096))
        #expect(parseError(Array("OEVK".utf8) + [UInt8](repeating: 1, count: 10_000)) == .tooLarge(limit: 4096))
    }

    @Test("random garbage never traps (10 000 inputs)")
    func garbage() {
        var random = SeededGenerator(seed: 0xBAD_F11E)
        var accepted = 0
        for round in 0..<10_000 {
            let count = Int(random.next() % 160)
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            if round % 2 == 0, bytes.count >= 7 {  // half of them with a valid prefix, to get past the magic
                bytes.replaceSubrange(
                    0..<7, with: Array("OEVK".utf8) + [1, UInt8(1 + round % 3), UInt8(round % 4 / 2)])
            }
            if case .success(let parsed) = parse(bytes) {
                accepted += 1
                _ = bytes.withUnsafeBytes { raw in try? KeyFile.secret(of: parsed, key: nil) }
            }
            _ = bytes.withUnsafeBytes { raw in try? RecordFile.decode(raw) }
            _ = bytes.withUnsafeBytes { raw in try? MetaFile.parse(raw) }
        }
        #expect(accepted > 0)  // lengths that happen to match do parse; their secrets then fail verification
    }

    @Test("bad key files on disk give invalidKeyFile errors naming the file")
    func badFilesOnDisk() throws {
        try withVaultPath { path in
            let vault = try Vault.open(at: path)
            defer { vault.close() }
            let handle = try vault.generateKey(.x25519)
            let file = path.appending("keys").appending(handle.hex + ".key")
            let good = try readBytes(file)
            let cases: [([UInt8], String)] = [
                ([], "truncated"),
                (Array(good.prefix(20)), "truncated"),
                (Random.bytes(count: 71), "magic"),
                (good + Random.bytes(count: 5000), "larger than the 4096-byte limit"),
                (good + [0], "trailing bytes"),
            ]
            for (contents, reason) in cases {
                try overwrite(file, with: contents)
                for error in [
                    expectVaultError(.invalidKeyFile) { try vault.secretKey(handle) },
                    expectVaultError(.invalidKeyFile) { try vault.publicKey(handle) },
                    expectVaultError(.invalidKeyFile) { try vault.listKeys() },
                ] {
                    #expect(error?.description.contains("'\(file)' is not a valid key file") == true)
                    #expect(error?.description.contains(reason) == true, "\(String(describing: error))")
                }
            }
            // A huge file is read only up to the limit.
            try overwrite(file, with: [UInt8](repeating: 7, count: 1 << 20))
            expectVaultError(.invalidKeyFile) { try vault.secretKey(handle) }
        }
    }

    @Test("records: checksums, truncation, oversize and garbage are typed errors")
    func records() throws {
        let payload = Array("purpose key attestation".utf8)
        let encoded = RecordFile.encode(payload)
        func decode(_ bytes: [UInt8]) -> Result<[UInt8], FormatError> {
            bytes.withUnsafeBytes { raw in
                do throws(FormatError) { return .success(try RecordFile.decode(raw)) } catch { return .failure(error) }
            }
        }
        #expect(try decode(encoded).get() == payload)
        #expect(try decode(RecordFile.encode([])).get() == [])
        for length in 0..<encoded.count {
            guard case .failure(let error) = decode(Array(encoded[..<length])) else {
                Issue.record("truncation to \(length) accepted")
                continue
            }
            #expect(error == .truncated || error == .checksumMismatch, "length \(length)")
        }
        for index in encoded.indices {
            var flipped = encoded
            flipped[index] ^= 0x10
            #expect(throws: FormatError.self, "byte \(index)") { try decode(flipped).get() }
        }
        // A length field beyond the limit is rejected without allocating.
        var huge = encoded
        huge.replaceSubrange(8..<12, with: [0x7f, 0xff, 0xff, 0xff])
        #expect(throws: FormatError.tooLarge(limit: RecordFile.maximumByteCount)) { try decode(huge).get() }
        #expect(throws: FormatError.trailingBytes) { try decode(encoded + [0]).get() }
    }

    @Test("vault.meta: damage refuses opening; a vault with keys but no metadata is refused")
    func metadata() throws {
        try withVaultPath { path in
            try populateVault(at: path)
            let meta = path.appending("vault.meta")
            let good = try readBytes(meta)
            #expect(good == Array("OEVM".utf8) + [1, 0, 0, 0])
            for bad in [
                [], Array(good.prefix(5)), good + [0], Array("OEVM".utf8) + [1, 4, 0, 0],
                Array("OEVM".utf8) + [1, 0, 0, 1],
                Array("OEVM".utf8) + [9, 0, 0, 0], [UInt8](repeating: 0, count: 300),
            ] {
                try overwrite(meta, with: bad)
                let error = expectVaultError(.invalidMetadata) { try Vault.open(at: path) }
                #expect(error?.description.hasPrefix("'\(meta)': not a valid vault metadata file") == true)
                #expect(Vault.check(at: path).map(\.kind) == [.format])
            }
            try FileManager.default.removeItem(atPath: meta.string)
            let missing = expectVaultError(.invalidMetadata) { try Vault.open(at: path) }
            #expect(missing?.description.contains("missing, but the vault holds keys") == true)
            #expect(Vault.check(at: path).map(\.kind) == [.format])
            try overwrite(meta, with: good)
            try Vault.open(at: path).close()
        }
    }
}
