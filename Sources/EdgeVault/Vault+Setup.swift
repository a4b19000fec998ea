// EdgeVault/Vault+Setup: default paths, loading the encryption key, and `ockam-edge vault check`.
import EdgeCrypto
import EdgePOSIX
import SystemPackage

extension Vault {
    // MARK: - Default path

    /// The environment variable that overrides the vault path.
    public static let pathEnvironmentVariable = "OCKAM_EDGE_VAULT"

    /// The vault path for this process: `$OCKAM_EDGE_VAULT` if set, else `$XDG_DATA_HOME/ockam-edge/vault`, else
    /// `$HOME/.local/share/ockam-edge/vault` (the home directory from the password database if `HOME` is unset).
    ///
    /// The system service uses ``systemServicePath`` (`/var/lib/ockam-edge/vault`, set through
    /// `OCKAM_EDGE_VAULT=%S/ockam-edge/vault` with `StateDirectory=ockam-edge` in its unit).
    ///
    /// - Returns: `nil` only if no home directory can be determined.
    public static func defaultPath() -> FilePath? {
        defaultPath(environment: environmentValue, homeDirectory: passwordDatabaseHomeDirectory)
    }

    /// ``defaultPath()`` with an explicit environment (for tests and the CLI).
    ///
    /// Empty variables count as unset; a relative `XDG_DATA_HOME` is ignored, as the XDG Base Directory
    /// specification requires.
    public static func defaultPath(
        environment: (String) -> String?, homeDirectory: () -> String? = { nil }
    ) -> FilePath? {
        func value(_ name: String) -> String? {
            guard let value = environment(name), !value.isEmpty else { return nil }
            return value
        }
        if let explicit = value(pathEnvironmentVariable) { return FilePath(explicit) }
        if let dataHome = value("XDG_DATA_HOME"), dataHome.hasPrefix("/") {
            return FilePath(dataHome).appending("ockam-edge").appending("vault")
        }
        guard let home = value("HOME") ?? homeDirectory(), !home.isEmpty else { return nil }
        return FilePath(home).appending(".local").appending("share").appending("ockam-edge").appending("vault")
    }

    // MARK: - Encryption key

    /// The largest encryption key file accepted (64 hex characters and some whitespace).
    static let maximumEncryptionKeyFileByteCount = 128

    /// Loads the operator-supplied encryption key for ``VaultOptions/encryptionKey``.
    ///
    /// The file holds exactly 32 raw bytes, or 64 hex characters (surrounding ASCII whitespace, such as a final
    /// newline, is ignored). For the system service it is a systemd credential, read from
    /// `$CREDENTIALS_DIRECTORY/vault-key` (for example
    /// `LoadCredentialEncrypted=vault-key:/etc/ockam-edge/vault-key.cred`,
    /// sealed to the TPM with `systemd-creds encrypt --with-key=tpm2`).
    ///
    /// ### Invariants
    /// - The file must be a regular file owned by the running user or root, with no group/other access (mode
    ///   `0600` or `0400`); otherwise it is refused, never repaired.
    /// - The key goes straight into guarded memory; the read buffer is zeroed. An all-zero key is refused.
    ///
    /// - Throws: ``VaultError/Code/invalidEncryptionKey`` (wrong size or encoding, all zeros, insecure file),
    ///   ``VaultError/Code/io``.
    public static func loadEncryptionKey(from path: FilePath) throws(VaultError) -> SecretKey {
        let fd: FileDescriptor
        do throws(Errno) {
            fd = try systemCall { try FileDescriptor.open(path, .readOnly, options: [.closeOnExec, .nonBlocking]) }
        } catch {
            throw .io("open encryption key file", path, error)
        }
        defer { try? fd.close() }
        let stat: Stat
        do throws(Errno) { stat = try fd.stat() } catch { throw .io("examine encryption key file", path, error) }
        guard stat.type == .regular else {
            throw .invalidEncryptionKey(path, "is \(VaultProblem.typeName(stat.type)), not a regular file")
        }
        let user = effectiveUserID
        let owner = stat.userID.rawValue
        guard owner == user || owner == 0 else {
            throw .invalidEncryptionKey(
                path, "is owned by uid \(owner), not by the running user (uid \(user)) or root: chown it"
            )
        }
        let mode = UInt32(stat.permissions.rawValue)
        guard mode & VaultLayout.forbiddenBits == 0 else {
            throw .invalidEncryptionKey(
                path,
                "permissions \(VaultProblem.octal(mode)) are too open: the key file must not be accessible by group or "
                    + "others (run: chmod 600 \(VaultProblem.shellQuoted(path)))"
            )
        }
        let read: (buffer: UnsafeMutableRawBufferPointer, count: Int)
        do throws(Errno) {
            read = try fd.readUpTo(limit: maximumEncryptionKeyFileByteCount)
        } catch {
            throw .io("read encryption key file", path, error)
        }
        defer {
            Memory.zero(read.buffer)
            read.buffer.deallocate()
        }
        guard read.count <= maximumEncryptionKeyFileByteCount else {
            throw .invalidEncryptionKey(path, "too large: it must hold 32 raw bytes or 64 hex characters")
        }
        guard let key = decodeEncryptionKey(UnsafeRawBufferPointer(rebasing: read.buffer[..<read.count])) else {
            throw .invalidEncryptionKey(path, "it must hold exactly 32 raw bytes or 64 hex characters")
        }
        guard !key.withUnsafeBytes({ $0.allSatisfy { $0 == 0 } }) else {
            throw .invalidEncryptionKey(path, "the key is all zeros")
        }
        return key
    }

