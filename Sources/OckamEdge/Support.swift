// Shared helpers for commands: logging set-up, durations, the state directory, signals.
import Dispatch
import EdgeRouting
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

enum Support {
    /// Configures swift-log to write to stderr at `level`.
    static func bootstrapLogging(level: String?) throws(CommandFailure) -> Logger.Level {
        let text = level ?? "info"
        guard let parsed = Logger.Level(rawValue: text) else {
            throw CommandFailure("invalid log level '\(text)' (trace, debug, info, notice, warning, error, critical)", status: 2)
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = parsed
            return handler
        }
        return parsed
    }

    /// Parses `10s`, `500ms`, `2m` or a plain number of seconds.
    static func parseDuration(_ text: String) throws(CommandFailure) -> Duration {
        func number(_ s: Substring) -> Double? { Double(s).flatMap { $0 >= 0 && $0.isFinite ? $0 : nil } }
        if text.hasSuffix("ms"), let v = number(text.dropLast(2)) { return .milliseconds(Int64(v)) }
        if text.hasSuffix("s"), let v = number(text.dropLast()) { return .milliseconds(Int64(v * 1000)) }
        if text.hasSuffix("m"), let v = number(text.dropLast()) { return .seconds(Int64(v * 60)) }
        if let v = number(text[...]) { return .milliseconds(Int64(v * 1000)) }
        throw CommandFailure("invalid duration '\(text)' (examples: 10s, 500ms, 2m)", status: 2)
    }

    /// Splits `host:port` for listener flags.
    static func parseHostPort(_ text: String) throws(CommandFailure) -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw CommandFailure("invalid address '\(text)' (expected host:port, e.g. 127.0.0.1:4000)", status: 2)
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
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

/// Catches SIGINT and SIGTERM from creation on and remembers the first one, so a signal that arrives while the
/// process is still starting (e.g. right after it printed `listening …`) leads to the normal shutdown instead of the
/// default action (death without removing the node record and control socket). Create it before announcing
/// readiness; `wait()` returns at once if a signal already came.
final class TerminationSignals: @unchecked Sendable {  // mutable state only touched on `queue`
    private let queue = DispatchQueue(label: "ockam-edge.signals")
    private var sources: [any DispatchSourceSignal] = []
    private var received: Int32?
    private var continuation: CheckedContinuation<Int32, Never>?

    init() {
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        queue.sync {
            for number in [SIGINT, SIGTERM] {
                let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
                source.setEventHandler { [unowned self] in self.fire(number) }
                source.resume()
                sources.append(source)
            }
        }
    }

    private func fire(_ number: Int32) {
        if let continuation {
            self.continuation = nil
            continuation.resume(returning: number)
        } else if received == nil {
            received = number
        }
    }

    /// The first signal received since creation (waiting for one if none came yet).
    func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            queue.async {
                if let received = self.received {
                    continuation.resume(returning: received)
                } else {
                    self.continuation = continuation
                }
            }
        }
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
        try Support.writeFileAtomically(directory.appending(name), "\(address)\n\(getpid())\n")
    }

    func remove(name: String) { _ = unlink(directory.appending(name).string) }

    /// The listener address of a running node, or nil if unknown or its process is gone.
    func lookup(name: String) -> String? {
        guard (try? NodeDirectory.validate(name: name)) != nil,
            let text = Support.readFile(directory.appending(name))
        else { return nil }
        let lines = text.split(separator: "\n")
        guard lines.count >= 2, let pid = Int32(lines[1]) else { return nil }
        if kill(pid, 0) != 0 && errno == ESRCH { return nil }
        return String(lines[0])
    }
}
