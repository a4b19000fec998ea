// Rate limits for log lines a remote peer can trigger at will (one per bad handshake, per HELLO, per failed message).
import EdgeSync
import Logging

/// Admits one log line per `interval` for one kind of event and counts the events suppressed in between, so a peer
/// that repeats a cheap bad input cannot turn it into unbounded log volume (journald rate limits would then drop the
/// operator's other lines too). Callers log suppressed events at debug level.
public final class LogRateLimiter: Sendable {
    public let interval: Duration
    private struct State {
        var last: ContinuousClock.Instant?
        var suppressed = 0
    }
    private let state = EdgeMutex(State())

    public init(interval: Duration = .seconds(10)) {
        self.interval = interval
    }

    /// Whether to log this event at its normal level; if so, how many were suppressed since the last one logged
    /// (nil: suppress this one, log it at debug).
    public func admit(now: ContinuousClock.Instant = .now) -> Int? {
        state.withLock { state in
            if let last = state.last, now - last < interval {
                state.suppressed += 1
                return nil
            }
            defer {
                state.last = now
                state.suppressed = 0
            }
            return state.suppressed
        }
    }

    /// Logs `text` at `level` if admitted (noting how many were suppressed since the last one), else at debug.
    public func log(_ text: @autoclosure () -> String, at level: Logger.Level = .warning, to logger: Logger) {
        if let suppressed = admit() {
            logger.log(level: level, "\(text())\(Self.note(suppressed))")
        } else {
            logger.debug("\(text())")
        }
    }

    /// " (N more since the last one logged)", or "" when none were suppressed.
    public static func note(_ suppressed: Int) -> String {
        suppressed > 0 ? " (\(suppressed) more since the last one logged)" : ""
    }
}
