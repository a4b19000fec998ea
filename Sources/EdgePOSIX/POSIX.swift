// EdgePOSIX: the typed POSIX calls, in swift-system's style, that SystemPackage lacks, shared by the vault, the queue,
// the serial and BLE transports and the CLI.
//
// SystemPackage provides `FileDescriptor.open/read/write/close/resize`, `Stat` (`fstat`, `fstatat`) and `Errno`. It has
// no public `openat`, `mkdir(at)`, `renameat`, `unlinkat`, `fsync`, `flock`, record locks, `pread` or directory
// listing, so this file adds them as `FileDescriptor` methods over Glibc. Every wrapper retries on `EINTR` and throws
// `Errno`, and every descriptor it creates is close-on-exec. Package access only: these are plumbing, not an API.
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Errno plumbing

/// Runs `body` until it does not fail with `EINTR`; returns its result, or throws the `errno` of a `-1` result.
@inline(__always)
package func valueOrErrno<I: FixedWidthInteger>(
    retryOnInterrupt: Bool = true,
    _ body: () -> I
) throws(Errno) -> I {
    while true {
        let result = body()
        if result == -1 {
            let error = Errno(rawValue: errno)
            if retryOnInterrupt && error == .interrupted { continue }
            throw error
        }
        return result
    }
}

/// Runs `body` until it does not fail with `EINTR` and returns its result as it is (a `-1` stays `-1`, with `errno`
/// set): for callers that handle the error themselves, e.g. telling `EWOULDBLOCK` from a real failure.
@inline(__always)
package func retryingOnInterrupt<I: FixedWidthInteger>(_ body: () -> I) -> I {
    while true {
        let result = body()
        if result == -1 && errno == EINTR { continue }
        return result
    }
}

/// Calls a SystemPackage API that is declared untyped `throws` but only ever throws `Errno` (`open`, `close`,
/// `resize`, `writeAll`, `stat`), with typed throws. Any other error (there is none today) becomes `EIO`.
@inline(__always)
package func systemCall<R>(_ body: () throws -> R) throws(Errno) -> R {
    do {
        return try body()
    } catch let error as Errno {
        throw error
    } catch {
        throw Errno.ioError
    }
}

/// The symbolic name of the `errno` value `code` (`ECONNREFUSED`), for logs and errors that operators search for;
/// `errno N` for the rare value without one here.
package func errnoName(_ code: CInt) -> String { errnoNames[code] ?? "errno \(code)" }

private let errnoNames: [CInt: String] = [
    EPERM: "EPERM",
    ENOENT: "ENOENT",
    EINTR: "EINTR",
    EIO: "EIO",
    ENXIO: "ENXIO",
    EBADF: "EBADF",
    EAGAIN: "EAGAIN",
    ENOMEM: "ENOMEM",
    EACCES: "EACCES",
    EBUSY: "EBUSY",
    EEXIST: "EEXIST",
    ENODEV: "ENODEV",
    ENOTDIR: "ENOTDIR",
    EINVAL: "EINVAL",
    ENFILE: "ENFILE",
    EMFILE: "EMFILE",
    ENOSPC: "ENOSPC",
    EPIPE: "EPIPE",
    EPROTO: "EPROTO",
    ENOTSOCK: "ENOTSOCK",
    EMSGSIZE: "EMSGSIZE",
    EPROTONOSUPPORT: "EPROTONOSUPPORT",
    ENOPROTOOPT: "ENOPROTOOPT",
    EOPNOTSUPP: "EOPNOTSUPP",
    EAFNOSUPPORT: "EAFNOSUPPORT",
    EADDRINUSE: "EADDRINUSE",
    EADDRNOTAVAIL: "EADDRNOTAVAIL",
    ENETDOWN: "ENETDOWN",
    ENETUNREACH: "ENETUNREACH",
    ECONNABORTED: "ECONNABORTED",
    ECONNRESET: "ECONNRESET",
    ENOBUFS: "ENOBUFS",
    EISCONN: "EISCONN",
    ENOTCONN: "ENOTCONN",
    ETIMEDOUT: "ETIMEDOUT",
    ECONNREFUSED: "ECONNREFUSED",
    EHOSTDOWN: "EHOSTDOWN",
    EHOSTUNREACH: "EHOSTUNREACH",
    EALREADY: "EALREADY",
    EINPROGRESS: "EINPROGRESS",
    ENOTTY: "ENOTTY",
    ESRCH: "ESRCH",
]

// MARK: - Buffers

/// `Array.withUnsafeBytes` with typed throws (the standard library's is untyped `rethrows`).
@inline(__always)
package func withBytes<R, E: Error>(_ array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
    let result: Result<R, E> = array.withUnsafeBytes { buffer in
        do throws(E) {
            return .success(try body(buffer))
        } catch {
            return .failure(error)
        }
    }
    return try result.get()
}

// MARK: - Process identity and environment

