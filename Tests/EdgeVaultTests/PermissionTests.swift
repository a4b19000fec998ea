// EdgeVaultTests/PermissionTests: refusal of insecure vaults (modes, owners, links, types), `check`, file modes.
import EdgeTestSupport
import EdgeCrypto
import Foundation
import SystemPackage
import Testing

@testable import EdgeVault

#if canImport(Glibc)
import Glibc
#endif

/// Creates a vault at `path` with one key of each type and one record, closes it, and returns the Ed25519 handle.
@discardableResult
func populateVault(at path: FilePath, options: VaultOptions = VaultOptions()) throws -> KeyHandle {
    let vault = try Vault.open(at: path, options: options)
    defer { vault.close() }
    let handle = try vault.generateKey(.ed25519)
    _ = try vault.generateKey(.ecdsaP256)
    _ = try vault.generateKey(.x25519)
    try vault.writeRecord(kind: "credentials", name: "project-a", bytes: Array("not secret".utf8))
    return handle
}

@Suite("Permissions", .cpuBound)
struct PermissionTests {
    @Test(
        "a vault directory open to the group or others is refused, with the path and the chmod fix",
        arguments: [0o755, 0o750, 0o705, 0o710] as [mode_t])
    func directoryTooOpen(mode directoryMode: mode_t) throws {
        try withVaultPath { path in
            try populateVault(at: path)
            try chmod(path, directoryMode)
            let error = expectVaultError(.insecure) { try Vault.open(at: path) }
            let octal = "0" + String(directoryMode, radix: 8)
            #expect(
                error?.description
                    == "permissions \(octal) for '\(path)' are too open: the vault directory must be accessible by its "
                    + "owner only (run: chmod 700 \(path))"
            )
            #expect(error?.problems.map(\.kind) == [.permissions])
            #expect(error?.path == path)
            // Never repaired silently.
            #expect(try mode(path) == UInt32(directoryMode))
        }
    }

    @Test("a key file open to the group or others is refused")
    func keyFileTooOpen() throws {
        try withVaultPath { path in
            let handle = try populateVault(at: path)
            let file = path.appending("keys").appending(handle.hex + ".key")
            try chmod(file, 0o644)
            let error = expectVaultError(.insecure) { try Vault.open(at: path) }
            #expect(
                error?.description
                    == "permissions 0644 for '\(file)' are too open: vault files must be readable and writable by "
                    + "their owner only (run: chmod 600 \(file))"
            )
            #expect(try mode(file) == 0o644)
        }
    }

    @Test("a record open to the group is refused, on open and on read")
    func recordTooOpen() throws {
        try withVaultPath { path in
            try populateVault(at: path)
            let record = path.appending("records").appending("credentials").appending("project-a")
            try chmod(record, 0o640)
            let error = expectVaultError(.insecure) { try Vault.open(at: path) }
            #expect(error?.description.contains("'\(record)'") == true)
            #expect(error?.description.contains("(run: chmod 600 \(record))") == true)

            // A vault already open re-checks each file it reads.
            try chmod(record, 0o600)
            let vault = try Vault.open(at: path)
            defer { vault.close() }
            try chmod(record, 0o640)
            let readError = expectVaultError(.insecure) { try vault.readRecord(kind: "credentials", name: "project-a") }
            #expect(readError?.description.contains("chmod 600 \(record)") == true)
        }
    }

    @Test("a record kind directory open to others is refused")
    func kindDirectoryTooOpen() throws {
        try withVaultPath { path in
            try populateVault(at: path)
            let kind = path.appending("records").appending("credentials")
            try chmod(kind, 0o711)
            let error = expectVaultError(.insecure) { try Vault.open(at: path) }
            #expect(
                error?.description
                    == "permissions 0711 for '\(kind)' are too open: vault directories must be accessible by their "
                    + "owner only (run: chmod 700 \(kind))"
            )
        }
    }

    @Test("a symbolic link in place of a key file is refused and never followed")
    func symlinkedKeyFile() throws {
        try withVaultPath { path in
            let handle = try populateVault(at: path)
            let file = path.appending("keys").appending(handle.hex + ".key")
            let outside = path.removingLastComponent().appending("elsewhere.key")
            try FileManager.default.moveItem(atPath: file.string, toPath: outside.string)
            try FileManager.default.createSymbolicLink(atPath: file.string, withDestinationPath: outside.string)
            let error = expectVaultError(.insecure) { try Vault.open(at: path) }
            #expect(error?.problems.map(\.kind) == [.symbolicLink])
            #expect(
                error?.description
                    == "'\(file)' is a symbolic link: the vault never follows symbolic links (replace it with the file "
                    + "it points to, or remove it)"
            )
        }
    }

    @Test("a key file replaced by a link while the vault is open is not followed")
    func symlinkWhileOpen() throws {
        try withVaultPath { path in
            let vault = try Vault.open(at: path)
            defer { vault.close() }
            let handle = try vault.generateKey(.ed25519)
            let file = path.appending("keys").appending(handle.hex + ".key")
            let outside = path.removingLastComponent().appending("elsewhere.key")
            try FileManager.default.moveItem(atPath: file.string, toPath: outside.string)
            try FileManager.default.createSymbolicLink(atPath: file.string, withDestinationPath: outside.string)
            let error = expectVaultError(.insecure) { try vault.secretKey(handle) }
            #expect(error?.problems.first?.kind == .symbolicLink)
            // Writing replaces the link itself (rename), never writes through it.
            let before = try readBytes(outside)
            _ = try vault.importKey(.ed25519, secret: vault.secretKeyViaFile(outside))
            #expect(try readBytes(outside) == before)
            #expect(
                try path.appending("keys").appending(handle.hex + ".key").stat(followTargetSymlink: false).type
                    == .regular)
            #expect(try vault.secretKey(handle).count == 32)
        }
    }

    @Test("a symbolic link as the vault directory is refused")
    func symlinkedVaultDirectory() throws {
        try withTemporaryDirectory { directory in
            let real = directory.appending("real-vault")
            try populateVault(at: real)
            let link = directory.appending("vault")
            try FileManager.default.createSymbolicLink(atPath: link.string, withDestinationPath: real.string)
            let error = expectVaultError(.insecure) { try Vault.open(at: link) }
            #expect(
                error?.description
                    == "'\(link)' is a symbolic link: the vault directory must be a real directory (configure the "
                    + "link's target as the vault path instead)"
            )
            #expect(Vault.check(at: link).map(\.kind) == [.symbolicLink])
        }
    }

    @Test("wrong file types are refused: a directory as a key file, a file as keys/")
    func wrongTypes() throws {
        try withVaultPath { path in
            try populateVault(at: path)
            let bogus = path.appending("keys").appending(String(repeating: "ab", count: 32) + ".key")
            try FileManager.default.createDirectory(atPath: bogus.string, withIntermediateDirectories: false)
            try chmod(bogus, 0o700)
            let error = expectVaultError(.insecure) { try Vault.open(at: path) }
            #expect(error?.problems.map(\.kind) == [.fileType])
            #expect(
                error?.description.contains("'\(bogus)' is a directory, but the vault expects a regular file") == true)
        }
        try withVaultPath { path in
            try FileManager.default.createDirectory(atPath: path.string, withIntermediateDirectories: false)
            try chmod(path, 0o700)
            try overwrite(path.appending("keys"), with: [1, 2, 3])
            let error = expectVaultError(.insecure) { try Vault.open(at: path) }
            #expect(error?.problems.map(\.kind) == [.fileType])
        }
    }

    @Test("check lists every problem at once, each with its path and fix")
    func checkListsEverything() throws {
        try withVaultPath { path in
            let handle = try populateVault(at: path)
            #expect(Vault.check(at: path).isEmpty)

            let keyFile = path.appending("keys").appending(handle.hex + ".key")
            let record = path.appending("records").appending("credentials").appending("project-a")
            let stray = path.appending("notes.txt")
            let linked = path.appending("records").appending("credentials").appending("linked")
            try chmod(path, 0o755)
            try chmod(keyFile, 0o644)
            try chmod(record, 0o640)
            try overwrite(stray, with: [0])
            try FileManager.default.createSymbolicLink(atPath: linked.string, withDestinationPath: "/etc/hostname")

            let problems = Vault.check(at: path)
            let byPath = Dictionary(grouping: problems, by: \.path)
            #expect(byPath[path]?.map(\.kind) == [.permissions])
            #expect(byPath[keyFile]?.map(\.kind) == [.permissions])
            #expect(byPath[record]?.map(\.kind) == [.permissions])
            #expect(byPath[stray]?.map(\.kind) == [.unexpectedEntry])
            #expect(byPath[linked]?.map(\.kind) == [.symbolicLink])
            #expect(problems.count == 5)
            for problem in problems {
                #expect(problem.description.contains(problem.path.string))
                #expect(problem.description.contains(problem.fix))
                #expect(!problem.fix.isEmpty)
            }

            // open refuses with every refusing problem (the stray file alone would not refuse).
            let error = expectVaultError(.insecure) { try Vault.open(at: path) }
            #expect(Set(error?.problems ?? []) == Set(problems.filter(\.refusesOpen)))
            #expect(error?.problems.count == 4)
            #expect(error?.description.hasPrefix("4 problems refuse opening the vault:\n- ") == true)
        }
    }

    @Test("check reports corrupted contents and a missing vault")
    func checkContents() throws {
        try withVaultPath { path in
            #expect(Vault.check(at: path).map(\.kind) == [.missing])
            let handle = try populateVault(at: path)
            let keyFile = path.appending("keys").appending(handle.hex + ".key")
            var bytes = try readBytes(keyFile)
            bytes[bytes.count - 1] ^= 1
            try overwrite(keyFile, with: bytes)
            let record = path.appending("records").appending("credentials").appending("project-a")
            var recordBytes = try readBytes(record)
            recordBytes[12] ^= 0x80
            try overwrite(record, with: recordBytes)
            let problems = Vault.check(at: path)
            #expect(problems.map(\.kind) == [.format, .format])
            #expect(problems.map(\.path) == [keyFile, record])
            // Format problems do not stop the vault from opening; reading the damaged items fails.
            let vault = try Vault.open(at: path)
            defer { vault.close() }
            expectVaultError(.invalidKeyFile) { try vault.secretKey(handle) }
            expectVaultError(.invalidRecord) { try vault.readRecord(kind: "credentials", name: "project-a") }
        }
    }

    @Test("files owned by another user are refused", .enabled(if: geteuid() == 0, "chown to another uid needs root"))
    func wrongOwner() throws {
        try withVaultPath { path in
            let handle = try populateVault(at: path)
            let keyFile = path.appending("keys").appending(handle.hex + ".key")
            #expect(Glibc.chown(keyFile.string, 65534, 65534) == 0)
            let error = expectVaultError(.insecure) { try Vault.open(at: path) }
            #expect(
                error?.description
                    == "'\(keyFile)' is owned by uid 65534, not by the running user (uid 0): run ockam-edge as its "
                    + "owner or chown it"
            )
            #expect(Glibc.chown(keyFile.string, 0, 0) == 0)
            #expect(Glibc.chown(path.string, 65534, 65534) == 0)
            let rootError = expectVaultError(.insecure) { try Vault.open(at: path) }
            #expect(rootError?.problems.map(\.kind) == [.owner])
            #expect(rootError?.description.contains("'\(path)' is owned by uid 65534") == true)
        }
    }

    /// Run in a child under umask 0: a process-wide umask change here would reach every test running alongside
    /// (their temporary directories would be created 0777 and refused by the state-directory checks).
    @Test("created files are exactly 0600 and directories 0700, even under umask 0")
    func modesUnderPermissiveUmask() async throws {
        try await blocking {
            try withTemporaryDirectory { directory in
                let path = directory.appending("a").appending("b").appending("vault")
                let child = try StoreStressChild("vault", arguments: [path.string, "7", "--umask0"])
                var writes = 0
                while writes < 40, let line = child.readLine() {
                    if line.hasPrefix("w ") { writes += 1 }
                }
                child.kill()
                child.wait()
                #expect(writes == 40, "the child stopped early: \(child.errorOutput())")
                var directories = [directory.appending("a"), directory.appending("a").appending("b"), path]
                var files: [FilePath] = []
                var index = 2
                while index < directories.count {
                    let current = directories[index]
                    for name in try entries(current) {
                        let entry = current.appending(name)
                        var info = stat()
                        #expect(lstat(entry.string, &info) == 0)
                        if info.st_mode & S_IFMT == S_IFDIR { directories.append(entry) } else { files.append(entry) }
                    }
                    index += 1
                }
                #expect(directories.count >= 5, "keys/ and records/ at least: \(directories)")
                #expect(files.count >= 4, "the lock, the meta file, keys and records: \(files)")
                for created in directories { #expect(try mode(created) == 0o700, "\(created)") }
                for file in files {
                    #expect(try mode(file) == 0o600, "\(file)")
                    #expect(try file.stat().userID.rawValue == geteuid())
                }
            }
        }
    }

    @Test("leftover temporary files are removed when the vault is opened and never listed")
    func temporaryFilesCleanedUp() throws {
        try withVaultPath { path in
            try populateVault(at: path)
            let leftovers = [
                path.appending(".tmp-0011223344556677"),
                path.appending("keys").appending(".tmp-8899aabbccddeeff"),
                path.appending("records").appending("credentials").appending(".tmp-0123456789abcdef"),
            ]
            for leftover in leftovers { try overwrite(leftover, with: [1, 2, 3]) }
            #expect(Vault.check(at: path).isEmpty)  // ignored by check
            let vault = try Vault.open(at: path)
            defer { vault.close() }
            for leftover in leftovers {
                #expect(!FileManager.default.fileExists(atPath: leftover.string), "\(leftover)")
            }
            #expect(try vault.listKeys().count == 3)
            #expect(try vault.listRecords(kind: "credentials") == ["project-a"])
        }
    }
}

extension Vault {
    /// Test helper: the secret of an Ed25519 key file at an arbitrary path (parsed with the vault's decoder).
    fileprivate func secretKeyViaFile(_ file: FilePath) throws -> SecretKey {
        let bytes = try readBytes(file)
        return try bytes.withUnsafeBytes { raw in
            try KeyFile.secret(of: try KeyFile.parse(raw), key: nil)
        }
    }
}
