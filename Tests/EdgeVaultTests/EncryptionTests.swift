// EdgeVaultTests/EncryptionTests: encryption at rest, key checks, tampering and swapped key files, key loading.
import EdgeCrypto
import EdgeTestSupport
import Foundation
import SystemPackage
import Testing

@testable import EdgeVault

@Suite("Encryption at rest", .cpuBound)
struct EncryptionTests {
    @Test(
        "keys round-trip through an encrypted vault and never appear in plaintext on disk",
        arguments: KeyType.allCases)
    func roundTrip(type: KeyType) throws {
        try withTemporaryDirectory { directory in
            let keyFile = try makeKeyFile(in: directory)
            let path = directory.appending("vault")
            let options = VaultOptions(encryptionKey: try Vault.loadEncryptionKey(from: keyFile.path))
            var secretBytes = Random.bytes(count: 32)
            if type == .ecdsaP256 { secretBytes[0] &= 0x7f }  // comfortably below n
            defer { Memory.zero(&secretBytes) }
            let handle: KeyHandle
            do {
                let vault = try Vault.open(at: path, options: options)
                #expect(vault.isEncrypted)
                handle = try vault.importKey(type, secret: SecretKey(copying: secretBytes))
                vault.close()
            }
            let file = path.appending("keys").appending(handle.hex + ".key")
            let bytes = try readBytes(file)
            #expect(bytes.count == 7 + type.publicKeyByteCount + 12 + 32 + 16)
            #expect(bytes[6] == 1)  // flags: encrypted
            #expect(!contains(bytes, secretBytes))

            let vault = try Vault.open(at: path, options: options)
            defer { vault.close() }
            #expect(try vault.secretKey(handle).constantTimeEquals(secretBytes))
            #expect(try vault.listKeys().map(\.handle) == [handle])
            #expect(Vault.check(at: path, options: options).isEmpty)
        }
    }

    @Test("opening an encrypted vault without its key, or with another key, fails clearly")
    func wrongOrMissingKey() throws {
        try withTemporaryDirectory { directory in
            let keyFile = try makeKeyFile(in: directory)
            let path = directory.appending("vault")
            try populateVault(at: path, options: VaultOptions(encryptionKey: keyFile.key))

            let missing = expectVaultError(.encryptionKeyRequired) { try Vault.open(at: path) }
            #expect(
                missing?.description.hasPrefix("vault '\(path)' is encrypted at rest: supply its encryption key")
                    == true)

            let other = SecretKey(copying: Random.bytes(count: 32))
            let wrong = expectVaultError(.wrongEncryptionKey) {
                try Vault.open(at: path, options: VaultOptions(encryptionKey: other))
            }
            #expect(
                wrong?.description
                    == "the encryption key does not match vault '\(path)' (check which key file is configured)")
            #expect(Vault.check(at: path, options: VaultOptions(encryptionKey: other)).map(\.kind) == [.encryption])

