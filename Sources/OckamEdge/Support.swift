// Shared helpers for commands: logging set-up, durations, the state directory, signals.
import Dispatch
import EdgeCLI
import EdgeConfig
import EdgeLog
import EdgeRouting
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

enum Support {
    /// Configures swift-log to write to stderr at `level`.
    static func bootstrapLogging(level: String?, format: String? = nil) throws(CommandFailure) -> Logger.Level {
        let text = level ?? "info"
        guard let parsed = Logger.Level(rawValue: text) else {
            throw CommandFailure("invalid log level '\(text)' (trace, debug, info, notice, warning, error, critical)", status: 2)
        }
        guard let chosen = LogFormat(rawValue: format ?? "auto") else {
            throw CommandFailure("invalid log format '\(format ?? "")' (auto, text, journal, json)", status: 2)
        }
        var environment: [String: String] = [:]
        if let stream = getenv("JOURNAL_STREAM") { environment["JOURNAL_STREAM"] = String(cString: stream) }
        let resolved = chosen.resolved(
            environment: environment, standardErrorIdentity: StandardErrorLogHandler.standardErrorIdentity)
        LoggingSystem.bootstrap { label in
            var handler = StandardErrorLogHandler(label: label, format: resolved)
            handler.logLevel = parsed
            return handler
        }
        return parsed
    }

    /// Parses `10s`, `500ms`, `2m` or a plain number of seconds.
    static func parseDuration(_ text: String) throws(CommandFailure) -> Duration {
        // One bounded parser for the CLI, the configuration and control requests (Quantity, fuzzed).
        guard let duration = Quantity.duration(text) else {
            throw CommandFailure("invalid duration '\(text)' (examples: 10s, 500ms, 2m, 6h; at most a year)", status: 2)
        }
        return duration
    }

    /// A duration, or nil for `off` (a limit that is disabled).
    static func parseOptionalDuration(_ text: String) throws(CommandFailure) -> Duration? {
        text == "off" ? nil : try parseDuration(text)
    }

    /// A whole-number option that must be ≥ 1 (`default` when absent).
    static func positiveCount(_ arguments: ParsedArguments, _ name: String, default value: Int) throws(CommandFailure) -> Int {
        guard let text = arguments.value(name) else { return value }
        guard let n = Quantity.count(text, in: 1...(1 << 30)) else {
            throw CommandFailure("--\(name): expected a whole number from 1 to \(1 << 30)", status: 2)
        }
        return n
    }

    /// ``positiveCount(_:_:default:)``, or nil for `off`.
    static func positiveCountOrOff(
        _ arguments: ParsedArguments, _ name: String, default value: Int?
    ) throws(CommandFailure) -> Int? {
        if arguments.value(name) == "off" { return nil }
        guard arguments.value(name) != nil else { return value }
        return try positiveCount(arguments, name, default: 0)
    }

