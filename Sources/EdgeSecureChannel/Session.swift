// Sessions: keep a route (relay registration, channel to an outlet) alive — ping it, detect failure, replace it
// with capped exponential backoff and jitter.
import EdgeSync
import EdgeNode
import EdgeRouting
import Logging

/// A supervised route. `establish` builds it (connect, open channel, register relay…); `ping` proves it still works.
/// After `failuresBeforeReplace` consecutive failed pings the route is rebuilt; rebuilds back off exponentially
/// (with jitter) up to `maxBackoff`, so a dead peer causes no retry storm.
public final class Session: Sendable {
    public enum Status: String, Sendable { case connecting, up, down, stopped }

    public struct Options: Sendable {
        public var pingInterval: Duration
        public var pingTimeout: Duration
        public var failuresBeforeReplace: Int
        public var initialBackoff: Duration
        public var maxBackoff: Duration

        public init(
            pingInterval: Duration = .seconds(10), pingTimeout: Duration = .seconds(5), failuresBeforeReplace: Int = 3,
            initialBackoff: Duration = .milliseconds(200), maxBackoff: Duration = .seconds(30)
        ) {
            self.pingInterval = pingInterval
            self.pingTimeout = pingTimeout
            self.failuresBeforeReplace = failuresBeforeReplace
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
        }
    }

    private struct State {
        var status: Status = .connecting
        var route: Route?
        var replacements: UInt64 = 0
        var lastError: String?
    }

    public let name: String
    let options: Options
    let establish: @Sendable () async throws -> Route
    let ping: @Sendable (Route) async throws -> Void
    let onChange: @Sendable (Route?) -> Void
    let logger: Logger
    private let state = EdgeMutex(State())
    private let task = EdgeMutex<Task<Void, Never>?>(nil)

    public init(
        name: String, options: Options = Options(), logger: Logger,
        establish: @escaping @Sendable () async throws -> Route, ping: @escaping @Sendable (Route) async throws -> Void,
        onChange: @escaping @Sendable (Route?) -> Void = { _ in }
    ) {
        self.name = name
        self.options = options
        self.logger = logger
        self.establish = establish
        self.ping = ping
        self.onChange = onChange
    }

    public var status: Status { state.withLock { $0.status } }
    public var route: Route? { state.withLock { $0.route } }
    /// How many times the route was rebuilt after it had been up.
    public var replacements: UInt64 { state.withLock { $0.replacements } }
    public var lastError: String? { state.withLock { $0.lastError } }

    public func start() {
        let t = Task { await self.run() }
        task.withLock { $0 = t }
    }

    public func stop() async {
        let t = task.withLock { $0 }
        t?.cancel()
        await t?.value
        state.withLock { $0.status = .stopped }
    }

    private func set(_ status: Status, route: Route?, error: String? = nil) {
        state.withLock {
            $0.status = status
            $0.route = route
            if let error { $0.lastError = error }
        }
        onChange(route)
    }

    private func run() async {
        let backoff = Backoff(
            initial: max(options.initialBackoff, .milliseconds(1)),
            maximum: max(options.maxBackoff, options.initialBackoff, .milliseconds(1)), jitter: 0.5)
        var attempt = 0
        var wasUp = false
        while !Task.isCancelled {
            let route: Route
            do {
                route = try await establish()
            } catch {
                set(.down, route: nil, error: "\(error)")
                let delay = backoff.delay(attempt: attempt)
                attempt += 1
                logger.warning("session \(name): cannot establish (\(error)); retrying in \(delay)")
                guard (try? await Task.sleep(for: delay)) != nil else { break }
                continue
            }
            if wasUp { state.withLock { $0.replacements += 1 } }
            wasUp = true
            attempt = 0
            set(.up, route: route)
            logger.info("session \(name) up via \(route)")
            var failures = 0
            while !Task.isCancelled && failures < options.failuresBeforeReplace {
                guard (try? await Task.sleep(for: options.pingInterval)) != nil else { break }
                do {
                    try await withTimeout(options.pingTimeout) { try await self.ping(route) }
                    failures = 0
                } catch {
                    failures += 1
                    logger.notice("session \(name): ping \(failures)/\(options.failuresBeforeReplace) failed: \(error)")
                }
            }
            if Task.isCancelled { break }
            set(.down, route: nil, error: "no answer to \(options.failuresBeforeReplace) pings")
            logger.warning("session \(name) down; replacing it")
        }
        state.withLock { $0.status = .stopped }
    }

}

/// Runs `body`, failing with ``NodeError/timeout(_:)`` after `timeout` (then `body`'s task is cancelled).
/// The timeout is a ``OneShotTimer``: a `Task.sleep` raced against `body` would hold its memory until the deadline.
public func withTimeout<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let task = Task { try await body() }
    let expired = OnceFlag()
    let timer = OneShotTimer(after: timeout) {
        expired.set()
        task.cancel()
    }
    defer { timer.cancel() }
    return try await withTaskCancellationHandler {
        do {
            return try await task.value
        } catch where expired.isSet {
            throw NodeError.timeout(timeout)
        }
    } onCancel: {
        task.cancel()
    }
}