            expectVaultError(.invalidEncryptionKey) {
                try Vault.open(at: path, options: VaultOptions(encryptionKey: SecretKey(copying: [1, 2, 3])))
            }
            // After all those failures the right key still works.
            let vault = try Vault.open(at: path, options: VaultOptions(encryptionKey: keyFile.key))
            #expect(try vault.listKeys().count == 3)
            vault.close()
        }
    }

    @Test("a plaintext vault refuses an encryption key instead of mixing")
    func plaintextVaultWithKey() throws {
        try withTemporaryDirectory { directory in
            let path = directory.appending("vault")
            try populateVault(at: path)
            let key = SecretKey(copying: Random.bytes(count: 32))
            let error = expectVaultError(.plaintextVault) {
                try Vault.open(at: path, options: VaultOptions(encryptionKey: key))
            }
            #expect(error?.description.contains("a vault never mixes plaintext and encrypted keys") == true)
            #expect(Vault.check(at: path, options: VaultOptions(encryptionKey: key)).map(\.kind) == [.encryption])
        }
    }

    @Test("a plaintext key file planted in an encrypted vault is rejected (and the other way round)")
    func mixedFilesRejected() throws {
        try withTemporaryDirectory { directory in
            let keyFile = try makeKeyFile(in: directory)
            let encrypted = directory.appending("encrypted")
            let plaintext = directory.appending("plaintext")
            let options = VaultOptions(encryptionKey: keyFile.key)
            let plainHandle = try populateVault(at: plaintext)
            let encryptedHandle = try populateVault(at: encrypted, options: options)
            let name = plainHandle.hex + ".key"
            try FileManager.default.copyItem(
                atPath: plaintext.appending("keys").appending(name).string,
                toPath: encrypted.appending("keys").appending(name).string)
            let vault = try Vault.open(at: encrypted, options: options)
            defer { vault.close() }
            let error = expectVaultError(.invalidKeyFile) { try vault.secretKey(plainHandle) }
            #expect(error?.description.contains("stored in plaintext but the vault is encrypted at rest") == true)
            expectVaultError(.invalidKeyFile) { try vault.listKeys() }
            #expect(Vault.check(at: encrypted, options: options).map(\.kind) == [.format])

            // The other way round: an encrypted key file planted in a plaintext vault.
            let encryptedName = encryptedHandle.hex + ".key"
            try FileManager.default.copyItem(
                atPath: encrypted.appending("keys").appending(encryptedName).string,
                toPath: plaintext.appending("keys").appending(encryptedName).string)
            let plainVault = try Vault.open(at: plaintext)
            defer { plainVault.close() }
            let reverse = expectVaultError(.invalidKeyFile) { try plainVault.secretKey(encryptedHandle) }
            #expect(reverse?.description.contains("encrypted but the vault is not encrypted at rest") == true)
            #expect(Vault.check(at: plaintext).map(\.kind) == [.format])
        }
    }

    @Test("every tampered byte of an encrypted key file is detected", arguments: [false, true])
    func tampering(encrypted: Bool) throws {
        try withTemporaryDirectory { directory in
            let keyFile = try makeKeyFile(in: directory)
            let path = directory.appending("vault")
            let options = VaultOptions(encryptionKey: encrypted ? keyFile.key : nil)
            let vault = try Vault.open(at: path, options: options)
            defer { vault.close() }
            let handle = try vault.generateKey(.ecdsaP256)
            let file = path.appending("keys").appending(handle.hex + ".key")
            let original = try readBytes(file)
            for index in original.indices {
                var tampered = original
                tampered[index] ^= 0x01
                try overwrite(file, with: tampered)
                let error = expectVaultError(.invalidKeyFile) { try vault.secretKey(handle) }
                #expect(error?.path == file)
            }
            try overwrite(file, with: original)
            #expect(try vault.secretKey(handle).count == 32)
        }
    }

    @Test("a key file swapped with another key's file is detected", arguments: [false, true])
    func swappedFiles(encrypted: Bool) throws {
        try withTemporaryDirectory { directory in
            let keyFile = try makeKeyFile(in: directory)
            let path = directory.appending("vault")
            let vault = try Vault.open(at: path, options: VaultOptions(encryptionKey: encrypted ? keyFile.key : nil))
            defer { vault.close() }
            let a = try vault.generateKey(.ed25519)
            let b = try vault.generateKey(.ed25519)
            let fileA = path.appending("keys").appending(a.hex + ".key")
            let fileB = path.appending("keys").appending(b.hex + ".key")
            let bytesA = try readBytes(fileA)
            let bytesB = try readBytes(fileB)

            // Whole file copied over another key's name: the public key no longer hashes to the name.
            try overwrite(fileB, with: bytesA)
            let renamed = expectVaultError(.invalidKeyFile) { try vault.secretKey(b) }
            #expect(renamed?.description.contains("does not match the handle in its name") == true)
            expectVaultError(.invalidKeyFile) { try vault.publicKey(b) }

            // B's header (its public key) with A's secret part: decryption (AAD) or re-derivation fails.
            try overwrite(fileB, with: Array(bytesB[..<39]) + Array(bytesA[39...]))
            let spliced = expectVaultError(.invalidKeyFile) { try vault.secretKey(b) }
            #expect(
                spliced?.description.contains(encrypted ? "decryption failed" : "does not match the public key") == true
            )

            try overwrite(fileB, with: bytesB)
            #expect(try vault.secretKey(b).count == 32)
            #expect(try vault.secretKey(a).count == 32)
        }
    }

    @Test("errors never contain the secret or the encryption key")
    func noSecretsInErrors() throws {
        try withTemporaryDirectory { directory in
            let keyFile = try makeKeyFile(in: directory)
            let path = directory.appending("vault")
            let vault = try Vault.open(at: path, options: VaultOptions(encryptionKey: keyFile.key))
            defer { vault.close() }
            var seed = Random.bytes(count: 32)
            defer { Memory.zero(&seed) }
            let handle = try vault.importKey(.ed25519, secret: SecretKey(copying: seed))
            let file = path.appending("keys").appending(handle.hex + ".key")
            var bytes = try readBytes(file)
            bytes[bytes.count - 1] ^= 0xff
            try overwrite(file, with: bytes)
            let error = try #require(expectVaultError(.invalidKeyFile) { try vault.secretKey(handle) })
            let operatorKey = try readBytes(keyFile.path)
            let text = error.description + String(describing: error)
            #expect(!text.lowercased().contains(seed.hexString))
            #expect(
                !text.contains(
                    String(decoding: operatorKey, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)))
        }
    }

    @Test("records stay plaintext (non-secret identity data) in an encrypted vault")
    func recordsArePlaintext() throws {
        try withTemporaryDirectory { directory in
            let keyFile = try makeKeyFile(in: directory)
            let path = directory.appending("vault")
            let vault = try Vault.open(at: path, options: VaultOptions(encryptionKey: keyFile.key))
            defer { vault.close() }
            let payload = Array("change history bytes".utf8)
            try vault.writeRecord(kind: "change-history", name: "I1234", bytes: payload)
            let onDisk = try readBytes(path.appending("records").appending("change-history").appending("I1234"))
            #expect(contains(onDisk, payload))
            #expect(try vault.readRecord(kind: "change-history", name: "I1234") == payload)
        }
    }

    // MARK: - loadEncryptionKey

    @Test("loadEncryptionKey reads 32 raw bytes or 64 hex characters")
    func loadFormats() throws {
        try withTemporaryDirectory { directory in
            let raw = Random.bytes(count: 32)
            let file = directory.appending("key")
            for contents in [
                raw, Array(raw.hexString.utf8), Array((raw.hexString + "\n").utf8),
                Array(("  " + raw.hexString.uppercased() + "\r\n").utf8),
            ] {
                try overwrite(file, with: contents)
                #expect(try Vault.loadEncryptionKey(from: file).constantTimeEquals(raw))
            }
            // A raw key may contain any byte, including newlines.
            let newlines = [UInt8](repeating: 0x0a, count: 32)
            try overwrite(file, with: newlines)
            #expect(try Vault.loadEncryptionKey(from: file).constantTimeEquals(newlines))
        }
    }

    @Test("loadEncryptionKey rejects bad contents, insecure modes and non-files")
    func loadRejects() throws {
        try withTemporaryDirectory { directory in
            let file = directory.appending("key")
            let bad: [[UInt8]] = [
                [], Random.bytes(count: 31), Random.bytes(count: 33), Array(String(repeating: "a", count: 63).utf8),
                Array((String(repeating: "a", count: 62) + "zz").utf8), Random.bytes(count: 200),
                [UInt8](repeating: 0, count: 32), Array(String(repeating: "0", count: 64).utf8),
            ]
            for contents in bad {
                try overwrite(file, with: contents)
                let error = expectVaultError(.invalidEncryptionKey) { try Vault.loadEncryptionKey(from: file) }
                #expect(error?.description.contains("'\(file)'") == true)
            }
            try overwrite(file, with: Array(Random.bytes(count: 32).hexString.utf8))
            try chmod(file, 0o640)
            let open = expectVaultError(.invalidEncryptionKey) { try Vault.loadEncryptionKey(from: file) }
            #expect(
                open?.description
                    == "encryption key file '\(file)': permissions 0640 are too open: the key file must not be "
                    + "accessible by group or others (run: chmod 600 \(file))"
            )
            try chmod(file, 0o400)
            #expect(try Vault.loadEncryptionKey(from: file).count == 32)
            expectVaultError(.invalidEncryptionKey) { try Vault.loadEncryptionKey(from: directory) }
            expectVaultError(.io) { try Vault.loadEncryptionKey(from: directory.appending("missing")) }
        }
    }
}

/// Whether `needle` occurs in `haystack`.
func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty }
    for start in 0...(haystack.count - needle.count) where haystack[start..<start + needle.count].elementsEqual(needle)
    {
        return true
    }
    return false
}