    /// 32 raw bytes, or 64 hex digits with optional surrounding ASCII whitespace, decoded straight into guarded
    /// memory.
    static func decodeEncryptionKey(_ bytes: UnsafeRawBufferPointer) -> SecretKey? {
        // The vault's keys are long-term: guarded, read-only pages of their own.
        if bytes.count == 32 { return SecretKey(SecretBytes(copying: bytes, isolated: true)) }
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0d).contains(byte) }
        var start = 0
        var end = bytes.count
        while start < end, isSpace(bytes[start]) { start += 1 }
        while end > start, isSpace(bytes[end - 1]) { end -= 1 }
        guard end - start == 64 else { return nil }
        var secret = SecretBytes(isolatedZeroedCount: 32)
        let valid = secret.withUnsafeMutableBytes { out in
            var valid = true
            for index in 0..<32 {
                let high = Hex.value(bytes[start + 2 * index])
                let low = Hex.value(bytes[start + 2 * index + 1])
                valid = valid && high != nil && low != nil
                out[index] = (high ?? 0) << 4 | (low ?? 0)
            }
            return valid
        }
        return valid ? SecretKey(secret) : nil
    }

    // MARK: - Check

    /// Every problem with the vault at `path`, without refusing, locking or changing anything (for
    /// `ockam-edge vault check`; safe while the agent runs).
    ///
    /// Checks the vault directory and every entry in it for permissions, ownership, symbolic links and file
    /// types (the rules ``open(at:options:)`` enforces), and the contents: `vault.meta`, every key file (format,
    /// handle, encryption state; the secret is re-derived for plaintext keys, and decrypted too when
    /// `options.encryptionKey` is given) and every record (format and checksum). Entries outside the layout are
    /// reported; temporary files are ignored.
    ///
    /// - Returns: the problems in path order; empty for a healthy vault.
    public static func check(at path: FilePath, options: VaultOptions = VaultOptions()) -> [VaultProblem] {
        inspect(at: path, options: options).problems
    }

    /// What ``check(at:options:)`` finds, and what the vault holds: the type of every readable key file and the
    /// number of records of each kind (for checks above this layer, such as identity keys without their records).
    public struct Inspection: Sendable {
        public var problems: [VaultProblem] = []
        public var keyTypes: [KeyType] = []
        public var recordCounts: [String: Int] = [:]
    }

    /// Checks the vault at `path` without opening (locking or changing) it; see ``check(at:options:)``.
    public static func inspect(at path: FilePath, options: VaultOptions = VaultOptions()) -> Inspection {
        let user = effectiveUserID
        let stat: Stat
        do throws(Errno) {
            stat = try Stat(path, followTargetSymlink: false)
        } catch .noSuchFileOrDirectory {
            return Inspection(problems: [.missing(path)])
        } catch {
            return Inspection(problems: [.unreadable(path, error)])
        }
        let problems = VaultLayout.problems(of: stat, at: path, role: .vaultDirectory, user: user)
        if problems.contains(where: { $0.kind == .symbolicLink || $0.kind == .fileType }) {
            return Inspection(problems: problems)
        }
        let root: FileDescriptor
        do throws(Errno) {
            root = try systemCall {
                try FileDescriptor.open(path, .readOnly, options: [.directory, .noFollow, .closeOnExec])
            }
        } catch {
            return Inspection(problems: problems + [.unreadable(path, error)])
        }
        defer { try? root.close() }

        var inspector = VaultInspector(root: path, user: user, deep: true)
        // vault.meta decides how key files are checked.
        let metaPath = path.appending(MetaFile.fileName)
        var metaMissing = false
        do throws(VaultError) {
            let outcome = try withVaultFile(
                root, MetaFile.fileName, in: path, user: user, limit: MetaFile.maximumByteCount
            ) { (bytes) throws(VaultError) -> Result<MetaFile.Parsed, FormatError> in
                do throws(FormatError) { return .success(try MetaFile.parse(bytes)) } catch { return .failure(error) }
            }
            switch outcome {
            case .none:
                metaMissing = true
            case .failure(let reason):
                inspector.add(
                    .format(metaPath, "not a valid vault metadata file: \(reason)", fix: "restore it from a backup"))
            case .success(let meta):
                inspector.vaultEncrypted = meta.isEncrypted
                if let key = options.encryptionKey {
                    if !meta.isEncrypted {
                        inspector.add(
                            .encryption(
                                path,
                                problem: "vault '\(path)' is not encrypted at rest, but an encryption key was given",
                                fix: "check it without the key"
                            ))
                    } else if let cipher = VaultCipher(operatorKey: key),
                        MetaFile.accepts(meta, checkKey: cipher.checkKey)
                    {
                        inspector.keyFileKey = cipher.keyFileKey
                    } else {
                        inspector.add(
                            .encryption(
                                path, problem: "the encryption key does not match vault '\(path)'",
                                fix: "check which key file is configured"
                            ))
                    }
                }
            }
        } catch {
            // Security problems of vault.meta itself are reported by the walk below.
        }
        inspector.walk(vault: root)
        if metaMissing && inspector.sawKeyFile {
            inspector.add(
                .format(
                    metaPath, "missing, but the vault holds keys: its encryption state is unknown",
                    fix: "restore it from a backup"
                ))
        }
        return Inspection(
            problems: problems + inspector.problems, keyTypes: inspector.keyTypes, recordCounts: inspector.recordCounts)
    }
}