    /// Splits `host:port` (``HostPort``) for listener flags; no host (`:4000`) means 0.0.0.0.
    static func parseHostPort(_ text: String) throws(CommandFailure) -> (String, Int) {
        guard let address = HostPort.parse(text) else {
            throw CommandFailure("invalid address '\(text)' (expected host:port, e.g. 127.0.0.1:4000)", status: 2)
        }
        return (address.host.isEmpty ? "0.0.0.0" : address.host, address.port)
    }

    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let text = String(cString: value)
        return text.isEmpty ? nil : text
    }

    /// `--state-dir`, else `$OCKAM_EDGE_STATE_DIR`, else `$XDG_STATE_HOME/ockam-edge`, else `~/.local/state/ockam-edge`.
    static func stateDirectory(_ flag: String?) -> FilePath {
        if let flag { return FilePath(flag) }
        if let dir = environment("OCKAM_EDGE_STATE_DIR") { return FilePath(dir) }
        if let xdg = environment("XDG_STATE_HOME") { return FilePath(xdg).appending("ockam-edge") }
        let home = environment("HOME") ?? "/tmp"
        return FilePath(home).appending(".local/state/ockam-edge")
    }

    /// Creates `path` and its parents with mode 0700 (existing directories are left as they are).
    static func makeDirectories(_ path: FilePath) throws(CommandFailure) {
        var current = FilePath(path.root?.string ?? "")
        for component in path.components {
            current.append(component)
            if mkdir(current.string, 0o700) != 0 && errno != EEXIST {
                throw CommandFailure("cannot create directory \(current): \(Errno(rawValue: errno))")
            }
        }
    }

    /// Writes `text` to `path` atomically (temp file, fsync, rename), mode 0600.
    static func writeFileAtomically(_ path: FilePath, _ text: String) throws(CommandFailure) {
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
    static func readRegularFile(_ path: FilePath, limit: Int) throws(CommandFailure) -> String {
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

    static func readFile(_ path: FilePath, limit: Int = 64 * 1024) -> String? {
        guard let fd = try? FileDescriptor.open(path, .readOnly, options: [.closeOnExec]) else { return nil }
        defer { try? fd.close() }
        var buffer = [UInt8](repeating: 0, count: limit)
        let n = (try? buffer.withUnsafeMutableBytes { try fd.read(into: $0) }) ?? 0
        return String(decoding: buffer[..<n], as: UTF8.self)
    }

    /// Waits until SIGINT or SIGTERM arrives (caught from this call on; see ``TerminationSignals``).
    static func waitForTerminationSignal() async -> Int32 {
        await TerminationSignals().wait()
    }
}

/// The write end of the signal pipe, for the handler (set once, before any handler is installed).
nonisolated(unsafe) private var signalPipeWrite: Int32 = -1

/// Writes the signal's number to the pipe: `write(2)` is async-signal-safe; errno is preserved.
private let signalPipeHandler: @convention(c) (Int32) -> Void = { number in
    let saved = errno
    var byte = UInt8(truncatingIfNeeded: number)
    _ = write(signalPipeWrite, &byte, 1)
    errno = saved
}

/// SIGHUP/SIGINT/SIGTERM as an `AsyncStream`, caught from the moment this is created.
///
/// `sigaction` installs the handler synchronously (the classic self-pipe: the handler writes the number to a pipe, a
/// reader thread yields it), so there is no window in which a signal is ignored or kills the process: a supervisor
/// that stops or reloads a node right after it printed `listening …` gets a drain (findings F1c, F5, F8 in
/// docs/security.md; Dispatch signal sources register asynchronously, after `signal(_, SIG_IGN)`, and lost signals
/// sent in between). One per process.
final class SignalStream: Sendable {
    let stream: AsyncStream<Int32>

    init(_ numbers: [Int32]) {
        precondition(signalPipeWrite < 0, "one SignalStream per process")
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { fatalError("cannot create the signal pipe: errno \(errno)") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let readEnd = fds[0]
        signalPipeWrite = fds[1]
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        self.stream = stream
        for number in numbers {
            var action = sigaction()
            action.__sigaction_handler = .init(sa_handler: signalPipeHandler)
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(number, &action, nil)
        }
        DispatchQueue(label: "ockam-edge.signals").async {
            var byte: UInt8 = 0
            while true {
                let n = read(readEnd, &byte, 1)
                if n == 1 {
                    continuation.yield(Int32(byte))
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    continuation.finish()
                    return
                }
            }
        }
    }
}

/// Catches SIGINT and SIGTERM from creation on; `wait()` returns the first (at once if one already came). Create it
/// before announcing readiness.
final class TerminationSignals: Sendable {
    private let signals = SignalStream([SIGINT, SIGTERM])

    /// The first signal received since creation (waiting for one if none came yet).
    func wait() async -> Int32 {
        for await number in signals.stream { return number }
        return SIGTERM
    }
}

/// Node names → listener addresses, kept as files in `<state>/nodes/<name>`.
struct NodeDirectory {
    let stateDirectory: FilePath
    var directory: FilePath { stateDirectory.appending("nodes") }

    static func validate(name: String) throws(CommandFailure) {
        let allowed = name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d || c == 0x5f
                || c == 0x2e
        }
        guard !name.isEmpty, name.utf8.count <= 64, allowed, name != ".", name != ".." else {
            throw CommandFailure("invalid node name '\(name)' (letters, digits, '-', '_', '.'; at most 64)", status: 2)
        }
    }

    func record(name: String, address: String) throws(CommandFailure) {
        try Support.makeDirectories(directory)
        try checkSafe()
        try Support.writeFileAtomically(directory.appending(name), "\(address)\n\(getpid())\n")
    }

    /// Refuses a state directory that another user could tamper with, as the vault does for its own: whoever can
    /// write the state directory or `nodes/` can replace node records (where `/node/<name>` routes go) and control
    /// sockets (what `--from <name>` talks to, and so what the CLI prints as a node's answer). Both must be
    /// directories owned by the user running ockam-edge and not writable by group or others; `nodes/` must not be a
    /// symbolic link. Missing ones are fine (they are created 0700).
    func checkSafe() throws(CommandFailure) {
        let user = geteuid()
        for (path, followLink) in [(stateDirectory, true), (directory, false)] {
            var info = stat()
            let result = followLink ? stat(path.string, &info) : lstat(path.string, &info)
            guard result == 0 else {
                if errno == ENOENT { continue }
                throw CommandFailure("cannot examine the state directory \(path): \(Errno(rawValue: errno))")
            }
            let type = info.st_mode & S_IFMT
            if type == S_IFLNK {
                throw CommandFailure("\(path) is a symbolic link; the node directory must be a real directory (remove it)")
            }
            guard type == S_IFDIR else { throw CommandFailure("\(path) is not a directory") }
            guard info.st_uid == user else {
                throw CommandFailure(
                    "\(path) is owned by uid \(info.st_uid), not by the user running ockam-edge (uid \(user)): another "
                        + "user could replace node records and control sockets (use your own --state-dir, or chown it)")
            }
            guard info.st_mode & 0o022 == 0 else {
                throw CommandFailure(
                    "\(path) is writable by group or others (mode \(String(info.st_mode & 0o777, radix: 8))): they could "
                        + "replace node records and control sockets (chmod go-w '\(path)')")
            }
        }
    }

    /// Refuses a control socket that is not a socket owned by the user running ockam-edge (checked before connecting).
    func checkSocket(name: String) throws(CommandFailure) {
        let path = socketPath(name: name)
        var info = stat()
        guard lstat(path.string, &info) == 0 else { return }  // missing: the connect says "not running"
        guard info.st_mode & S_IFMT == S_IFSOCK else { throw CommandFailure("\(path) is not a socket") }
        guard info.st_uid == geteuid() else {
            throw CommandFailure(
                "the control socket \(path) is owned by uid \(info.st_uid), not by you (uid \(geteuid())): refusing to talk to it")
        }
    }

    func remove(name: String) { _ = unlink(directory.appending(name).string) }

    /// Refuses to start a second node under a name a running node has: it would overwrite that node's record and
    /// replace its control socket. Running means the recorded process exists and its control socket accepts a
    /// connection (a record left by a crash, whose pid may have been reused, does not count).
    func refuseIfRunning(name: String) throws(CommandFailure) {
        guard let (address, pid) = liveRecord(name: name), pid != getpid(), Self.accepts(socketPath(name: name)) else {
            return
        }
        throw CommandFailure(
            "a node named '\(name)' is already running (pid \(pid), listening \(address)): stop it first, or choose "
                + "another name")
    }

    /// The record of `name` (listener address, pid) if its process still exists.
    private func liveRecord(name: String) -> (address: String, pid: Int32)? {
        guard let text = Support.readFile(directory.appending(name)) else { return nil }
        let lines = text.split(separator: "\n")
        guard lines.count >= 2, let pid = Int32(lines[1]) else { return nil }
        if kill(pid, 0) != 0 && errno == ESRCH { return nil }
        return (String(lines[0]), pid)
    }

    /// Whether a Unix socket at `path` accepts a connection.
    private static func accepts(_ path: FilePath) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.string.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return result == 0
    }

    /// The listener address of a running node, or nil if unknown or its process is gone.
    func lookup(name: String) -> String? {
        guard (try? NodeDirectory.validate(name: name)) != nil, (try? checkSafe()) != nil else { return nil }
        return liveRecord(name: name)?.address
    }
}