/// The effective user ID of this process (`geteuid`).
package var effectiveUserID: UInt32 { UInt32(geteuid()) }

/// This process's ID (`getpid`).
package var currentProcessID: Int32 { Int32(getpid()) }

/// The value of the environment variable `name`, or `nil` if it is unset (`getenv`).
package func environmentValue(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}

/// The home directory of the effective user from the password database (`getpwuid_r`), or `nil`.
package func passwordDatabaseHomeDirectory() -> String? {
    var entry = passwd()
    var result: UnsafeMutablePointer<passwd>?
    var size = 4096
    while size <= 1 << 20 {
        let home: String?? = withUnsafeTemporaryAllocation(of: CChar.self, capacity: size) { buffer in
            let status = getpwuid_r(geteuid(), &entry, buffer.baseAddress!, size, &result)
            if status == ERANGE { return .none }
            guard status == 0, result != nil, let directory = entry.pw_dir else { return .some(nil) }
            return .some(String(cString: directory))
        }
        if let home { return home }
        size *= 2
    }
    return nil
}

// MARK: - Directory-relative operations

extension FileDescriptor {
    /// Opens `name`, resolved relative to the directory `self` (`openat(2)`). `.closeOnExec` is always added.
    ///
    /// - Parameters:
    ///   - permissions: the mode for a newly created file; required when `options` contains `.create`.
    /// The corresponding C function is `openat`.
    package func openAt(
        _ name: String,
        _ mode: FileDescriptor.AccessMode,
        options: FileDescriptor.OpenOptions = [],
        permissions: FilePermissions? = nil,
        retryOnInterrupt: Bool = true
    ) throws(Errno) -> FileDescriptor {
        precondition(!options.contains(.create) || permissions != nil, "EdgePOSIX: openAt(.create) needs permissions")
        let flags = mode.rawValue | options.union(.closeOnExec).rawValue
        let fd = try valueOrErrno(retryOnInterrupt: retryOnInterrupt) {
            name.withCString { path in
                if let permissions {
                    return openat(rawValue, path, flags, permissions.rawValue)
                }
                return openat(rawValue, path, flags)
            }
        }
        return FileDescriptor(rawValue: fd)
    }

    /// Opens the directory `name` inside `self` without following a symbolic link in its last component.
    package func openDirectoryAt(_ name: String) throws(Errno) -> FileDescriptor {
        try openAt(name, .readOnly, options: [.directory, .noFollow])
    }

    /// `fstatat(self, name, AT_SYMLINK_NOFOLLOW)`: describes `name` itself, never the target of a symbolic link.
    package func statAt(_ name: String) throws(Errno) -> Stat {
        try Stat(FilePath(name), relativeTo: self, flags: .symlinkNoFollow)
    }

    /// Creates the directory `name` inside `self` with `permissions` (`mkdirat(2)`; the umask can only remove bits).
    package func createDirectoryAt(_ name: String, permissions: FilePermissions) throws(Errno) {
        _ = try valueOrErrno { name.withCString { mkdirat(rawValue, $0, permissions.rawValue) } }
    }

    /// Atomically renames `source` to `destination`, both inside the directory `self`, replacing `destination`
    /// (`renameat(2)`). A symbolic link at `destination` is replaced, never followed.
    package func renameAt(_ source: String, to destination: String) throws(Errno) {
        _ = try valueOrErrno {
            source.withCString { from in destination.withCString { to in renameat(rawValue, from, rawValue, to) } }
        }
    }

    /// Removes the directory entry `name` inside `self` (`unlinkat(2)` without `AT_REMOVEDIR`).
    package func unlinkAt(_ name: String) throws(Errno) {
        _ = try valueOrErrno { name.withCString { unlinkat(rawValue, $0, 0) } }
    }

    /// The names in the directory `self`, without `.` and `..`, in directory order.
    ///
    /// Reads through a fresh descriptor for the same directory (`openat(self, ".")` + `fdopendir`), so the
    /// position of `self` is untouched. The corresponding C functions are `fdopendir`, `readdir` and `closedir`.
    package func directoryEntries() throws(Errno) -> [String] {
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
}

// MARK: - Whole-descriptor operations

extension FileDescriptor {
    /// Flushes the file's data and metadata to stable storage (`fsync(2)`); on a directory, makes its entries
    /// (creations, renames, removals) durable.
    package func sync() throws(Errno) {
        _ = try valueOrErrno { fsync(rawValue) }
    }

    /// Tries to take an exclusive advisory lock without blocking (`flock(LOCK_EX | LOCK_NB)`).
    ///
    /// The lock belongs to the open file description: a child forked by another thread shares it until it execs, so
    /// release it with ``unlock()`` before closing rather than relying on the close.
    /// - Returns: `false` if another open file description holds the lock (`EWOULDBLOCK`).
    package func tryLockExclusive() throws(Errno) -> Bool {
        do throws(Errno) {
            _ = try valueOrErrno { flock(rawValue, LOCK_EX | LOCK_NB) }
            return true
        } catch where error == .wouldBlock || error == .resourceTemporarilyUnavailable {
            return false
        }
    }

