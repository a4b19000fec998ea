// EdgeVault/Syscalls: typed wrappers, in swift-system's style, for the POSIX calls SystemPackage 1.8.1 lacks.
//
// SystemPackage provides `FileDescriptor.open/read/write/close/resize`, `Stat` (`fstat`, `fstatat`) and `Errno`.
// It has no public `openat`, `mkdir(at)`, `renameat`, `unlinkat`, `fsync`, `flock` or directory listing, so this
// file adds them as `FileDescriptor` methods over Glibc. Every wrapper retries on `EINTR` and throws `Errno`, and
// every descriptor it creates is close-on-exec.
import EdgeCrypto
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
func valueOrErrno<I: FixedWidthInteger>(
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

/// Calls a SystemPackage API that is declared untyped `throws` but only ever throws `Errno` (`open`, `close`,
/// `resize`, `writeAll`), with typed throws. Any other error (there is none today) becomes `EIO`.
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

// MARK: - Buffers

/// `Array.withUnsafeBytes` with typed throws (the standard library's is untyped `rethrows`).
@inline(__always)
func withBytes<R, E: Error>(_ array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
    let result: Result<R, E> = array.withUnsafeBytes { buffer in
        do throws(E) {
            return .success(try body(buffer))
        } catch {
            return .failure(error)
        }
    }
    return try result.get()
}

// MARK: - Process identity

/// The effective user ID of this process (`geteuid`).
var effectiveUserID: UInt32 { UInt32(geteuid()) }

/// This process's ID (`getpid`).
var currentProcessID: Int32 { Int32(getpid()) }

// MARK: - Directory-relative operations

extension FileDescriptor {
    /// Opens `name`, resolved relative to the directory `self` (`openat(2)`). `.closeOnExec` is always added.
    ///
    /// - Parameters:
    ///   - permissions: the mode for a newly created file; required when `options` contains `.create`.
    /// The corresponding C function is `openat`.
    func openAt(
        _ name: String,
        _ mode: FileDescriptor.AccessMode,
        options: FileDescriptor.OpenOptions = [],
        permissions: FilePermissions? = nil,
        retryOnInterrupt: Bool = true
    ) throws(Errno) -> FileDescriptor {
        precondition(!options.contains(.create) || permissions != nil, "EdgeVault: openAt(.create) needs permissions")
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
    func openDirectoryAt(_ name: String) throws(Errno) -> FileDescriptor {
        try openAt(name, .readOnly, options: [.directory, .noFollow])
    }

    /// `fstatat(self, name, AT_SYMLINK_NOFOLLOW)`: describes `name` itself, never the target of a symbolic link.
    func statAt(_ name: String) throws(Errno) -> Stat {
        try Stat(FilePath(name), relativeTo: self, flags: .symlinkNoFollow)
    }

    /// Creates the directory `name` inside `self` with `permissions` (`mkdirat(2)`; the umask can only remove bits).
    ///
    /// The corresponding C function is `mkdirat`.
    func createDirectoryAt(_ name: String, permissions: FilePermissions) throws(Errno) {
        _ = try valueOrErrno { name.withCString { mkdirat(rawValue, $0, permissions.rawValue) } }
    }

    /// Atomically renames `source` to `destination`, both inside the directory `self`, replacing `destination`
    /// (`renameat(2)`). A symbolic link at `destination` is replaced, never followed.
    ///
    /// The corresponding C function is `renameat`.
    func renameAt(_ source: String, to destination: String) throws(Errno) {
        _ = try valueOrErrno {
            source.withCString { from in destination.withCString { to in renameat(rawValue, from, rawValue, to) } }
        }
    }

    /// Removes the directory entry `name` inside `self` (`unlinkat(2)` without `AT_REMOVEDIR`).
    ///
    /// The corresponding C function is `unlinkat`.
    func unlinkAt(_ name: String) throws(Errno) {
        _ = try valueOrErrno { name.withCString { unlinkat(rawValue, $0, 0) } }
    }

    /// The names in the directory `self`, without `.` and `..`, in directory order.
    ///
    /// Reads through a fresh descriptor for the same directory (`openat(self, ".")` + `fdopendir`), so the
    /// position of `self` is untouched. The corresponding C functions are `fdopendir`, `readdir` and `closedir`.
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
}

// MARK: - Whole-descriptor operations

extension FileDescriptor {
    /// Flushes the file's data and metadata to stable storage (`fsync(2)`); on a directory, makes its entries
    /// (creations, renames, removals) durable.
    ///
    /// The corresponding C function is `fsync`.
    func sync() throws(Errno) {
        _ = try valueOrErrno { fsync(rawValue) }
    }

    /// Tries to take an exclusive advisory lock without blocking (`flock(LOCK_EX | LOCK_NB)`).
    ///
    /// - Returns: `false` if another open file description holds the lock (`EWOULDBLOCK`).
    /// The corresponding C function is `flock`.
    func tryLockExclusive() throws(Errno) -> Bool {
        do throws(Errno) {
            _ = try valueOrErrno { flock(rawValue, LOCK_EX | LOCK_NB) }
            return true
        } catch  where error == .wouldBlock || error == .resourceTemporarilyUnavailable {
            return false
        }
    }

    /// Releases an advisory lock taken with ``tryLockExclusive()`` (`flock(LOCK_UN)`).
    func unlock() throws(Errno) {
        _ = try valueOrErrno { flock(rawValue, LOCK_UN) }
    }

    /// Writes all of `bytes` at the current position, retrying short writes and `EINTR`.
    func writeAll(_ bytes: UnsafeRawBufferPointer) throws(Errno) {
        var offset = 0
        while offset < bytes.count {
            let written = try valueOrErrno {
                posixWrite(rawValue, bytes.baseAddress! + offset, bytes.count - offset)
            }
            offset += written
        }
    }

    /// Reads from the current position until end of file, at most `limit + 1` bytes, into a new buffer.
    ///
    /// The buffer starts at `sizeHint + 1` bytes (capped at `limit + 1`) and grows if the file is longer; every
    /// buffer given up while growing is zeroed before it is freed.
    ///
    /// - Returns: the buffer and the number of bytes read; a count of `limit + 1` means the file is larger than
    ///   `limit`. The caller owns the buffer: it must zero it if it can hold secrets, then deallocate it.
    func readUpTo(limit: Int, sizeHint: Int = 0) throws(Errno) -> (buffer: UnsafeMutableRawBufferPointer, count: Int) {
        var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: min(max(sizeHint, 0), limit) + 1, alignment: 16)
        var count = 0
        do throws(Errno) {
            while true {
                if count == buffer.count {
                    guard buffer.count < limit + 1 else { break }
                    let larger = UnsafeMutableRawBufferPointer.allocate(
                        byteCount: min(buffer.count * 2, limit + 1), alignment: 16
                    )
                    larger.copyMemory(from: UnsafeRawBufferPointer(buffer))
                    Memory.zero(buffer)
                    buffer.deallocate()
                    buffer = larger
                }
                let got = try valueOrErrno {
                    posixRead(rawValue, buffer.baseAddress! + count, buffer.count - count)
                }
                if got == 0 { break }
                count += got
            }
        } catch {
            Memory.zero(buffer)
            buffer.deallocate()
            throw error
        }
        return (buffer, count)
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

// MARK: - Path operations

/// Creates `path` and every missing parent as directories with `permissions` (like `mkdir -p -m`); existing
/// components are left untouched (neither their mode nor their owner is changed).
///
/// - Returns: the directories that were created, outermost first.
func createDirectories(_ path: FilePath, permissions: FilePermissions) throws(Errno) -> [FilePath] {
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
            _ = try valueOrErrno { directory.withPlatformString { mkdir($0, permissions.rawValue) } }
            created.append(directory)
        } catch .fileExists {
            continue  // created concurrently by someone else: the caller checks the final directory itself
        }
    }
    return created
}

/// The value of the environment variable `name`, or `nil` if it is unset (`getenv`).
func environmentValue(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}

/// The home directory of the effective user from the password database (`getpwuid_r`), or `nil`.
func passwordDatabaseHomeDirectory() -> String? {
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
