// EdgeVault: a file vault for the agent's secret keys and identity records (0700 dir, 0600 files, atomic, locked).
//
// Layout, file formats, permission rules with their exact messages, the atomic write procedure, the lock and the
// encryption-at-rest threat model are documented in docs/vault.md.
import EdgeCrypto
import EdgePOSIX
import EdgeSync
import SystemPackage

/// How to open a vault.
public struct VaultOptions: Sendable {
    /// The 32-byte encryption key for keys at rest, or `nil` (the default) for a plaintext vault.
    ///
    /// A new vault created with a key is encrypted at rest for its whole life; an existing vault must be opened
    /// the way it was created (see ``Vault/open(at:options:)``). Load the key with
    /// ``Vault/loadEncryptionKey(from:)``.
    public var encryptionKey: SecretKey?

    /// Options for a plaintext vault, or for an encrypted one when `encryptionKey` is given.
    public init(encryptionKey: SecretKey? = nil) {
        self.encryptionKey = encryptionKey
    }
}

/// A directory of secret keys and identity records, held open and locked by one agent process.
///
/// ```
/// <vault>/            0700
///   .lock             0600  flock(LOCK_EX) while open; holds the owner's pid
///   vault.meta        0600  format version, encryption-at-rest flag and key check
///   keys/             0700
///     <handle>.key    0600  one secret key (handle = SHA-256 of the public key, hex)
///   records/          0700
///     <kind>/         0700
///       <name>        0600  non-secret identity data (≤ 1 MiB)
/// ```
///
/// All methods are synchronous and may block on disk I/O (every write is fsynced). A `Vault` is `Sendable`:
/// calls from several threads are serialised by an internal mutex.
///
/// ### Invariants
/// - The vault directory is `0700` and every file `0600`, owned by the effective user, from the moment of
///   creation: files are created with that mode (`O_CREAT|O_EXCL`), never `chmod`ed afterwards, and an existing
///   vault with any group/other access, another owner, or a symbolic link anywhere in it is refused, never
///   repaired silently.
/// - Symbolic links are never followed inside the vault: every open uses `O_NOFOLLOW` relative to the vault's
///   directory descriptor, and the vault directory itself is opened with `O_NOFOLLOW`.
/// - Every file is replaced atomically and durably (temporary file, `fsync`, `rename`, `fsync` of the directory):
///   after a crash at any point each file is either its old or its new version, never partial.
/// - While a `Vault` is open it holds an exclusive `flock` on `.lock`; no other `Vault` (in any process) can open
///   the same directory until it is closed or deinitialised.
/// - Secrets leave the vault only as ``SecretKey``s; every temporary buffer that held a secret (file contents,
///   decrypted plaintext) is zeroed. Errors and descriptions never contain secrets or record contents.
/// - Every key read is verified: format, size, decryption (if encrypted), the public key re-derived from the
///   secret, and its SHA-256 compared with the handle in the file name.
public final class Vault: Sendable {
    /// The open descriptors: the vault directory, its two subdirectories and the lock file.
    struct Handles: Sendable {
        let root: FileDescriptor
        let keys: FileDescriptor
        let records: FileDescriptor
        let lock: FileDescriptor
    }

    /// The vault directory.
    public let path: FilePath
    /// `<vault>/keys` and `<vault>/records`.
    let keysPath: FilePath
    let recordsPath: FilePath
    /// Whether the vault's keys are encrypted at rest.
    public let isEncrypted: Bool
    /// The derived key-file key when encrypted at rest.
    let keyFileKey: SecretKey?
    /// The effective user the vault belongs to.
    let user: UInt32
    /// `nil` once closed.
    private let handles: EdgeMutex<Handles?>

    /// The largest record payload (1 MiB).
    public static let maximumRecordByteCount = RecordFile.maximumPayloadByteCount

    /// The vault directory of the system service: `/var/lib/ockam-edge/vault`, i.e. `$STATE_DIRECTORY/vault` with
    /// `StateDirectory=ockam-edge` and `StateDirectoryMode=0700` in the systemd unit.
    public static let systemServicePath: FilePath = "/var/lib/ockam-edge/vault"

