import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A running `StoreStressChild` (Tests/StoreStressChild: the crash-test child of the vault and queue tests) whose
/// standard output is read line by line.
public final class StoreStressChild {
    public let process = Process()
    private let output = Pipe()
    private let input = Pipe()
    private let errors = Pipe()
    private var buffered = Data()

    /// Starts `StoreStressChild <store> <arguments…>` (`store`: `vault` or `queue`).
    public init(_ store: String, arguments: [String]) throws {
        let url = TestData.productsDirectory.appendingPathComponent("StoreStressChild")
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw TestDataError("StoreStressChild not found at \(url.path): build the package's executables first")
        }
        process.executableURL = url
        process.arguments = [store] + arguments
        process.standardOutput = output
        process.standardInput = input
        process.standardError = errors
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }

    /// The next line of output, or `nil` at end of file (the child exited).
    public func readLine() -> String? {
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
    public func errorOutput() -> String {
        String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    /// Sends SIGKILL unless the child has ended (a pid is never reused before the child is reaped).
    public func kill() {
        guard !process.hasExited else { return }
        _ = Glibc.kill(process.processIdentifier, SIGKILL)
    }

    /// Closes the child's standard input (a holding child then closes its store and exits).
    public func closeInput() {
        try? input.fileHandleForWriting.close()
    }

    /// Waits, bounded, until the child has ended (the kernel has then released its locks); a child that will not end
    /// is a test failure and is killed.
    @discardableResult
    public func wait() -> ChildExit? {
        if let exit = process.waitForExit(timeout: .seconds(60)) { return exit }
        Issue.record("child \(process.processIdentifier) still running after 60 s")
        return process.terminate(grace: .zero)
    }
}

/// Whether `bytes` follows the child's payload pattern: 8 bytes of little-endian tag, then byte j = low byte of
/// (tag + j · 0x9E). A torn or mixed-up record does not.
public func isStressPattern(_ bytes: [UInt8]) -> Bool {
    guard bytes.count >= 8 else { return false }
    var tag: UInt64 = 0
    for index in 0..<8 { tag |= UInt64(bytes[index]) << (8 * UInt64(index)) }
    return bytes.indices.dropFirst(8).allSatisfy { bytes[$0] == UInt8(truncatingIfNeeded: tag &+ UInt64($0) &* 0x9E) }
}
