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

// MARK: - The stress child

/// The `VaultStressChild` executable built next to the test bundle.
var stressChildURL: URL {
    TestData.productsDirectory.appendingPathComponent("VaultStressChild")
}

/// A running `VaultStressChild` whose stdout is read line by line.
final class StressChild {
    let process = Process()
    private let output = Pipe()
    private let input = Pipe()
    private let errors = Pipe()
    private var buffered = Data()

    init(arguments: [String]) throws {
        let url = stressChildURL
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw TestDataError("VaultStressChild not found at \(url.path): build the package's executables first")
        }
        process.executableURL = url
        process.arguments = arguments
        process.standardOutput = output
        process.standardInput = input
        process.standardError = errors
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// The next line of output, or `nil` at end of file (the child exited).
    func readLine() -> String? {
        while true {
            if let newline = buffered.firstIndex(of: 0x0a) {
                let line = String(decoding: buffered[buffered.startIndex..<newline], as: UTF8.self)
                buffered.removeSubrange(buffered.startIndex...newline)
                return line
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { return nil }
            buffered.append(chunk)
        }
    }

    /// Everything the child wrote to stderr (call after it exited).
    func errorOutput() -> String {
        String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    /// Sends SIGKILL, unless the child has already been reaped (its pid could have been reused).
    func kill() {
        guard process.isRunning else { return }
        _ = Glibc.kill(process.processIdentifier, SIGKILL)
    }

    func closeInput() {
        try? input.fileHandleForWriting.close()
    }

    /// Waits for the child to exit (the kernel then has released its lock).
    /// Waits, bounded, until the child has ended (the kernel has then released its locks); a child that will not end
    /// is a test failure and is killed.
    @discardableResult
    func wait() -> ChildExit? {
        if let exit = process.waitForExit(timeout: .seconds(60)) { return exit }
        Issue.record("child \(process.processIdentifier) still running after 60 s")
        return process.terminate(grace: .zero)
    }
}

/// The payload pattern of `VaultStressChild` (`RecordPattern` there): 8 bytes of little-endian tag, then
/// byte j = low byte of (tag + j · 0x9E).
func isStressRecord(_ bytes: [UInt8]) -> Bool {
    guard bytes.count >= 8 else { return false }
    var tag: UInt64 = 0
    for index in 0..<8 { tag |= UInt64(bytes[index]) << (8 * UInt64(index)) }
    for index in 8..<bytes.count where bytes[index] != UInt8(truncatingIfNeeded: tag &+ UInt64(index) &* 0x9E) {
        return false
    }
    return true
}