    private init(path: FilePath, isEncrypted: Bool, keyFileKey: SecretKey?, user: UInt32, handles: Handles) {
        self.path = path
        self.keysPath = path.appending(VaultLayout.keysDirectory)
        self.recordsPath = path.appending(VaultLayout.recordsDirectory)
        self.isEncrypted = isEncrypted
        self.keyFileKey = keyFileKey
        self.user = user
        self.handles = EdgeMutex(handles)
    }

    deinit {
        handles.withLock { Vault.release(&$0) }
    }

    // MARK: - Opening and closing

    /// Opens the vault at `path`, creating it if missing, and locks it for this object's lifetime.
    ///
    /// A missing directory is created with mode `0700`, together with any missing parents (also `0700`). An
    /// existing one is refused (``VaultError/Code/insecure``, listing every problem with its fix) if it, or any
    /// file or directory in it, is accessible by group or others, owned by another user, a symbolic link, of the
    /// wrong file type, or cannot be examined.
    /// Leftover temporary files from interrupted writes are removed.
    ///
    /// Encryption at rest is fixed when the vault is created: with `options.encryptionKey` the new vault is
    /// encrypted, without it plaintext. Opening an encrypted vault without its key, with another key, or a
    /// plaintext vault with a key, fails (``VaultError/Code/encryptionKeyRequired``,
    /// ``VaultError/Code/wrongEncryptionKey``, ``VaultError/Code/plaintextVault``): a vault never mixes the two.
    ///
    /// - Throws: ``VaultError`` — notably ``VaultError/Code/inUse`` if another `Vault`, in this process or another,
    ///   has it open.
    public static func open(at path: FilePath, options: VaultOptions = VaultOptions()) throws(VaultError) -> Vault {
        let user = effectiveUserID
        var cipher: VaultCipher?
        if let key = options.encryptionKey {
            guard let derived = VaultCipher(operatorKey: key) else {
                throw .invalidEncryptionKey(nil, "must be exactly 32 bytes")
            }
            cipher = derived
        }

        let (root, rootProblems) = try openVaultDirectory(path, user: user, create: true)
        var opened: [FileDescriptor] = [root]
        var heldLock: FileDescriptor?
        var succeeded = false
        defer {
            if !succeeded {
                // flock(2) belongs to the open file description, which a child forked by another thread shares
                // until it execs: closing our descriptor alone could leave the vault locked for that moment.
                if let heldLock { releaseLock(heldLock) }
                for fd in opened.reversed() { try? fd.close() }
            }
        }
        if !rootProblems.isEmpty {
            // Refused; but report everything at once, from a read-only walk (nothing is created or locked).
            var inspector = VaultInspector(root: path, user: user, deep: false)
            inspector.walk(vault: root)
            throw .insecure(rootProblems + inspector.problems.filter(\.refusesOpen))
        }

        // The lock comes first: everything below happens with it held.
        let lock = try acquireLock(root, vault: path, user: user)
        opened.append(lock)
        heldLock = lock

        var inspector = VaultInspector(root: path, user: user, deep: false)
        inspector.walk(vault: root)
        let refusals = inspector.problems.filter(\.refusesOpen)
        if !refusals.isEmpty { throw .insecure(refusals) }

        try removeTemporaryFiles(root, at: path)
        let keys = try ensureDirectory(root, VaultLayout.keysDirectory, vault: path, user: user)
        opened.append(keys)
        let records = try ensureDirectory(root, VaultLayout.recordsDirectory, vault: path, user: user)
        opened.append(records)
        try removeTemporaryFiles(keys, at: path.appending(VaultLayout.keysDirectory))
        for kind in (try? records.directoryEntries()) ?? [] where VaultLayout.isValidName(kind) {
            guard let directory = try? records.openDirectoryAt(kind) else { continue }
            defer { try? directory.close() }
            try removeTemporaryFiles(directory, at: path.appending(VaultLayout.recordsDirectory).appending(kind))
        }

        let isEncrypted = try loadOrCreateMetadata(
            root, vault: path, user: user, cipher: cipher, hasKeys: inspector.sawKeyFile
        )
        succeeded = true
        return Vault(
            path: path, isEncrypted: isEncrypted, keyFileKey: cipher?.keyFileKey, user: user,
            handles: Handles(root: root, keys: keys, records: records, lock: lock)
        )
    }

    /// Releases the lock and closes the vault. Later calls on this object throw ``VaultError/Code/closed``.
    /// Closing twice is harmless; `deinit` closes an open vault.
    public func close() {
        handles.withLock { Vault.release(&$0) }
    }

