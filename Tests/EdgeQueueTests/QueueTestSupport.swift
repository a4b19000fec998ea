// EdgeQueueTests/QueueTestSupport: temporary queue directories, a fault-injecting write path, and small limits.
import EdgeSync
import EdgeTestSupport
import Foundation
import SystemPackage
import Testing

@testable import EdgeQueue

#if canImport(Glibc)
import Glibc
#endif

/// A fresh mode-0700 directory under /tmp, removed afterwards; `body` gets `<dir>/q` (not yet created).
func withQueuePath<R>(_ body: (FilePath) throws -> R) throws -> R {
    try withScratchQueueDirectory { (directory: FilePath) throws -> R in try body(directory.appending("q")) }
}

/// Limits small enough to cross every boundary with a few records: records ≤ 64 bytes, 256-byte segments.
func smallLimits(
    memoryMessages: Int = 4, diskBytes: Int? = nil, durability: QueueDurability = .spill
) -> QueueLimits {
    var limits = QueueLimits(
        memoryMessages: memoryMessages, memoryBytes: 256, diskBytes: 1 << 20, segmentBytes: 256,
        maxRecordBytes: 64, durability: durability)
    if let diskBytes { limits.diskBytes = diskBytes }
    return limits
}

/// A deterministic payload that names its tag: 8 bytes of `tag`, then filler up to `size`.
func payload(_ tag: UInt64, size: Int = 16) -> [UInt8] {
    var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: tag), count: max(size, 8))
    for index in 0..<8 { bytes[index] = UInt8(truncatingIfNeeded: tag >> (8 * UInt64(index))) }
    return bytes
}

extension StoreAndForwardQueue {
    /// Every queued record, oldest first.
    func all() throws -> [QueuedRecord] { try peek(max: Int.max) }
}

/// Opens a queue, expecting a `QueueError` with `code`.
func expectQueueError(
    _ code: QueueError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) -> QueueError? {
    do {
        try body()
        Issue.record("expected QueueError.\(code), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as QueueError {
        #expect(error.code == code, "got \(error.code): \(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected QueueError.\(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// The segment files in a queue directory, oldest first.
func segmentFiles(_ path: FilePath) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: path.string).filter { $0.hasPrefix("seg-") }.sorted()
}

func readFile(_ path: FilePath) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path.string)))
}

func writeFile(_ path: FilePath, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path.string))
}

/// A write path that fails on demand: each queued errno fails one `write` after writing half of its bytes (a
/// short write followed by the error, as a full disk does).
final class FaultInjector: QueueWritePath {
    private let writeFailures = EdgeMutex<[Errno]>([])
    private let syncFailures = EdgeMutex<[Errno]>([])

    func failNextWrite(_ errno: Errno) { writeFailures.withLock { $0.append(errno) } }
    func failNextSync(_ errno: Errno) { syncFailures.withLock { $0.append(errno) } }

    func write(_ fd: FileDescriptor, at offset: Int64, _ bytes: [UInt8]) throws(Errno) {
        if let failure = writeFailures.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
            try SystemWritePath().write(fd, at: offset, Array(bytes.prefix(bytes.count / 2)))
            throw failure
        }
        try SystemWritePath().write(fd, at: offset, bytes)
    }

    func sync(_ fd: FileDescriptor) throws(Errno) {
        if let failure = syncFailures.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { throw failure }
    }
}
