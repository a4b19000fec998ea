// EdgeVault/VaultProblem: permission, ownership and format problems, and the walk that finds them.
import EdgeCrypto
import EdgePOSIX
import SystemPackage

/// One problem found in a vault: where, what, and how to fix it.
///
/// ``Vault/open(at:options:)`` refuses a vault with any problem whose ``refusesOpen`` is `true` and reports them
/// all in ``VaultError/problems``; ``Vault/check(at:options:)`` returns every problem without refusing.
///
/// ### Invariants
/// - Problems name paths, modes and user IDs only; never file contents or key material.
public struct VaultProblem: Hashable, Sendable, CustomStringConvertible {
    /// The category of a problem.
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        /// Group or other users have access (mode bits in `0o077`).
        case permissions
        /// Owned by a user other than the running (effective) user.
        case owner
        /// A symbolic link where the vault expects a directory or a file (the vault never follows links).
        case symbolicLink
        /// A file where a directory is expected or the other way round, or a device, FIFO or socket.
        case fileType
        /// A key file, record or `vault.meta` that does not decode or verify.
        case format
        /// An entry that is not part of the vault layout (harmless but suspicious).
        case unexpectedEntry
        /// The vault directory does not exist.
        case missing
        /// An entry could not be examined (the system call failed).
        case unreadable
        /// The encryption key does not match, or a key was given for a plaintext vault.
        case encryption
    }

    /// The category.
    public let kind: Kind
    /// The file or directory concerned.
    public let path: FilePath
    /// What is wrong.
    public let problem: String
    /// How to fix it.
    public let fix: String
    /// The full message: the problem and its fix, in the style of OpenSSH's permission errors.
    public let description: String

    /// Whether ``Vault/open(at:options:)`` refuses a vault with this problem (permissions, owner, symbolic
    /// links, file types, unreadable entries).
    public var refusesOpen: Bool {
        switch kind {
        case .permissions, .owner, .symbolicLink, .fileType, .unreadable: true
        case .format, .unexpectedEntry, .missing, .encryption: false
        }
    }

    init(_ kind: Kind, _ path: FilePath, problem: String, fix: String, description: String? = nil) {
        self.kind = kind
        self.path = path
        self.problem = problem
        self.fix = fix
        self.description = description ?? "\(problem) (\(fix))"
    }

    // MARK: Factories

    /// The role of an entry, for messages.
    enum Role {
        case vaultDirectory, directory, file

        var isDirectory: Bool { self != .file }
    }

    static func tooOpen(_ path: FilePath, mode: UInt32, role: Role) -> VaultProblem {
        let rule =
            switch role {
            case .vaultDirectory: "the vault directory must be accessible by its owner only"
            case .directory: "vault directories must be accessible by their owner only"
            case .file: "vault files must be readable and writable by their owner only"
            }
        return VaultProblem(
            .permissions, path,
            problem: "permissions \(octal(mode)) for '\(path)' are too open: \(rule)",
            fix: "run: chmod \(role.isDirectory ? "700" : "600") \(shellQuoted(path))"
        )
    }

    static func wrongOwner(_ path: FilePath, owner: UInt32, user: UInt32) -> VaultProblem {
        let problem = "'\(path)' is owned by uid \(owner), not by the running user (uid \(user))"
        let fix = "run ockam-edge as its owner or chown it"
        return VaultProblem(.owner, path, problem: problem, fix: fix, description: "\(problem): \(fix)")
    }

    static func symbolicLink(_ path: FilePath, role: Role) -> VaultProblem {
        switch role {
        case .vaultDirectory:
            VaultProblem(
                .symbolicLink, path,
                problem: "'\(path)' is a symbolic link: the vault directory must be a real directory",
                fix: "configure the link's target as the vault path instead"
            )
        case .directory, .file:
            VaultProblem(
                .symbolicLink, path,
                problem: "'\(path)' is a symbolic link: the vault never follows symbolic links",
                fix: "replace it with the \(role == .file ? "file" : "directory") it points to, or remove it"
            )
        }
    }

    static func wrongType(_ path: FilePath, actual: FileType, role: Role) -> VaultProblem {
        let expected = role.isDirectory ? "a directory" : "a regular file"
        return VaultProblem(
            .fileType, path,
            problem: "'\(path)' is \(typeName(actual)), but the vault expects \(expected)",
            fix: "move it out of the vault"
        )
    }

    static func format(_ path: FilePath, _ reason: String, fix: String? = nil) -> VaultProblem {
        VaultProblem(
            .format, path, problem: "'\(path)' is invalid: \(reason)",
            fix: fix ?? "restore it from a backup, or remove it: rm \(shellQuoted(path))"
        )
    }

    static func unexpected(_ path: FilePath) -> VaultProblem {
        VaultProblem(
            .unexpectedEntry, path, problem: "'\(path)' is not part of the vault layout",
            fix: "move it out of the vault directory"
        )
    }

    static func missing(_ path: FilePath) -> VaultProblem {
        VaultProblem(
            .missing, path, problem: "vault '\(path)' does not exist",
            fix: "it is created, with mode 0700, the first time ockam-edge opens it"
        )
    }

    static func unreadable(_ path: FilePath, _ errno: Errno) -> VaultProblem {
        VaultProblem(
            .unreadable, path, problem: "'\(path)' cannot be examined: \(errno)",
            fix: "run the check as the vault's owner"
        )
    }

    static func encryption(_ path: FilePath, problem: String, fix: String) -> VaultProblem {
        VaultProblem(.encryption, path, problem: problem, fix: fix)
    }

    // MARK: Formatting

    /// `0755`-style: four octal digits of the permission bits.
    static func octal(_ mode: UInt32) -> String {
        let digits = String(mode & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    static func typeName(_ type: FileType) -> String {
        switch type {
        case .directory: "a directory"
        case .regular: "a regular file"
        case .symbolicLink: "a symbolic link"
        case .fifo: "a FIFO"
        case .socket: "a socket"
        case .characterSpecial: "a character device"
        case .blockSpecial: "a block device"
        default: "a special file"
        }
    }

    /// `path` as a POSIX shell word: unchanged when it only has safe characters, otherwise single-quoted.
    static func shellQuoted(_ path: FilePath) -> String {
        let string = path.string
        let safe = string.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                true
            case UInt8(ascii: "/"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "+"),
                UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "%"), UInt8(ascii: "="), UInt8(ascii: ","):
                true
            default: false
            }
        }
        if safe && !string.isEmpty { return string }
        var quoted = "'"
        for character in string {
            if character == "'" { quoted += "'\\''" } else { quoted.append(character) }
        }
        return quoted + "'"
    }
}

