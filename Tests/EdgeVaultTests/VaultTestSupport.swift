// EdgeVaultTests/VaultTestSupport: per-test temporary directories, file-mode helpers and the stress child process.
import EdgeCrypto
import EdgeTestSupport
import Foundation
import SystemPackage
import Testing

@testable import EdgeVault

#if canImport(Glibc)
import Glibc
#endif

/// Creates a fresh directory (mode 0700) under /tmp.
func makeTemporaryDirectory() throws -> FilePath {
    var template = Array("/tmp/edgevault-test-XXXXXX".utf8CString)
    let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard let created else { throw TestDataError("mkdtemp failed: errno \(errno)") }
    return FilePath(String(cString: created))
}

/// A fresh directory under /tmp for one test, removed (recursively) when the body returns.
func withTemporaryDirectory<R>(_ body: (FilePath) throws -> R) throws -> R {
    let path = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: path.string) }
    return try body(path)
}

/// `withTemporaryDirectory` for async bodies.
func withTemporaryDirectoryAsync<R>(_ body: (FilePath) async throws -> R) async throws -> R {
    let path = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: path.string) }
    return try await body(path)
}

/// A fresh temporary directory with `vault` (not yet created) inside it.
func withVaultPath<R>(_ body: (FilePath) throws -> R) throws -> R {
    try withTemporaryDirectory { try body($0.appending("vault")) }
}

/// The permission bits of `path` (not following a final symbolic link).
func mode(_ path: FilePath) throws -> UInt32 {
    UInt32(try path.stat(followTargetSymlink: false).permissions.rawValue) & 0o7777
}

func chmod(_ path: FilePath, _ mode: mode_t) throws {
    guard Glibc.chmod(path.string, mode) == 0 else { throw Errno(rawValue: errno) }
}

func readBytes(_ path: FilePath) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path.string)))
}

/// Writes `bytes` to `path` with mode 0600 (replacing it), as an attacker or a bit flip would: not atomically.
func overwrite(_ path: FilePath, with bytes: [UInt8]) throws {
    let fd = try FileDescriptor.open(
        path, .writeOnly, options: [.create, .truncate], permissions: .ownerReadWrite
    )
    try fd.closeAfter { _ = try fd.writeAll(bytes) }
}

func entries(_ path: FilePath) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: path.string).sorted()
}

/// Expects `body` to throw a `VaultError` with `code`, and returns it.
@discardableResult
func expectVaultError<R>(
    _ code: VaultError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> R
) -> VaultError? {
    do {
        _ = try body()
        Issue.record("expected VaultError.\(code), but nothing was thrown", sourceLocation: sourceLocation)
        return nil
    } catch let error as VaultError {
        #expect(error.code == code, "got \(error.code): \(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected VaultError.\(code), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The public key of `secret` as an independent re-derivation (straight from EdgeCrypto).
func derivePublicKey(_ type: KeyType, _ secret: SecretKey) throws -> [UInt8] {
    switch type {
    case .ed25519: try Ed25519.publicKey(seed: secret)
    case .ecdsaP256: try ECDSAP256.publicKey(privateKey: secret)
    case .x25519: try X25519.publicKey(privateKey: secret)
    }
}

/// Writes a 64-hex-character encryption key file (mode 0600) in `directory` and returns its path and key.
func makeKeyFile(in directory: FilePath, name: String = "vault-key") throws -> (path: FilePath, key: SecretKey) {
    var raw = Random.bytes(count: 32)
    defer { Memory.zero(&raw) }
    let path = directory.appending(name)
    try overwrite(path, with: Array((raw.hexString + "\n").utf8))
    return (path, SecretKey(copying: raw))
}
