// Waiting for readiness of a descriptor NIO cannot drive (a listening or connecting L2CAP socket): poll(2) on a
// short-lived thread, woken by an eventfd when the waiting task is cancelled.
import CBlueZ
import EdgePOSIX
import EdgeSync

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

enum FDWait {
    /// What a wait ended with.
    enum Outcome: Hashable, Sendable {
        /// The descriptor reported these `revents` (may include POLLERR/POLLHUP/POLLNVAL).
        case ready(Int16)
        case timedOut
    }

    /// Waits until `fd` reports one of `events`, or `timeout` passes.
    /// - Throws: ``BLETransportError/cancelled`` when the calling task is cancelled, or a system error.
    static func wait(fd: Int32, events: Int16, timeout: Duration?) async throws(BLETransportError) -> Outcome {
        let wake = eventfd(0, Int32(EFD_CLOEXEC))
        guard wake >= 0 else { throw .system(call: "eventfd", errno: errno) }
        let job = PollJob(fd: fd, wake: wake, events: events, timeout: timeout)
        let result: Result<Outcome, BLETransportError> = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<Outcome, BLETransportError>, Never>) in
                job.start(continuation)
            }
        } onCancel: {
            job.cancel()
        }
        return try result.get()
    }
}

/// One poll on its own detached thread. The eventfd is closed by the thread under the lock, and the cancel path
/// writes to it only under the same lock while the job is not finished, so it never writes to a reused descriptor.
private final class PollJob: Sendable {
    let fd: Int32
    let wake: Int32
    let events: Int16
    let timeoutMilliseconds: Int32
    private struct State {
        var finished = false
        var cancelled = false
        var continuation: CheckedContinuation<Result<FDWait.Outcome, BLETransportError>, Never>?
    }
    private let state = EdgeMutex(State())

    init(fd: Int32, wake: Int32, events: Int16, timeout: Duration?) {
        self.fd = fd
        self.wake = wake
        self.events = events
        if let timeout {
            let (seconds, attoseconds) = timeout.components
            let ms = seconds * 1000 + attoseconds / 1_000_000_000_000_000
            timeoutMilliseconds = Int32(clamping: max(0, ms))
        } else {
            timeoutMilliseconds = -1
        }
    }

    func start(_ continuation: CheckedContinuation<Result<FDWait.Outcome, BLETransportError>, Never>) {
        let alreadyCancelled = state.withLock { state -> Bool in
            state.continuation = continuation
            return state.cancelled
        }
        if alreadyCancelled { signalWake() }
        let retained = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(
            &thread, nil,
            { raw in
                let job = Unmanaged<PollJob>.fromOpaque(raw!).takeRetainedValue()
                job.run()
                return nil
            }, retained)
        if created != 0 {
            Unmanaged<PollJob>.fromOpaque(retained).release()
            finish(.failure(.system(call: "pthread_create", errno: created)))
        } else {
            pthread_detach(thread)
        }
    }

    func cancel() {
        let signal = state.withLock { state -> Bool in
            state.cancelled = true
            return !state.finished && state.continuation != nil
        }
        if signal { signalWake() }
    }

    private func signalWake() {
        state.withLock { state in
            guard !state.finished else { return }
            var one: UInt64 = 1
            _ = write(wake, &one, 8)
        }
    }

    private func run() {
        var fds = [pollfd(fd: fd, events: events, revents: 0), pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
        let outcome: Result<FDWait.Outcome, BLETransportError>
        while true {
            let n = retryingOnInterrupt { poll(&fds, 2, timeoutMilliseconds) }
            if n < 0 {
                outcome = .failure(.system(call: "poll", errno: errno))
                break
            }
            if fds[1].revents != 0 {
                outcome = .failure(.cancelled)
            } else if n == 0 {
                outcome = .success(.timedOut)
            } else {
                outcome = .success(.ready(fds[0].revents))
            }
            break
        }
        finish(outcome)
    }

    private func finish(_ outcome: Result<FDWait.Outcome, BLETransportError>) {
        let continuation = state.withLock { state -> CheckedContinuation<Result<FDWait.Outcome, BLETransportError>, Never>? in
            guard !state.finished else { return nil }
            state.finished = true
            Glibc.close(wake)
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(returning: outcome)
    }
}