// MARK: - Layout

/// Names of the vault layout (docs/vault.md, "Layout").
enum VaultLayout {
    static let lockFile = ".lock"
    static let keysDirectory = "keys"
    static let recordsDirectory = "records"
    static let temporaryPrefix = ".tmp-"
    static let directoryPermissions: FilePermissions = .ownerReadWriteExecute  // 0700
    static let filePermissions: FilePermissions = .ownerReadWrite  // 0600
    /// Mode bits that must be clear on every vault directory and file.
    static let forbiddenBits: UInt32 = 0o077

    static func isTemporary(_ name: String) -> Bool { name.hasPrefix(temporaryPrefix) }

    /// Whether `name` is a valid record kind or name: `[A-Za-z0-9._-]{1,128}`, not starting with `.` (which also
    /// excludes `.`, `..`, temporary files and `.lock`).
    static func isValidName(_ name: String) -> Bool {
        let utf8 = name.utf8
        guard (1...128).contains(utf8.count), utf8.first != UInt8(ascii: ".") else { return false }
        return utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default: false
            }
        }
    }

    /// The security problems of one entry, from its `lstat`/`fstat`: a symbolic link, the wrong type, another
    /// owner, group/other mode bits.
    static func problems(of stat: Stat, at path: FilePath, role: VaultProblem.Role, user: UInt32) -> [VaultProblem] {
        problems(of: stat, at: { path }, role: role, user: user)
    }

    /// Whether an entry passes every check of ``problems(of:at:role:user:)`` (cheap: builds no path).
    static func isAcceptable(_ stat: Stat, role: VaultProblem.Role, user: UInt32) -> Bool {
        stat.type == (role.isDirectory ? .directory : .regular) && stat.userID.rawValue == user
            && UInt32(stat.permissions.rawValue) & forbiddenBits == 0
    }

    /// ``problems(of:at:role:user:)`` with the path built only when there is a problem.
    static func problems(
        of stat: Stat, at path: () -> FilePath, role: VaultProblem.Role, user: UInt32
    ) -> [VaultProblem] {
        if isAcceptable(stat, role: role, user: user) { return [] }
        let path = path()
        if stat.type == .symbolicLink { return [.symbolicLink(path, role: role)] }
        var problems: [VaultProblem] = []
        let expected: FileType = role.isDirectory ? .directory : .regular
        if stat.type != expected { problems.append(.wrongType(path, actual: stat.type, role: role)) }
        if stat.userID.rawValue != user {
            problems.append(.wrongOwner(path, owner: stat.userID.rawValue, user: user))
        }
        let mode = UInt32(stat.permissions.rawValue)
        if mode & forbiddenBits != 0 { problems.append(.tooOpen(path, mode: mode, role: role)) }
        return problems
    }
}

