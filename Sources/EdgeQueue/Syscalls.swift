// EdgeQueue/Syscalls: minimal typed POSIX wrappers (swift-system style) and the write-path seam for fault injection.
//
// EdgeVault has the same wrappers, but they are internal to it (and EdgeVault links libsodium), so the few the queue
// needs are repeated here, private to this target. Every wrapper retries on `EINTR` and throws `Errno`; every
// descriptor is close-on-exec.
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
        var done = 0
        while done < bytes.count {
            let written = try valueOrErrno {
                bytes.withUnsafeBytes { raw in
                    pwrite(fd.rawValue, raw.baseAddress! + done, raw.count - done, off_t(offset) + off_t(done))
                }
            }
            done += written
        }
    }

    package func sync(_ fd: FileDescriptor) throws(Errno) {
        _ = try valueOrErrno { fsync(fd.rawValue) }
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

// MARK: - Errno plumbing

/// Runs `body` until it does not fail with `EINTR`; returns its result, or throws the `errno` of a `-1` result.
@inline(__always)
func valueOrErrno<I: FixedWidthInteger>(_ body: () -> I) throws(Errno) -> I {
    while true {
        let result = body()
        if result == -1 {
            let error = Errno(rawValue: errno)
            if error == .interrupted { continue }
            throw error
        }
        return result
    }
}

/// Calls a SystemPackage API declared untyped `throws` that only throws `Errno`, with typed throws.
@inline(__always)
func systemCall<R>(_ body: () throws -> R) throws(Errno) -> R {
    do {
        return try body()
    } catch let error as Errno {
        throw error
    } catch {
        throw Errno.ioError
    }
}

/// The effective user ID of this process.
var effectiveUserID: UInt32 { UInt32(geteuid()) }

// MARK: - Descriptor operations

extension FileDescriptor {
    /// `openat(self, name, …)` with `.closeOnExec` always added.
    func openAt(
        _ name: String, _ mode: FileDescriptor.AccessMode, options: FileDescriptor.OpenOptions = [],
        permissions: FilePermissions? = nil
    ) throws(Errno) -> FileDescriptor {
        precondition(!options.contains(.create) || permissions != nil, "EdgeQueue: openAt(.create) needs permissions")
        let flags = mode.rawValue | options.union(.closeOnExec).rawValue
        let fd = try valueOrErrno {
            name.withCString { path in
                if let permissions { return openat(rawValue, path, flags, permissions.rawValue) }
                return openat(rawValue, path, flags)
            }
        }
        return FileDescriptor(rawValue: fd)
    }

    /// `renameat(self, source, self, destination)`: atomically replaces `destination`.
    func renameAt(_ source: String, to destination: String) throws(Errno) {
        _ = try valueOrErrno {
            source.withCString { from in destination.withCString { to in renameat(rawValue, from, rawValue, to) } }
        }
    }

    /// `unlinkat(self, name, 0)`.
    func unlinkAt(_ name: String) throws(Errno) {
        _ = try valueOrErrno { name.withCString { unlinkat(rawValue, $0, 0) } }
    }

    /// The names in the directory `self`, without `.` and `..` (through a fresh descriptor, so `self` is untouched).
    func directoryEntries() throws(Errno) -> [String] {
        let fresh = try openAt(".", .readOnly, options: [.directory])
        guard let stream = fdopendir(fresh.rawValue) else {
            let error = Errno(rawValue: errno)
            try? fresh.close()
            throw error
        }
        defer { closedir(stream) }  // also closes `fresh`
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw Errno(rawValue: errno) }
                return names
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
    }

    /// Tries to take an exclusive POSIX record lock on the whole file without blocking (`fcntl(F_SETLK)`);
    /// `false` if another process holds it.
    ///
    /// Unlike `flock`, the lock belongs to the process, not to the open file description: a child that another
    /// thread forks (and that holds copies of our descriptors until its `exec`) never holds it, and it is released
    /// when the process dies. Caveat: closing *any* descriptor of the file in this process releases it, and it
    /// does not exclude the same process, so the queue checks an in-process registry before opening the file.
    func tryLockExclusive() throws(Errno) -> Bool {
        var description = flock()
        description.l_type = Int16(F_WRLCK)
        description.l_whence = Int16(SEEK_SET)
        description.l_start = 0
        description.l_len = 0
        do throws(Errno) {
            _ = try valueOrErrno { fcntl(rawValue, F_SETLK, &description) }
            return true
        } catch where error == .permissionDenied || error == .resourceTemporarilyUnavailable {
            return false
        }
    }

    /// Reads up to `count` bytes at `offset` (`pread(2)`, retrying short reads) until `count` or end of file.
    func read(at offset: Int64, count: Int) throws(Errno) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = try valueOrErrno {
                bytes.withUnsafeMutableBytes { raw in
                    posixPRead(rawValue, raw.baseAddress! + done, raw.count - done, off_t(offset) + off_t(done))
                }
            }
            if got == 0 { break }
            done += got
        }
        if done < count { bytes.removeSubrange(done...) }
        return bytes
    }

    /// `ftruncate(2)`.
    func truncate(to size: Int64) throws(Errno) {
        _ = try valueOrErrno { ftruncate(rawValue, off_t(size)) }
    }

    /// The file's size in bytes, from `fstat`.
    func size() throws(Errno) -> Int64 {
        try systemCall { try self.stat() }.size
    }
}

/// `pread(2)` (a free function, so that `FileDescriptor`'s methods do not shadow it).
private func posixPRead(_ fd: CInt, _ buffer: UnsafeMutableRawPointer, _ count: Int, _ offset: off_t) -> Int {
    pread(fd, buffer, count, offset)
}

/// `mkdir(path, permissions)` (the umask can only remove bits).
func makeDirectory(_ path: FilePath, permissions: FilePermissions) throws(Errno) {
    _ = try valueOrErrno { path.withPlatformString { mkdir($0, permissions.rawValue) } }
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