    /// Releases an advisory lock taken with ``tryLockExclusive()`` (`flock(LOCK_UN)`).
    package func unlock() throws(Errno) {
        _ = try valueOrErrno { flock(rawValue, LOCK_UN) }
    }

    /// Tries to take an exclusive POSIX record lock on the whole file without blocking (`fcntl(F_SETLK)`);
    /// `false` if another process holds it.
    ///
    /// Unlike `flock`, the lock belongs to the process, not to the open file description: a child that another
    /// thread forks (and that holds copies of our descriptors until its `exec`) never holds it, and it is released
    /// when the process dies. Caveat: closing *any* descriptor of the file in this process releases it, and it
    /// does not exclude the same process, so callers check an in-process registry before opening the file.
    package func tryLockRecordExclusive() throws(Errno) -> Bool {
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

    /// Writes all of `bytes` at the current position, retrying short writes and `EINTR`.
    package func writeAll(_ bytes: UnsafeRawBufferPointer) throws(Errno) {
        var offset = 0
        while offset < bytes.count {
            let written = try valueOrErrno {
                posixWrite(rawValue, bytes.baseAddress! + offset, bytes.count - offset)
            }
            offset += written
        }
    }

    /// Writes all of `bytes` at `offset` (`pwrite(2)`, retrying short writes and `EINTR`); may leave a prefix
    /// written on failure.
    package func writeAll(_ bytes: [UInt8], at offset: Int64) throws(Errno) {
        var done = 0
        while done < bytes.count {
            let written = try valueOrErrno {
                bytes.withUnsafeBytes { raw in
                    posixPWrite(rawValue, raw.baseAddress! + done, raw.count - done, off_t(offset) + off_t(done))
                }
            }
            done += written
        }
    }

    /// Reads up to `count` bytes at `offset` (`pread(2)`, retrying short reads) until `count` or end of file.
    package func read(at offset: Int64, count: Int) throws(Errno) -> [UInt8] {
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

    /// Reads from the current position into `buffer` (`read(2)`, retrying `EINTR`); 0 at end of file.
    package func readSome(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try valueOrErrno { posixRead(rawValue, buffer.baseAddress!, buffer.count) }
    }

    /// `ftruncate(2)`.
    package func truncate(to size: Int64) throws(Errno) {
        _ = try valueOrErrno { ftruncate(rawValue, off_t(size)) }
    }

    /// The file's size in bytes, from `fstat`.
    package func size() throws(Errno) -> Int64 {
        try systemCall { try self.stat() }.size
    }
}

/// `write(2)` (a free function, so that `FileDescriptor.write` does not shadow it).
private func posixWrite(_ fd: CInt, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, bytes, count)
}

/// `read(2)` (a free function, so that `FileDescriptor.read` does not shadow it).
private func posixRead(_ fd: CInt, _ bytes: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(fd, bytes, count)
}

/// `pwrite(2)` (a free function, so that `FileDescriptor`'s methods do not shadow it).
private func posixPWrite(_ fd: CInt, _ bytes: UnsafeRawPointer, _ count: Int, _ offset: off_t) -> Int {
    pwrite(fd, bytes, count, offset)
}

/// `pread(2)` (a free function, so that `FileDescriptor`'s methods do not shadow it).
private func posixPRead(_ fd: CInt, _ buffer: UnsafeMutableRawPointer, _ count: Int, _ offset: off_t) -> Int {
    pread(fd, buffer, count, offset)
}

// MARK: - Path operations

/// `mkdir(path, permissions)` (the umask can only remove bits).
package func makeDirectory(_ path: FilePath, permissions: FilePermissions) throws(Errno) {
    _ = try valueOrErrno { path.withPlatformString { mkdir($0, permissions.rawValue) } }
}

/// Creates `path` and every missing parent as directories with `permissions` (like `mkdir -p -m`); existing
/// components are left untouched (neither their mode nor their owner is changed).
///
/// - Returns: the directories that were created, outermost first.
package func createDirectories(_ path: FilePath, permissions: FilePermissions) throws(Errno) -> [FilePath] {
    var missing: [FilePath] = []
    var current = path
    while !current.components.isEmpty {
        do throws(Errno) {
            _ = try Stat(current, followTargetSymlink: false)
            break
        } catch .noSuchFileOrDirectory {
            missing.append(current)
            let parent = current.removingLastComponent()
            if parent == current { break }
            current = parent
        }
    }
    var created: [FilePath] = []
    for directory in missing.reversed() {
        do throws(Errno) {
            try makeDirectory(directory, permissions: permissions)
            created.append(directory)
        } catch .fileExists {
            continue  // created concurrently by someone else: the caller checks the final directory itself
        }
    }
    return created
}
