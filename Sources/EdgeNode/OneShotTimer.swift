// A one-shot timer on libdispatch that is released as soon as it fires or is cancelled.
import Dispatch

/// Runs `handler` once after a delay unless cancelled first.
///
/// Waits with a timeout use this instead of racing the wait against `Task.sleep` in a task group: a cancelled
/// `Task.sleep` keeps its task's memory (about 750 bytes) until its deadline passes, so a node answering 1,000
/// requests a second with a 10 s timeout held about 7.5 MB of sleeps for requests long answered, and the churn
/// fragmented the heap (finding F6 in docs/security.md). A cancelled dispatch timer is released at once.
public final class OneShotTimer: @unchecked Sendable {  // DispatchSource is thread-safe; `source` never changes.
    private let source: any DispatchSourceTimer

    public init(after delay: Duration, handler: @escaping @Sendable () -> Void) {
        source = DispatchSource.makeTimerSource(queue: .global())
        // The handler must not capture the source (the source keeps its handler until it is cancelled).
        source.setEventHandler(handler: handler)
        source.schedule(deadline: .now() + Self.interval(delay), repeating: .never)
        source.resume()
    }

    /// Stops the timer; the handler does not run after this returns unless it had already started.
    public func cancel() { source.cancel() }

    deinit { source.cancel() }

    static func interval(_ duration: Duration) -> DispatchTimeInterval {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return .nanoseconds(0) }
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow || whole > Int64(Int.max) - 1_000_000_000 { return .never }
        return .nanoseconds(Int(whole + attoseconds / 1_000_000_000))
    }
}
