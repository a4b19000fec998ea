// EdgeVaultTests/KeyTests: key round trips, handles, public-key re-derivation, listing and deletion.
import EdgeCrypto
import EdgeTestSupport
import Foundation
import SystemPackage
import Testing

@testable import EdgeVault

@Suite("Keys", .cpuBound)
struct KeyTests {
    @Test("generate, reopen and load a key", arguments: KeyType.allCases)
    func roundTrip(type: KeyType) throws {
        try withVaultPath { path in
            let handle: KeyHandle
            let publicKey: [UInt8]
            do {
                let vault = try Vault.open(at: path)
                handle = try vault.generateKey(type)
                let stored = try vault.publicKey(handle)
                publicKey = stored.publicKey
                #expect(stored.type == type)
                #expect(publicKey.count == type.publicKeyByteCount)
                #expect(handle.bytes == SHA256.hash(publicKey))
                #expect(handle == KeyHandle(publicKey: publicKey))
                #expect(handle.hex.count == 64)
                vault.close()
            }
            let vault = try Vault.open(at: path)
            defer { vault.close() }
            let secret = try vault.secretKey(handle)
            #expect(secret.count == 32)
            #expect(try derivePublicKey(type, secret) == publicKey)
            #expect(try vault.publicKey(handle).publicKey == publicKey)
            #expect(try vault.listKeys() == [StoredKey(handle: handle, type: type, publicKey: publicKey)])
            #expect(try vault.containsKey(handle))
            #expect(try vault.deleteKey(handle))
            #expect(try vault.deleteKey(handle) == false)
            #expect(try vault.containsKey(handle) == false)
            #expect(try vault.listKeys().isEmpty)
            expectVaultError(.keyNotFound) { try vault.secretKey(handle) }
            expectVaultError(.keyNotFound) { try vault.publicKey(handle) }
        }
    }

