// EdgeVault/Vault+Keys: storing, loading, listing and deleting secret keys (`keys/<handle>.key`).
import EdgeCrypto
import EdgePOSIX
import SystemPackage

extension Vault {
    /// Generates a new random key of `type`, stores it, and returns its handle.
    ///
    /// - Throws: ``VaultError`` (``VaultError/Code/io`` if the key file cannot be written).
    public func generateKey(_ type: KeyType) throws(VaultError) -> KeyHandle {
        try importKey(type, secret: type.generateSecret())
    }

    /// Stores an existing secret of `type` and returns its handle. Storing a key that is already present rewrites
    /// its file (atomically) with the same key.
    ///
    /// - Parameter secret: 32 bytes: an Ed25519 seed, a P-256 scalar in `1..<n`, or an X25519 scalar.
    /// - Throws: ``VaultError/Code/invalidSecretKey`` if `secret` is not a valid key of `type`.
    public func importKey(_ type: KeyType, secret: SecretKey) throws(VaultError) -> KeyHandle {
        guard secret.count == type.secretByteCount, let publicKey = try? type.publicKey(secret: secret) else {
            throw .invalidSecretKey(type)
        }
        let handle = KeyHandle(publicKey: publicKey)
        try withHandles { (open) throws(VaultError) in
            try KeyFile.withEncoded(type: type, publicKey: publicKey, secret: secret, key: keyFileKey) {
                (bytes) throws(VaultError) in
                try Vault.atomicWrite(in: open.keys, at: keysPath, name: handle.fileName, bytes: bytes)
            }
        }
        return handle
    }

    /// The type and public key of the key `handle`. The file's structure and its handle are verified; the secret
    /// is not decrypted.
    ///
    /// - Throws: ``VaultError/Code/keyNotFound``, ``VaultError/Code/invalidKeyFile``.
    public func publicKey(_ handle: KeyHandle) throws(VaultError) -> (type: KeyType, publicKey: [UInt8]) {
        try withHandles { (open) throws(VaultError) in
            try withKeyFile(handle, open) { (parsed) throws(VaultError) in (parsed.type, parsed.publicKey) }
        }
    }

    /// The secret of the key `handle`, for the signing and key-agreement code.
    ///
    /// The file is fully verified first: format and size, decryption when the vault is encrypted at rest, the
    /// public key re-derived from the secret, and its SHA-256 against `handle`.
    ///
    /// - Throws: ``VaultError/Code/keyNotFound``, ``VaultError/Code/invalidKeyFile`` (corrupted, tampered with, or
    ///   swapped with another key's file).
    public func secretKey(_ handle: KeyHandle) throws(VaultError) -> SecretKey {
        try withHandles { (open) throws(VaultError) in
            try withKeyFile(handle, open) { (parsed) throws(VaultError) in
                do throws(FormatError) {
                    return try KeyFile.secret(of: parsed, key: keyFileKey)
                } catch {
                    throw .invalidKeyFile(keyPath(handle), error)
                }
            }
        }
    }

    /// Whether a key file for `handle` exists (its contents are not verified).
    public func containsKey(_ handle: KeyHandle) throws(VaultError) -> Bool {
        try withHandles { (open) throws(VaultError) in
            do throws(Errno) {
                _ = try open.keys.statAt(handle.fileName)
                return true
            } catch .noSuchFileOrDirectory {
                return false
            } catch {
                throw .io("examine", keyPath(handle), error)
            }
        }
    }

    /// Deletes the key `handle` durably.
    ///
    /// - Returns: `false` if there was no such key.
    @discardableResult
    public func deleteKey(_ handle: KeyHandle) throws(VaultError) -> Bool {
        try withHandles { (open) throws(VaultError) in
            try Vault.remove(handle.fileName, in: open.keys, at: keysPath)
        }
    }

    /// Every stored key with its type and public key, ordered by handle. Each file's structure and handle are
    /// verified (not its secret; use ``secretKey(_:)`` or ``check(at:options:)`` for that).
    ///
    /// - Throws: ``VaultError/Code/invalidKeyFile`` for the first damaged key file.
    public func listKeys() throws(VaultError) -> [StoredKey] {
        try withHandles { (open) throws(VaultError) in
            let names: [String]
            do throws(Errno) { names = try open.keys.directoryEntries() } catch { throw .io("list", keysPath, error) }
            var keys: [StoredKey] = []
            for handle in names.compactMap(KeyHandle.init(fileName:)).sorted() {
                let found = try withKeyFileIfPresent(handle, open) { (parsed) throws(VaultError) in
                    StoredKey(handle: handle, type: parsed.type, publicKey: parsed.publicKey)
                }
                if let found { keys.append(found) }  // nil: deleted between listing and reading
            }
            return keys
        }
    }

    // MARK: - Internals

    func keyPath(_ handle: KeyHandle) -> FilePath { keysPath.appending(handle.fileName) }

    /// Reads and structurally verifies the key file of `handle` (format, handle, encryption state), then passes it
    /// to `body`. The file buffer is zeroed afterwards.
    private func withKeyFile<R>(
        _ handle: KeyHandle, _ open: Handles, _ body: (KeyFile.Parsed) throws(VaultError) -> R
    ) throws(VaultError) -> R {
        guard let result = try withKeyFileIfPresent(handle, open, body) else {
            throw .keyNotFound(handle, vault: path)
        }
        return result
    }

    /// ``withKeyFile(_:_:_:)``, returning `nil` if the key file does not exist.
    private func withKeyFileIfPresent<R>(
        _ handle: KeyHandle, _ open: Handles, _ body: (KeyFile.Parsed) throws(VaultError) -> R
    ) throws(VaultError) -> R? {
        try Vault.withVaultFile(
            open.keys, handle.fileName, in: keysPath, user: user, limit: KeyFile.maximumByteCount
        ) { (bytes) throws(VaultError) -> R in
            let parsed: KeyFile.Parsed
            do throws(FormatError) {
                parsed = try KeyFile.parse(bytes)
                guard KeyHandle(publicKey: parsed.publicKey) == handle else { throw .handleMismatch }
                guard parsed.isEncrypted == isEncrypted else {
                    throw .encryptionMismatch(fileEncrypted: parsed.isEncrypted)
                }
            } catch {
                throw .invalidKeyFile(keyPath(handle), error)
            }
            return try body(parsed)
        }
    }

    /// Removes `name` from `directory` durably; `false` if it did not exist.
    static func remove(_ name: String, in directory: FileDescriptor, at directoryPath: FilePath) throws(VaultError)
        -> Bool
    {
        do throws(Errno) {
            try directory.unlinkAt(name)
        } catch .noSuchFileOrDirectory {
            return false
        } catch {
            throw .io("remove", directoryPath.appending(name), error)
        }
        do throws(Errno) {
            try directory.sync()
        } catch {
            throw .io("sync directory", directoryPath, error)
        }
        return true
    }
}
