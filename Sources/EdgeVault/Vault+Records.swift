// EdgeVault/Vault+Records: the named-record store for non-secret identity data (`records/<kind>/<name>`).
import EdgeCrypto
import EdgePOSIX
import SystemPackage

extension Vault {
    /// Stores `bytes` as the record `name` of `kind`, replacing any previous record atomically and durably.
    ///
    /// Records hold non-secret identity data (change history, purpose-key attestations, credentials, trust and
    /// device records); they are never encrypted at rest (see docs/vault.md, "Threat model"), but are checksummed.
    ///
    /// - Parameters:
    ///   - kind: the record's category, e.g. `"change-history"`; `[A-Za-z0-9._-]{1,128}`, not starting with `.`.
    ///   - name: the record's name within `kind`, same rule.
    ///   - bytes: at most ``maximumRecordByteCount`` bytes.
    /// - Throws: ``VaultError/Code/invalidName``, ``VaultError/Code/recordTooLarge``, ``VaultError/Code/io``.
    public func writeRecord(kind: String, name: String, bytes: [UInt8]) throws(VaultError) {
        try Vault.validate(kind: kind, name: name)
        guard bytes.count <= Vault.maximumRecordByteCount else { throw .recordTooLarge(bytes.count) }
        let encoded = RecordFile.encode(bytes)
        try withHandles { (open) throws(VaultError) in
            let directory = try kindDirectory(kind, open, create: true)!
            defer { try? directory.close() }
            try withBytes(encoded) { (raw) throws(VaultError) in
                try Vault.atomicWrite(in: directory, at: kindPath(kind), name: name, bytes: raw)
            }
        }
    }

    /// The record `name` of `kind`, or `nil` if there is none. Its checksum is verified.
    ///
    /// - Throws: ``VaultError/Code/invalidName``, ``VaultError/Code/invalidRecord`` (corrupted file).
    public func readRecord(kind: String, name: String) throws(VaultError) -> [UInt8]? {
        try Vault.validate(kind: kind, name: name)
        return try withHandles { (open) throws(VaultError) -> [UInt8]? in
            guard let directory = try kindDirectory(kind, open, create: false) else { return nil }
            defer { try? directory.close() }
            return try Vault.withVaultFile(
                directory, name, in: kindPath(kind), user: user, limit: RecordFile.maximumByteCount
            ) { (bytes) throws(VaultError) -> [UInt8] in
                do throws(FormatError) {
                    return try RecordFile.decode(bytes)
                } catch {
                    throw .invalidRecord(kindPath(kind).appending(name), error)
                }
            }
        }
    }

    /// The names of the records of `kind`, sorted; empty if there are none. Temporary files are never listed.
    public func listRecords(kind: String) throws(VaultError) -> [String] {
        guard VaultLayout.isValidName(kind) else { throw .invalidName("kind") }
        return try withHandles { (open) throws(VaultError) -> [String] in
            guard let directory = try kindDirectory(kind, open, create: false) else { return [] }
            defer { try? directory.close() }
            return try Vault.validNames(in: directory, at: kindPath(kind), type: .regular)
        }
    }

    /// The record kinds that exist, sorted.
    public func listRecordKinds() throws(VaultError) -> [String] {
        try withHandles { (open) throws(VaultError) -> [String] in
            try Vault.validNames(in: open.records, at: recordsPath, type: .directory)
        }
    }

    /// Deletes the record `name` of `kind` durably.
    ///
    /// - Returns: `false` if there was no such record.
    @discardableResult
    public func deleteRecord(kind: String, name: String) throws(VaultError) -> Bool {
        try Vault.validate(kind: kind, name: name)
        return try withHandles { (open) throws(VaultError) -> Bool in
            guard let directory = try kindDirectory(kind, open, create: false) else { return false }
            defer { try? directory.close() }
            return try Vault.remove(name, in: directory, at: kindPath(kind))
        }
    }

    // MARK: - Internals

    func kindPath(_ kind: String) -> FilePath { recordsPath.appending(kind) }

    static func validate(kind: String, name: String) throws(VaultError) {
        guard VaultLayout.isValidName(kind) else { throw .invalidName("kind") }
        guard VaultLayout.isValidName(name) else { throw .invalidName("name") }
    }

    /// Opens `records/<kind>` (creating it `0700`, durably, when `create`) and checks it.
    ///
    /// - Returns: `nil` if it does not exist and `create` is `false`.
    private func kindDirectory(_ kind: String, _ open: Handles, create: Bool) throws(VaultError) -> FileDescriptor? {
        let path = kindPath(kind)
        let directory: FileDescriptor
        let stat: Stat
        do throws(Errno) {
            do throws(Errno) {
                directory = try open.records.openDirectoryAt(kind)
            } catch .noSuchFileOrDirectory where create {
                do throws(Errno) {
                    try open.records.createDirectoryAt(kind, permissions: VaultLayout.directoryPermissions)
                } catch .fileExists {
                    // Created meanwhile by another thread of this process: fine, checked below.
                }
                try open.records.sync()
                directory = try open.records.openDirectoryAt(kind)
            }
            do throws(Errno) {
                stat = try directory.stat()
            } catch {
                try? directory.close()
                throw error
            }
        } catch .noSuchFileOrDirectory {
            return nil
        } catch .tooManySymbolicLinkLevels {
            throw .insecure([.symbolicLink(path, role: .directory)])
        } catch .notDirectory {
            throw .insecure([.wrongType(path, actual: .regular, role: .directory)])
        } catch {
            throw .io("open", path, error)
        }
        let problems = VaultLayout.problems(of: stat, at: path, role: .directory, user: user)
        if !problems.isEmpty {
            try? directory.close()
            throw .insecure(problems)
        }
        return directory
    }

    /// The valid names of entries of `type` in `directory`, sorted (temporary files and strays excluded).
    private static func validNames(
        in directory: FileDescriptor, at path: FilePath, type: FileType
    ) throws(VaultError) -> [String] {
        do throws(Errno) {
            var names: [String] = []
            for name in try directory.directoryEntries() where VaultLayout.isValidName(name) {
                guard let stat = try? directory.statAt(name), stat.type == type else { continue }
                names.append(name)
            }
            return names.sorted()
        } catch {
            throw .io("list", path, error)
        }
    }
}
