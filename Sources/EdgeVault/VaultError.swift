// EdgeVault/VaultError: the vault's error type (a struct with an extensible code, per the house style §2.7).
import SystemPackage

/// An error from a vault operation.
///
/// Compare errors by ``code`` (equality and hashing use the code only); ``description`` is a complete sentence
/// for an operator: it names the file or directory concerned and, where there is one, the fix.
///
/// ### Invariants
/// - Never contains key material, decrypted data, record contents or the encryption key: messages are built only
///   from paths, modes, user and process IDs, `errno` descriptions and fixed format-defect reasons.
public struct VaultError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, independent of the path and details.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case insecure, inUse, keyNotFound, invalidKeyFile, invalidRecord, invalidName, recordTooLarge
            case invalidSecretKey, encryptionKeyRequired, wrongEncryptionKey, plaintextVault, invalidEncryptionKey
            case invalidMetadata, closed, io
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The vault, or a file or directory in it, is accessible by other users, owned by another user, a
        /// symbolic link, or of the wrong file type. ``VaultError/problems`` lists every such problem found.
        public static let insecure = Code(.insecure)
        /// Another `Vault` (in this or another process) holds the vault's lock.
        public static let inUse = Code(.inUse)
        /// No key with the given handle is stored.
        public static let keyNotFound = Code(.keyNotFound)
        /// A key file is malformed, corrupted, swapped, or fails decryption.
        public static let invalidKeyFile = Code(.invalidKeyFile)
        /// A record file is malformed or corrupted.
        public static let invalidRecord = Code(.invalidRecord)
        /// A record kind or name is not `[A-Za-z0-9._-]{1,128}` or starts with `.`.
        public static let invalidName = Code(.invalidName)
        /// A record is larger than 1 MiB.
        public static let recordTooLarge = Code(.recordTooLarge)
        /// An imported secret has the wrong length or is not a valid key of its type.
        public static let invalidSecretKey = Code(.invalidSecretKey)
        /// The vault is encrypted at rest and no encryption key was supplied.
        public static let encryptionKeyRequired = Code(.encryptionKeyRequired)
        /// The supplied encryption key is not the vault's.
        public static let wrongEncryptionKey = Code(.wrongEncryptionKey)
        /// An encryption key was supplied for a vault that is not encrypted at rest.
        public static let plaintextVault = Code(.plaintextVault)
        /// The encryption key (or its file) is not 32 bytes / 64 hex characters, is all zeros, or its file is
        /// insecure.
        public static let invalidEncryptionKey = Code(.invalidEncryptionKey)
        /// `vault.meta` is missing from a vault that holds keys, or is malformed.
        public static let invalidMetadata = Code(.invalidMetadata)
        /// The vault was closed.
        public static let closed = Code(.closed)
        /// A system call failed; ``VaultError/errno`` has the error.
        public static let io = Code(.io)

        /// The code's name, e.g. `insecure`.
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let code: Code
    /// The file or directory concerned, if any.
    public let path: FilePath?
    /// For ``Code/insecure``: every problem found (each with its path and fix). Empty otherwise.
    public let problems: [VaultProblem]
    /// For ``Code/io``: the system error.
    public let errno: Errno?
    /// For ``Code/inUse``: the process ID recorded in the lock file, if it could be read.
    public let lockHolderPID: Int32?
    private let message: String

    private init(
        _ code: Code, path: FilePath?, message: String, problems: [VaultProblem] = [], errno: Errno? = nil,
        pid: Int32? = nil
    ) {
        self.code = code
        self.path = path
        self.message = message
        self.problems = problems
        self.errno = errno
        self.lockHolderPID = pid
    }

    /// The operator-facing message: what is wrong, where, and how to fix it.
    public var description: String { message }

    /// Errors are equal when their codes are (paths and details are ignored).
    public static func == (lhs: VaultError, rhs: VaultError) -> Bool { lhs.code == rhs.code }

    /// Hashes the code only, consistently with `==`.
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    // MARK: Factories (cold paths)

    @inline(never)
    static func insecure(_ problems: [VaultProblem]) -> VaultError {
        precondition(!problems.isEmpty)
        let message =
            problems.count == 1
            ? problems[0].description
            : "\(problems.count) problems refuse opening the vault:\n"
                + problems.map { "- \($0)" }.joined(separator: "\n")
        return VaultError(.insecure, path: problems[0].path, message: message, problems: problems)
    }

    @inline(never)
    static func inUse(_ vault: FilePath, pid: Int32?) -> VaultError {
        let holder = pid.map { "pid \($0)" } ?? "pid unknown"
        return VaultError(
            .inUse, path: vault,
            message: "vault '\(vault)' is in use by another ockam-edge process (\(holder))", pid: pid
        )
    }

    @inline(never)
    static func keyNotFound(_ handle: KeyHandle, vault: FilePath) -> VaultError {
        VaultError(.keyNotFound, path: vault, message: "no key \(handle.hex) in vault '\(vault)'")
    }

    @inline(never)
    static func invalidKeyFile(_ path: FilePath, _ reason: FormatError) -> VaultError {
        VaultError(
            .invalidKeyFile, path: path,
            message: "'\(path)' is not a valid key file: \(reason) (run `ockam-edge vault check`; restore the file "
                + "from a backup or remove it)"
        )
    }

    @inline(never)
    static func invalidRecord(_ path: FilePath, _ reason: FormatError) -> VaultError {
        VaultError(
            .invalidRecord, path: path,
            message: "'\(path)' is not a valid vault record: \(reason) (restore the file from a backup or remove it)"
        )
    }

    @inline(never)
    static func invalidName(_ role: String) -> VaultError {
        VaultError(
            .invalidName, path: nil,
            message: "invalid record \(role): use 1 to 128 characters from A-Z a-z 0-9 . _ - not starting with '.'"
        )
    }

    @inline(never)
    static func recordTooLarge(_ count: Int) -> VaultError {
        VaultError(
            .recordTooLarge, path: nil,
            message: "record of \(count) bytes exceeds the \(RecordFile.maximumPayloadByteCount)-byte limit"
        )
    }

    @inline(never)
    static func invalidSecretKey(_ type: KeyType) -> VaultError {
        VaultError(
            .invalidSecretKey, path: nil,
            message: "the secret is not a valid \(type) key (it must be \(type.secretByteCount) bytes"
                + (type == .ecdsaP256 ? " and a scalar in 1..<n)" : ")")
        )
    }

    @inline(never)
    static func encryptionKeyRequired(_ vault: FilePath) -> VaultError {
        VaultError(
            .encryptionKeyRequired, path: vault,
            message: "vault '\(vault)' is encrypted at rest: supply its encryption key (for the service, a systemd "
                + "credential named vault-key: LoadCredentialEncrypted=vault-key:...)"
        )
    }

    @inline(never)
    static func wrongEncryptionKey(_ vault: FilePath) -> VaultError {
        VaultError(
            .wrongEncryptionKey, path: vault,
            message: "the encryption key does not match vault '\(vault)' (check which key file is configured)"
        )
    }

    @inline(never)
    static func plaintextVault(_ vault: FilePath) -> VaultError {
        VaultError(
            .plaintextVault, path: vault,
            message:
                "vault '\(vault)' is not encrypted at rest, but an encryption key was supplied: a vault never mixes "
                + "plaintext and encrypted keys (start without the key, or create a new encrypted vault and import "
                + "the keys into it)"
        )
    }

    @inline(never)
    static func invalidEncryptionKey(_ path: FilePath?, _ reason: String) -> VaultError {
        let subject = path.map { "encryption key file '\($0)'" } ?? "encryption key"
        return VaultError(.invalidEncryptionKey, path: path, message: "\(subject): \(reason)")
    }

    @inline(never)
    static func invalidMetadata(_ path: FilePath, _ reason: String) -> VaultError {
        VaultError(.invalidMetadata, path: path, message: "'\(path)': \(reason)")
    }

    @inline(never)
    static func closed(_ vault: FilePath) -> VaultError {
        VaultError(.closed, path: vault, message: "vault '\(vault)' is closed")
    }

    @inline(never)
    static func io(_ operation: String, _ path: FilePath, _ errno: Errno) -> VaultError {
        VaultError(.io, path: path, message: "\(operation) '\(path)' failed: \(errno)", errno: errno)
    }
}
