// Files, paths and parsers the runtime and the commands share: durations, host:port, the state directory, atomic writes.
import EdgeCLI
import EdgeConfig
import EdgeIdentity
import EdgeWire
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

package enum Support {
    /// Parses `10s`, `500ms`, `2m` or a plain number of seconds.
    package static func parseDuration(_ text: String) throws(CommandFailure) -> Duration {
        // One bounded parser for the CLI, the configuration and control requests (Quantity, fuzzed).
        guard let duration = Quantity.duration(text) else {
            throw CommandFailure("invalid duration '\(text)' (examples: 10s, 500ms, 2m, 6h; at most a year)", status: 2)
        }
        return duration
    }

    /// A duration, or nil for `off` (a limit that is disabled).
    package static func parseOptionalDuration(_ text: String) throws(CommandFailure) -> Duration? {
        text == "off" ? nil : try parseDuration(text)
    }

    /// Splits `host:port` (``HostPort``) for listener flags; no host (`:4000`) means 0.0.0.0.
    package static func parseHostPort(_ text: String) throws(CommandFailure) -> (String, Int) {
        guard let address = HostPort.parse(text) else {
            throw CommandFailure("invalid address '\(text)' (expected host:port, e.g. 127.0.0.1:4000)", status: 2)
        }
        return (address.host.isEmpty ? "0.0.0.0" : address.host, address.port)
    }

    package static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let text = String(cString: value)
        return text.isEmpty ? nil : text
    }

    /// `--state-dir`, else `$OCKAM_EDGE_STATE_DIR`, else `$XDG_STATE_HOME/ockam-edge`, else `~/.local/state/ockam-edge`.
    package static func stateDirectory(_ flag: String?) -> FilePath {
        if let flag { return FilePath(flag) }
        if let dir = environment("OCKAM_EDGE_STATE_DIR") { return FilePath(dir) }
        if let xdg = environment("XDG_STATE_HOME") { return FilePath(xdg).appending("ockam-edge") }
        let home = environment("HOME") ?? "/tmp"
        return FilePath(home).appending(".local/state/ockam-edge")
    }

    /// Creates `path` and its parents with mode 0700 (existing directories are left as they are).
    package static func makeDirectories(_ path: FilePath) throws(CommandFailure) {
        var current = FilePath(path.root?.string ?? "")
        for component in path.components {
            current.append(component)
            if mkdir(current.string, 0o700) != 0 && errno != EEXIST {
                throw CommandFailure("cannot create directory \(current): \(Errno(rawValue: errno))")
            }
        }
    }

    /// Writes `text` to `path` atomically (temp file, fsync, rename), mode 0600.
    package static func writeFileAtomically(_ path: FilePath, _ text: String) throws(CommandFailure) {
        let temporary = FilePath(path.string + ".tmp.\(getpid())")
        do {
            let fd = try FileDescriptor.open(
                temporary, .writeOnly, options: [.create, .truncate, .closeOnExec], permissions: .ownerReadWrite)
            try fd.closeAfter {
                _ = try fd.writeAll(Array(text.utf8))
                if fsync(fd.rawValue) != 0 { throw Errno(rawValue: errno) }
            }
            if rename(temporary.string, path.string) != 0 { throw Errno(rawValue: errno) }
        } catch {
            _ = unlink(temporary.string)
            throw CommandFailure("cannot write \(path): \(error)")
        }
    }

    /// The text of a regular file, at most `limit` bytes (read to the end or the limit). A directory, FIFO, socket or
    /// device is refused with a clear error, without blocking (a FIFO is opened non-blocking and refused): a
    /// configuration path that names one is a mistake, not an empty file.
    package static func readRegularFile(_ path: FilePath, limit: Int) throws(CommandFailure) -> String {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, .readOnly, options: [.closeOnExec, .nonBlocking])
        } catch {
            throw CommandFailure("cannot read \(path): \(error)")
        }
        defer { try? fd.close() }
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0 else { throw CommandFailure("cannot read \(path): \(Errno(rawValue: errno))") }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw CommandFailure("\(path) is a directory, not a configuration file")
        case S_IFIFO: throw CommandFailure("\(path) is a FIFO, not a configuration file (it would block)")
        default: throw CommandFailure("\(path) is not a regular file")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while bytes.count < limit {
            let n: Int
            do {
                n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0, retryOnInterrupt: true) }
            } catch {
                throw CommandFailure("cannot read \(path): \(error)")
            }
            if n == 0 { break }
            bytes += chunk[..<min(n, limit - bytes.count)]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    package static func readFile(_ path: FilePath, limit: Int = 64 * 1024) -> String? {
        guard let fd = try? FileDescriptor.open(path, .readOnly, options: [.closeOnExec]) else { return nil }
        defer { try? fd.close() }
        var buffer = [UInt8](repeating: 0, count: limit)
        let n = (try? buffer.withUnsafeMutableBytes { try fd.read(into: $0) }) ?? 0
        return String(decoding: buffer[..<n], as: UTF8.self)
    }
}

extension Identity {
    /// An identity from its change history in hex (`identity show --full`); `what` names the option or key.
    package static func decoding(hex: String?, what: String) throws(CommandFailure) -> Identity {
        guard let hex, let bytes = Hex.decode(hex) else {
            throw CommandFailure("\(what) must be a change history in hex ('identity show --full')", status: 2)
        }
        do {
            return try Identity(decoding: bytes)
        } catch {
            throw CommandFailure("\(what) is not a valid identity: \(error)")
        }
    }
}