    /// Whether ``close()`` has been called.
    public var isClosed: Bool {
        handles.withLock { $0 == nil }
    }

    private static func release(_ handles: inout Handles?) {
        guard let open = handles else { return }
        handles = nil
        releaseLock(open.lock)
        try? open.records.close()
        try? open.keys.close()
        try? open.lock.close()
        try? open.root.close()
    }

    /// Runs `body` with the open descriptors, serialised with every other call on this vault.
    func withHandles<R>(_ body: (Handles) throws(VaultError) -> R) throws(VaultError) -> R {
        let result: Result<R, VaultError> = handles.withLock { handles in
            guard let open = handles else { return .failure(.closed(path)) }
            do throws(VaultError) {
                return .success(try body(open))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    // MARK: - Open steps

    /// Opens (creating it if allowed and missing) the vault directory without following a link, and checks it.
    ///
    /// - Returns: the directory and its own owner/mode problems (the caller refuses if there are any).
    /// - Throws: ``VaultError/Code/insecure`` if `path` is a symbolic link or not a directory.
    static func openVaultDirectory(
        _ path: FilePath, user: UInt32, create: Bool
    ) throws(VaultError) -> (FileDescriptor, [VaultProblem]) {
        var existing: Stat?
        do throws(Errno) {
            existing = try Stat(path, followTargetSymlink: false)
        } catch .noSuchFileOrDirectory where create {
            existing = nil
        } catch {
            throw .io("examine vault directory", path, error)
        }
        if let existing {
            if existing.type == .symbolicLink { throw .insecure([.symbolicLink(path, role: .vaultDirectory)]) }
            if existing.type != .directory {
                throw .insecure([.wrongType(path, actual: existing.type, role: .vaultDirectory)])
            }
        } else {
            try createVaultDirectory(path)
        }

        let root: FileDescriptor
        do throws(Errno) {
            root = try systemCall {
                try FileDescriptor.open(path, .readOnly, options: [.directory, .noFollow, .closeOnExec])
            }
        } catch .tooManySymbolicLinkLevels {
            throw .insecure([.symbolicLink(path, role: .vaultDirectory)])
        } catch {
            throw .io("open vault directory", path, error)
        }
        let stat: Stat
        do throws(Errno) {
            stat = try root.stat()
        } catch {
            try? root.close()
            throw .io("examine vault directory", path, error)
        }
        return (root, VaultLayout.problems(of: stat, at: path, role: .vaultDirectory, user: user))
    }

    /// `mkdir -p -m 0700`, then makes each new directory entry durable.
    private static func createVaultDirectory(_ path: FilePath) throws(VaultError) {
        do throws(Errno) {
            for directory in try createDirectories(path, permissions: VaultLayout.directoryPermissions) {
                let parent = directory.removingLastComponent()
                let fd = try systemCall {
                    try FileDescriptor.open(
                        parent.isEmpty ? "." : parent, .readOnly, options: [.directory, .closeOnExec]
                    )
                }
                defer { try? fd.close() }
                try fd.sync()
            }
        } catch {
            throw .io("create vault directory", path, error)
        }
    }

    /// Opens `.lock` (creating it `0600`), checks it, takes `flock(LOCK_EX|LOCK_NB)` and records our pid.
    private static func acquireLock(_ root: FileDescriptor, vault: FilePath, user: UInt32) throws(VaultError)
        -> FileDescriptor
    {
        let lockPath = vault.appending(VaultLayout.lockFile)
        let lock: FileDescriptor
        do throws(Errno) {
            lock = try root.openAt(
                VaultLayout.lockFile, .readWrite, options: [.create, .noFollow, .nonBlocking],
                permissions: VaultLayout.filePermissions
            )
        } catch .tooManySymbolicLinkLevels {
            throw .insecure([.symbolicLink(lockPath, role: .file)])
        } catch {
            throw .io("open lock file", lockPath, error)
        }
        do throws(VaultError) {
            let stat: Stat
            do throws(Errno) { stat = try lock.stat() } catch { throw .io("examine lock file", lockPath, error) }
            let problems = VaultLayout.problems(of: stat, at: lockPath, role: .file, user: user)
            if !problems.isEmpty { throw .insecure(problems) }
            let locked: Bool
            do throws(Errno) { locked = try lock.tryLockExclusive() } catch { throw .io("lock", lockPath, error) }
            guard locked else { throw .inUse(vault, pid: readLockHolder(lock)) }
            do throws(Errno) {
                try systemCall { try lock.resize(to: 0) }
                _ = try systemCall { try lock.writeAll(toAbsoluteOffset: 0, Array("\(currentProcessID)\n".utf8)) }
            } catch {
                releaseLock(lock)
                throw .io("write lock file", lockPath, error)
            }
        } catch {
            try? lock.close()
            throw error
        }
        return lock
    }

    /// Forgets our pid and drops the `flock` explicitly (`LOCK_UN` releases it for every descriptor that shares the
    /// open file description, including copies in children forked by other threads that have not exec'd yet).
    private static func releaseLock(_ lock: FileDescriptor) {
        try? lock.resize(to: 0)
        try? lock.unlock()
    }

    /// The pid written in a lock file by its holder, if readable.
    private static func readLockHolder(_ lock: FileDescriptor) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = (try? buffer.withUnsafeMutableBytes { try lock.read(fromAbsoluteOffset: 0, into: $0) }) ?? 0
        let digits = buffer.prefix(count).prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        guard !digits.isEmpty, digits.count <= 10 else { return nil }
        return Int32(String(decoding: digits, as: UTF8.self))
    }

    /// Opens the subdirectory `name`, creating it (`0700`, durably) if missing, and checks it.
    private static func ensureDirectory(
        _ root: FileDescriptor, _ name: String, vault: FilePath, user: UInt32
    ) throws(VaultError) -> FileDescriptor {
        let path = vault.appending(name)
        let directory: FileDescriptor
        let stat: Stat
        do throws(Errno) {
            do throws(Errno) {
                directory = try root.openDirectoryAt(name)
            } catch .noSuchFileOrDirectory {
                try root.createDirectoryAt(name, permissions: VaultLayout.directoryPermissions)
                try root.sync()
                directory = try root.openDirectoryAt(name)
            }
            do throws(Errno) {
                stat = try directory.stat()
            } catch {
                try? directory.close()
                throw error
            }
        } catch .tooManySymbolicLinkLevels {
            throw .insecure([.symbolicLink(path, role: .directory)])
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

    /// Removes leftover `.tmp-*` files (regular files or links) from `directory`, durably.
    private static func removeTemporaryFiles(_ directory: FileDescriptor, at path: FilePath) throws(VaultError) {
        do throws(Errno) {
            var removed = false
            for name in try directory.directoryEntries() where VaultLayout.isTemporary(name) {
                guard let stat = try? directory.statAt(name), stat.type == .regular || stat.type == .symbolicLink
                else { continue }
                try directory.unlinkAt(name)
                removed = true
            }
            if removed { try directory.sync() }
        } catch {
            throw .io("remove temporary files in", path, error)
        }
    }

    /// Reads `vault.meta` and checks the encryption key against it; writes it for a new vault.
    ///
    /// - Returns: whether the vault is encrypted at rest.
    private static func loadOrCreateMetadata(
        _ root: FileDescriptor, vault: FilePath, user: UInt32, cipher: VaultCipher?, hasKeys: Bool
    ) throws(VaultError) -> Bool {
        let metaPath = vault.appending(MetaFile.fileName)
        let parsed = try withVaultFile(root, MetaFile.fileName, in: vault, user: user, limit: MetaFile.maximumByteCount)
        {
            (bytes) throws(VaultError) -> MetaFile.Parsed in
            do throws(FormatError) {
                return try MetaFile.parse(bytes)
            } catch {
                throw .invalidMetadata(metaPath, "not a valid vault metadata file: \(error) (restore it from a backup)")
            }
        }
        guard let parsed else {
            if hasKeys {
                throw .invalidMetadata(
                    metaPath,
                    "missing, but the vault holds keys: its encryption state is unknown "
                        + "(restore the file from a backup)"
                )
            }
            let encoded = MetaFile.encode(checkKey: cipher?.checkKey)
            try withBytes(encoded) { (bytes) throws(VaultError) in
                try atomicWrite(in: root, at: vault, name: MetaFile.fileName, bytes: bytes)
            }
            return cipher != nil
        }
        switch (parsed.isEncrypted, cipher) {
        case (true, nil): throw .encryptionKeyRequired(vault)
        case (false, .some): throw .plaintextVault(vault)
        case (true, .some(let cipher)):
            guard MetaFile.accepts(parsed, checkKey: cipher.checkKey) else { throw .wrongEncryptionKey(vault) }
            return true
        case (false, nil):
            return false
        }
    }

    // MARK: - File primitives

    /// Replaces `directory/name` atomically and durably with `bytes`.
    ///
    /// 1. create `.tmp-<16 random hex>` with `O_CREAT|O_EXCL|O_WRONLY|O_CLOEXEC|O_NOFOLLOW`, mode `0600`;
    /// 2. write everything and `fsync` it;
    /// 3. `renameat` it over `name` (atomic replacement; a link at `name` is replaced, not followed);
    /// 4. `fsync` the directory, making the rename durable.
    ///
    /// On failure before the rename the temporary file is removed; after a crash, it is removed by the next
    /// ``open(at:options:)``.
    static func atomicWrite(
        in directory: FileDescriptor, at directoryPath: FilePath, name: String, bytes: UnsafeRawBufferPointer
    ) throws(VaultError) {
        func target() -> FilePath { directoryPath.appending(name) }
        var temporaryName = ""
        var file: FileDescriptor?
        for _ in 0..<8 {
            temporaryName = VaultLayout.temporaryPrefix + Hex.encode(Random.bytes(count: 8))
            do throws(Errno) {
                file = try directory.openAt(
                    temporaryName, .writeOnly, options: [.create, .exclusiveCreate, .noFollow],
                    permissions: VaultLayout.filePermissions
                )
                break
            } catch .fileExists {
                continue
            } catch {
                throw .io("create a temporary file for", target(), error)
            }
        }
        guard let file else { throw .io("create a temporary file for", target(), .fileExists) }
        do throws(Errno) {
            do throws(Errno) {
                try file.writeAll(bytes)
                try file.sync()
            } catch {
                try? file.close()
                throw error
            }
            try systemCall { try file.close() }
            try directory.renameAt(temporaryName, to: name)
        } catch {
            try? directory.unlinkAt(temporaryName)
            throw .io("write", target(), error)
        }
        do throws(Errno) {
            try directory.sync()
        } catch {
            throw .io("sync directory", directoryPath, error)
        }
    }

    /// Opens `directory/name` for reading without following links (or blocking on a FIFO), checks its type, owner
    /// and mode, reads at most `limit` bytes and passes them to `body`. The read buffer is zeroed afterwards.
    ///
    /// - Returns: `nil` if the file does not exist.
    /// - Throws: ``VaultError/Code/insecure`` for a link or a bad owner/mode, ``VaultError/Code/io``, errors from
    ///   `body`; a file over `limit` is passed to `body` as `limit + 1` bytes so the decoder reports it.
    static func withVaultFile<R>(
        _ directory: FileDescriptor, _ name: String, in directoryPath: FilePath, user: UInt32, limit: Int,
        _ body: (UnsafeRawBufferPointer) throws(VaultError) -> R
    ) throws(VaultError) -> R? {
        // The full path is only needed in errors; building a FilePath is not free, so it is built lazily.
        func path() -> FilePath { directoryPath.appending(name) }
        let fd: FileDescriptor
        do throws(Errno) {
            fd = try directory.openAt(name, .readOnly, options: [.noFollow, .nonBlocking])
        } catch .noSuchFileOrDirectory {
            return nil
        } catch .tooManySymbolicLinkLevels {
            throw .insecure([.symbolicLink(path(), role: .file)])
        } catch {
            throw .io("open", path(), error)
        }
        defer { try? fd.close() }
        let stat: Stat
        do throws(Errno) { stat = try fd.stat() } catch { throw .io("examine", path(), error) }
        let problems = VaultLayout.problems(of: stat, at: path, role: .file, user: user)
        if !problems.isEmpty { throw .insecure(problems) }
        let read: (buffer: UnsafeMutableRawBufferPointer, count: Int)
        do throws(Errno) {
            read = try fd.readUpTo(limit: limit, sizeHint: Int(clamping: stat.size))
        } catch {
            throw .io("read", path(), error)
        }
        defer {
            Memory.zero(read.buffer)
            read.buffer.deallocate()
        }
        return try body(UnsafeRawBufferPointer(rebasing: read.buffer[..<read.count]))
    }

}