    @Test("imported keys keep their public key and handle (RFC 8032 test 1)")
    func importKnownKey() throws {
        let seed = [UInt8](hex: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        let expectedPublicKey = [UInt8](hex: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        try withVaultPath { path in
            let vault = try Vault.open(at: path)
            defer { vault.close() }
            let handle = try vault.importKey(.ed25519, secret: SecretKey(copying: seed))
            #expect(handle.bytes == SHA256.hash(expectedPublicKey))
            #expect(try vault.publicKey(handle).publicKey == expectedPublicKey)
            #expect(try vault.secretKey(handle).constantTimeEquals(seed))
            // Importing the same key again rewrites the same file.
            #expect(try vault.importKey(.ed25519, secret: SecretKey(copying: seed)) == handle)
            #expect(try vault.listKeys().count == 1)
        }
    }

    @Test("importing an invalid secret is refused")
    func importInvalid() throws {
        try withVaultPath { path in
            let vault = try Vault.open(at: path)
            defer { vault.close() }
            expectVaultError(.invalidSecretKey) {
                try vault.importKey(.ed25519, secret: SecretKey(copying: [UInt8](repeating: 1, count: 31)))
            }
            expectVaultError(.invalidSecretKey) {
                try vault.importKey(.x25519, secret: SecretKey(copying: [UInt8](repeating: 1, count: 33)))
            }
            // P-256 scalars must be in 1..<n.
            expectVaultError(.invalidSecretKey) {
                try vault.importKey(.ecdsaP256, secret: SecretKey(copying: [UInt8](repeating: 0, count: 32)))
            }
            expectVaultError(.invalidSecretKey) {
                try vault.importKey(.ecdsaP256, secret: SecretKey(copying: [UInt8](repeating: 0xff, count: 32)))
            }
            #expect(try vault.listKeys().isEmpty)
        }
    }

    @Test("listKeys returns every key, sorted by handle, with its type")
    func listing() throws {
        try withVaultPath { path in
            let vault = try Vault.open(at: path)
            defer { vault.close() }
            var expected: [KeyHandle: KeyType] = [:]
            for type in KeyType.allCases {
                for _ in 0..<3 { expected[try vault.generateKey(type)] = type }
            }
            let listed = try vault.listKeys()
            #expect(listed.count == 9)
            #expect(listed.map(\.handle) == expected.keys.sorted())
            for key in listed {
                #expect(expected[key.handle] == key.type)
                #expect(KeyHandle(publicKey: key.publicKey) == key.handle)
            }
            // Files are named <64 hex>.key.
            let files = try entries(path.appending("keys"))
            #expect(Set(files) == Set(expected.keys.map { $0.hex + ".key" }))
        }
    }

    @Test("a secret that does not derive the stored public key is detected")
    func publicKeyRederivation() throws {
        try withVaultPath { path in
            let vault = try Vault.open(at: path)
            defer { vault.close() }
            let handle = try vault.generateKey(.ed25519)
            let file = path.appending("keys").appending(handle.hex + ".key")
            var bytes = try readBytes(file)
            #expect(bytes.count == 7 + 32 + 32)
            // Replace the secret (last 32 bytes), keeping header and public key: a well-formed file whose secret
            // belongs to another key.
            bytes.replaceSubrange(39..., with: Random.bytes(count: 32))
            try overwrite(file, with: bytes)
            #expect(try vault.publicKey(handle).type == .ed25519)  // the header alone still looks fine
            let error = expectVaultError(.invalidKeyFile) { try vault.secretKey(handle) }
            #expect(error?.description.contains(file.string) == true)
            #expect(error?.description.contains("does not match the public key") == true)
        }
    }

    @Test("handles parse from hex and order like their bytes")
    func handles() throws {
        let handle = KeyHandle(publicKey: [1, 2, 3])
        #expect(KeyHandle(hex: handle.hex) == handle)
        #expect(KeyHandle(hex: handle.hex.uppercased()) == handle)
        #expect(KeyHandle(hex: String(handle.hex.dropLast())) == nil)
        #expect(KeyHandle(hex: String(repeating: "g", count: 64)) == nil)
        #expect(KeyHandle(bytes: [UInt8](repeating: 0, count: 31)) == nil)
        #expect(KeyHandle(fileName: handle.hex + ".key") == handle)
        #expect(KeyHandle(fileName: handle.hex.uppercased() + ".key") == nil)
        #expect(KeyHandle(fileName: handle.hex) == nil)
        let a = KeyHandle(bytes: [UInt8](repeating: 0, count: 32))!
        let b = KeyHandle(bytes: [UInt8](repeating: 0, count: 31) + [1])!
        #expect(a < b && a.hex < b.hex)
    }

    @Test("a closed vault refuses every operation")
    func closedVault() throws {
        try withVaultPath { path in
            let vault = try Vault.open(at: path)
            let handle = try vault.generateKey(.x25519)
            vault.close()
            vault.close()  // idempotent
            #expect(vault.isClosed)
            expectVaultError(.closed) { try vault.secretKey(handle) }
            expectVaultError(.closed) { try vault.generateKey(.x25519) }
            expectVaultError(.closed) { try vault.listKeys() }
            expectVaultError(.closed) { try vault.readRecord(kind: "k", name: "n") }
        }
    }

    @Test("a vault is usable from several threads at once")
    func concurrentUse() async throws {
        try await withTemporaryDirectoryAsync { directory in
            let vault = try Vault.open(at: directory.appending("vault"))
            defer { vault.close() }
            try await withThrowingTaskGroup(of: KeyHandle.self) { group in
                for index in 0..<8 {
                    group.addTask {
                        let handle = try vault.generateKey(KeyType.allCases[index % 3])
                        try vault.writeRecord(kind: "threads", name: "r\(index)", bytes: [UInt8(index)])
                        _ = try vault.secretKey(handle)
                        return handle
                    }
                }
                var handles: [KeyHandle] = []
                for try await handle in group { handles.append(handle) }
                #expect(try vault.listKeys().map(\.handle) == handles.sorted())
            }
            #expect(try vault.listRecords(kind: "threads").count == 8)
        }
    }
}