// MARK: - Inspection walk

/// One directory entry met by the walk; its full path is only built when needed (for a problem).
struct WalkEntry {
    let parent: FilePath
    let name: String
    let stat: Stat

    var path: FilePath { parent.appending(name) }
}

/// Walks a vault directory and collects problems: the security checks always, the contents too when `deep`.
///
/// Used with the lock held by ``Vault/open(at:options:)`` (security only) and without it by
/// ``Vault/check(at:options:)`` (everything). Entries that vanish during the walk (a concurrent atomic write or
/// delete) are skipped; temporary files (`.tmp-*`) are ignored.
struct VaultInspector {
    let root: FilePath
    let user: UInt32
    let deep: Bool
    /// For deep checks: whether the vault is encrypted (from `vault.meta`), when known.
    var vaultEncrypted: Bool?
    /// For deep checks of an encrypted vault: the key-file key, when supplied and verified.
    var keyFileKey: SecretKey?
    private(set) var problems: [VaultProblem] = []
    /// Whether any key file was seen (a vault with keys must have `vault.meta`).
    private(set) var sawKeyFile = false
    /// Deep walks: the type of every key file that parsed, and the number of records of each kind.
    private(set) var keyTypes: [KeyType] = []
    private(set) var recordCounts: [String: Int] = [:]

    init(root: FilePath, user: UInt32, deep: Bool) {
        self.root = root
        self.user = user
        self.deep = deep
    }

    mutating func add(_ problem: VaultProblem) { problems.append(problem) }

    /// Walks the vault directory `directory` (already opened and checked).
    mutating func walk(vault directory: FileDescriptor) {
        for entry in entries(of: directory, at: root) {
            switch entry.name {
            case VaultLayout.lockFile, MetaFile.fileName:
                check(entry, .file)
            case VaultLayout.keysDirectory:
                if check(entry, .directory), let keys = open(directory, entry) {
                    walkKeys(keys, at: entry.path)
                    try? keys.close()
                }
            case VaultLayout.recordsDirectory:
                if check(entry, .directory), let records = open(directory, entry) {
                    walkRecords(records, at: entry.path)
                    try? records.close()
                }
            default:
                unexpected(entry)
            }
        }
    }

    private mutating func walkKeys(_ directory: FileDescriptor, at path: FilePath) {
        for entry in entries(of: directory, at: path) {
            guard let handle = KeyHandle(fileName: entry.name) else {
                unexpected(entry)
                continue
            }
            sawKeyFile = true
            if check(entry, .file), deep {
                verifyKeyFile(directory, entry, handle: handle)
            }
        }
    }

    private mutating func walkRecords(_ directory: FileDescriptor, at path: FilePath) {
        for kind in entries(of: directory, at: path) {
            guard VaultLayout.isValidName(kind.name) else {
                unexpected(kind)
                continue
            }
            guard check(kind, .directory), let kindDirectory = open(directory, kind) else { continue }
            defer { try? kindDirectory.close() }
            let kindPath = kind.path
            for record in entries(of: kindDirectory, at: kindPath) {
                guard VaultLayout.isValidName(record.name) else {
                    unexpected(record)
                    continue
                }
                recordCounts[kind.name, default: 0] += 1
                if check(record, .file), deep {
                    verifyRecord(kindDirectory, record)
                }
            }
        }
    }

    // MARK: Content checks

