// Command-side helpers: logging set-up, count options, and signals caught from the moment they are asked for.
import Dispatch
import EdgeAgent
import EdgeCLI
import EdgeConfig
import EdgeLog
import Logging

#if canImport(Glibc)
import Glibc
#endif

extension Support {
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
