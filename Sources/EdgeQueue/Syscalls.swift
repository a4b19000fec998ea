// EdgeQueue/Syscalls: the write-path seam for fault injection, and scratch directories for tests and fuzzing. The
// POSIX wrappers themselves are EdgePOSIX's.
import EdgePOSIX
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Write path seam

/// The two operations that make a queue write durable. The queue calls only these for segment and state-file
/// writes, so tests can inject `ENOSPC`/`EIO` (and fuzzing can skip `fsync`) without mounting file systems.
package protocol QueueWritePath: Sendable {
    /// Writes all of `bytes` at `offset` (`pwrite(2)`, retrying short writes); may leave a prefix written on failure.
    func write(_ fd: FileDescriptor, at offset: Int64, _ bytes: [UInt8]) throws(Errno)
    /// Flushes `fd` (a file, or a directory's entries) to stable storage (`fsync(2)`).
    func sync(_ fd: FileDescriptor) throws(Errno)
}

/// The real write path: `pwrite` + `fsync`.
package struct SystemWritePath: QueueWritePath {
    package init() {}

    package func write(_ fd: FileDescriptor, at offset: Int64, _ bytes: [UInt8]) throws(Errno) {
        try fd.writeAll(bytes, at: offset)
    }

    package func sync(_ fd: FileDescriptor) throws(Errno) {
        try fd.sync()
    }
}

/// `pwrite` without `fsync`: for fuzzing and throwaway directories only (no durability at all).
package struct UnsyncedWritePath: QueueWritePath {
    package init() {}
    package func write(_ fd: FileDescriptor, at offset: Int64, _ bytes: [UInt8]) throws(Errno) {
        try SystemWritePath().write(fd, at: offset, bytes)
    }
    package func sync(_ fd: FileDescriptor) throws(Errno) {}
}

// MARK: - Scratch directories (tests and fuzzing)

/// Runs `body` with a fresh mode-0700 directory under `/tmp` that is removed (with its plain files) afterwards.
package func withScratchQueueDirectory<R, E: Error>(_ body: (FilePath) throws(E) -> R) throws(E) -> R {
    var template = Array("/tmp/edgequeue-XXXXXX".utf8CString)
    let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard let created else { preconditionFailure("EdgeQueue: mkdtemp failed (errno \(errno))") }
    let path = FilePath(String(cString: created))
    defer { removeScratchDirectory(path) }
    return try body(path)
}

/// Removes `path`, its plain files and (one level of) subdirectories' files; ignores errors.
package func removeScratchDirectory(_ path: FilePath) {
    guard let fd = try? systemCall({ try FileDescriptor.open(path, .readOnly, options: [.directory, .noFollow]) })
    else { return }
    for name in (try? fd.directoryEntries()) ?? [] {
        if (try? fd.unlinkAt(name)) == nil {
            removeScratchDirectory(path.appending(name))
        }
    }
    try? fd.close()
    _ = path.withPlatformString { rmdir($0) }
}