    private mutating func verifyKeyFile(_ directory: FileDescriptor, _ entry: WalkEntry, handle: KeyHandle) {
        let vaultEncrypted = vaultEncrypted
        let keyFileKey = keyFileKey
        let outcome: Result<KeyType, FormatError>? = withFileBytes(directory, entry, limit: KeyFile.maximumByteCount) {
            bytes in
            do throws(FormatError) {
                let parsed = try KeyFile.parse(bytes)
                guard KeyHandle(publicKey: parsed.publicKey) == handle else { throw .handleMismatch }
                if let vaultEncrypted, vaultEncrypted != parsed.isEncrypted {
                    throw .encryptionMismatch(fileEncrypted: parsed.isEncrypted)
                }
                if !parsed.isEncrypted {
                    _ = try KeyFile.secret(of: parsed, key: nil)
                } else if let keyFileKey {
                    _ = try KeyFile.secret(of: parsed, key: keyFileKey)
                }
                return .success(parsed.type)
            } catch {
                return .failure(error)
            }
        }
        switch outcome {
        case .failure(let reason): add(.format(entry.path, reason.description))
        case .success(let type): keyTypes.append(type)
        case nil: break
        }
    }

    private mutating func verifyRecord(_ directory: FileDescriptor, _ entry: WalkEntry) {
        let outcome: Result<Void, FormatError>? = withFileBytes(directory, entry, limit: RecordFile.maximumByteCount) {
            bytes in
            do throws(FormatError) {
                _ = try RecordFile.decode(bytes)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        if case .failure(let reason) = outcome {
            add(.format(entry.path, reason.description))
        }
    }

    /// Reads a whole file (at most `limit + 1` bytes, without following links or blocking on FIFOs) and passes it
    /// to `body`; the buffer is zeroed afterwards. `nil` if the file vanished or could not be read (recorded).
    private mutating func withFileBytes<R>(
        _ directory: FileDescriptor, _ entry: WalkEntry, limit: Int,
        _ body: (UnsafeRawBufferPointer) -> Result<R, FormatError>
    ) -> Result<R, FormatError>? {
        let fd: FileDescriptor
        do throws(Errno) {
            fd = try directory.openAt(entry.name, .readOnly, options: [.noFollow, .nonBlocking])
        } catch {
            if error != .noSuchFileOrDirectory { add(.unreadable(entry.path, error)) }
            return nil
        }
        defer { try? fd.close() }
        let read: (buffer: UnsafeMutableRawBufferPointer, count: Int)
        do throws(Errno) {
            read = try fd.readUpTo(limit: limit, sizeHint: Int(clamping: entry.stat.size))
        } catch {
            add(.unreadable(entry.path, error))
            return nil
        }
        defer {
            Memory.zero(read.buffer)
            read.buffer.deallocate()
        }
        if read.count > limit { return .failure(.tooLarge(limit: limit)) }
        return body(UnsafeRawBufferPointer(rebasing: read.buffer[..<read.count]))
    }

    // MARK: Helpers

    /// The entries of `directory` with their `lstat`, sorted by name, without temporary files; entries that
    /// vanished are skipped and errors recorded.
    private mutating func entries(of directory: FileDescriptor, at path: FilePath) -> [WalkEntry] {
        let names: [String]
        do throws(Errno) {
            names = try directory.directoryEntries()
        } catch {
            add(.unreadable(path, error))
            return []
        }
        var result: [WalkEntry] = []
        for name in names.sorted() where !VaultLayout.isTemporary(name) {
            do throws(Errno) {
                result.append(WalkEntry(parent: path, name: name, stat: try directory.statAt(name)))
            } catch {
                if error != .noSuchFileOrDirectory { add(.unreadable(path.appending(name), error)) }
            }
        }
        return result
    }

    /// Records the security problems of an entry; `true` if it is of the expected type and not a link (so it
    /// can be descended into or read).
    @discardableResult
    private mutating func check(_ entry: WalkEntry, _ role: VaultProblem.Role) -> Bool {
        let found = VaultLayout.problems(of: entry.stat, at: { entry.path }, role: role, user: user)
        problems += found
        return !found.contains { $0.kind == .symbolicLink || $0.kind == .fileType }
    }

    /// An entry outside the layout: reported, and held to the same security rules as its type.
    private mutating func unexpected(_ entry: WalkEntry) {
        add(.unexpected(entry.path))
        let type = entry.stat.type
        if type == .symbolicLink || type == .directory || type == .regular {
            check(entry, type == .directory ? .directory : .file)
        } else {
            add(.wrongType(entry.path, actual: type, role: .file))
        }
    }

    private mutating func open(_ directory: FileDescriptor, _ entry: WalkEntry) -> FileDescriptor? {
        do throws(Errno) {
            return try directory.openDirectoryAt(entry.name)
        } catch {
            if error != .noSuchFileOrDirectory { add(.unreadable(entry.path, error)) }
            return nil
        }
    }
}
