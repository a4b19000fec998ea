// The receive side of one BLE link: poll(2) and recv(2) on a thread of its own, with the kernel's L2CAP semantics,
// which NIO's channels do not model (a channel the kernel closed itself reports POLLHUP while recv says EAGAIN).
import CBlueZ
import EdgePOSIX
import EdgeSync

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How the receive side of a link ended.
public enum BLELinkEnd: Hashable, Sendable, CustomStringConvertible {
    /// The peer closed the channel (an orderly L2CAP disconnect: end of file).
    case closedByPeer
    /// The kernel closed the channel itself with an L2CAP disconnect of its own. Linux does this when the peer breaks
    /// L2CAP's rules on the channel — an SDU over our MTU, a PDU over it, data without credits. Seen from the socket:
    /// a hang-up with nothing to read and no end of file once the peer has answered the disconnect (`errno` is then
    /// `SO_ERROR`, usually 0), or, before it has, an error (ECONNRESET) without a hang-up.
    case closedByKernel(errno: Int32)
    /// An SDU of zero bytes: every SDU of docs/ble.md §3 carries at least its header byte (a framing violation).
    case emptySDU
    /// An SDU longer than our receive MTU.
    case oversizeSDU(size: Int, limit: Int)
    /// `recv` or `poll` failed: the link was lost (ETIMEDOUT for a supervision timeout, ECONNRESET, EHOSTDOWN, …).
    case failed(call: String, errno: Int32)
    /// ``BLELinkReader/stop()`` was called: the link is being closed on this side.
    case stopped

    public var description: String {
        switch self {
        case .closedByPeer: return "closed by peer"
        case .closedByKernel(let code):
            return "closed by the kernel (an L2CAP disconnect of its own: the peer broke L2CAP's rules, e.g. an SDU or"
                + " PDU over our MTU or data without credits)" + (code == 0 ? "" : "; \(BLETransportError.describe(errno: code))")
        case .emptySDU: return "framing violation: empty SDU"
        case .oversizeSDU(let size, let limit): return "framing violation: an SDU of \(size) bytes, over our MTU \(limit)"
        case .failed(let call, let code): return "link lost (\(call): \(BLETransportError.describe(errno: code)))"
        case .stopped: return "closed"
        }
    }
}

/// Reads one connected SEQPACKET socket's SDUs on a dedicated thread and hands them to an async consumer.
///
/// Why not NIO: on a Linux L2CAP socket that the kernel disconnected itself (after an SDU over our MTU, say), `poll`
/// reports POLLHUP — the socket is `BT_CLOSED` — while `recv` returns EAGAIN, because the kernel sets neither
/// `RCV_SHUTDOWN` nor, once the peer has answered the disconnect, `SO_ERROR`. NIO's channels treat a hang-up whose
/// read is neither data nor end of file as an impossible state and trap (`BaseSocketChannel.readEOF0`, for socket and
/// pipe channels alike), which let any device in radio range kill the process. This reader classifies every
/// outcome (``BLELinkEnd``) instead; writes still go through NIO, whose output path has no such invariant.
///
/// - Backpressure: at most `capacity` SDUs wait for the consumer; while they do, the thread stops reading, so the
///   kernel's receive queue fills and L2CAP stops granting the peer credits.
/// - `recv` uses `MSG_TRUNC`, which returns an SDU's real length, so an SDU over the MTU is seen exactly.
/// - The thread owns the descriptor and closes it when it ends; the wake eventfd is closed under the lock, and
///   written only under it while the thread runs, so no write can reach a reused descriptor.
private let pollRDHUP = cbluez_pollrdhup()

final class BLELinkReader: Sendable {
    enum Event: Sendable {
        case sdu([UInt8])
        case end(BLELinkEnd)
    }

    private struct State {
        var queue: [Event] = []
        var waiter: CheckedContinuation<Event, Never>?
        var stopping = false
        /// The thread waits for the consumer to take an SDU.
        var wantsRoom = false
        /// The thread has ended: the descriptor and the eventfd are closed.
        var finished = false
    }

    let fd: Int32
    let receiveMTU: Int
    let capacity: Int
    private let wake: Int32
    private let state = EdgeMutex(State())

    private init(fd: Int32, wake: Int32, receiveMTU: Int, capacity: Int) {
        self.fd = fd
        self.wake = wake
        self.receiveMTU = receiveMTU
        self.capacity = capacity
    }

    /// Starts reading `fd`, which the reader then owns. On failure the caller still owns `fd`.
    static func start(fd: Int32, receiveMTU: Int, capacity: Int = 8) throws(BLETransportError) -> BLELinkReader {
        let wake = eventfd(0, Int32(EFD_CLOEXEC))
        guard wake >= 0 else { throw .system(call: "eventfd", errno: errno) }
        let reader = BLELinkReader(fd: fd, wake: wake, receiveMTU: max(1, receiveMTU), capacity: max(1, capacity))
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, 256 * 1024)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        let retained = Unmanaged.passRetained(reader).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(
            &thread, &attributes,
            { raw in
                let reader = Unmanaged<BLELinkReader>.fromOpaque(raw!).takeRetainedValue()
                reader.run()
                return nil
            }, retained)
        guard created == 0 else {
            Unmanaged<BLELinkReader>.fromOpaque(retained).release()
            Glibc.close(wake)
            throw .system(call: "pthread_create", errno: created)
        }
        return reader
    }

    /// The next SDU, or how the link ended (the last event: do not call again after an `.end`).
    func next() async -> Event {
        await withCheckedContinuation { (continuation: CheckedContinuation<Event, Never>) in
            let event: Event? = state.withLock { state in
                guard !state.queue.isEmpty else {
                    state.waiter = continuation
                    return nil
                }
                let event = state.queue.removeFirst()
                if state.wantsRoom && !state.finished {
                    state.wantsRoom = false
                    signal()
                }
                return event
            }
            if let event { continuation.resume(returning: event) }
        }
    }

    /// SDUs waiting for the consumer, and whether the thread stopped reading until the consumer takes one (tests).
    var queued: Int { state.withLock { $0.queue.count } }
    var waitingForRoom: Bool { state.withLock { $0.wantsRoom } }

    /// Ends reading: the thread closes the descriptor and delivers ``BLELinkEnd/stopped`` (if it had not ended yet).
    func stop() {
        state.withLock { state in
            state.stopping = true
            if !state.finished { signal() }
        }
    }

    /// Wakes the thread. Call under the lock, while the thread has not finished.
    private func signal() {
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    // MARK: The thread

    private func run() {
        var buffer = [UInt8](repeating: 0, count: receiveMTU)
        let end = buffer.withUnsafeMutableBytes { readLoop(into: $0) }
        let waiter = state.withLock { state -> CheckedContinuation<Event, Never>? in
            state.finished = true
            Glibc.close(wake)
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.queue.append(.end(end))
            return nil
        }
        Glibc.close(fd)
        waiter?.resume(returning: .end(end))
    }

    private func readLoop(into buffer: UnsafeMutableRawBufferPointer) -> BLELinkEnd {
        while true {
            let (stopping, full) = state.withLock { state -> (Bool, Bool) in
                let full = state.queue.count >= capacity
                state.wantsRoom = full
                return (state.stopping, full)
            }
            if stopping { return .stopped }
            // While the queue is full only the eventfd is watched (a negative descriptor is ignored by poll).
            var fds = [
                pollfd(fd: full ? -1 : fd, events: Int16(POLLIN) | pollRDHUP, revents: 0),
                pollfd(fd: wake, events: Int16(POLLIN), revents: 0),
            ]
            let ready = retryingOnInterrupt { poll(&fds, 2, -1) }
            if ready < 0 { return .failed(call: "poll", errno: errno) }
            if fds[1].revents != 0 {
                var count: UInt64 = 0
                _ = read(wake, &count, 8)
                continue
            }
            let revents = fds[0].revents
            guard revents != 0 else { continue }
            // Read what is there, until EAGAIN or a full queue.
            reading: while true {
                let got = recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT) | Int32(MSG_TRUNC))
                let code = got < 0 ? errno : 0
                switch Self.classify(received: got, errno: code, revents: revents, receiveMTU: receiveMTU) {
                case .sdu(let size):
                    if push(.sdu(Array(buffer[..<size]))) { break reading }
                case .retry:
                    continue reading
                case .wait:
                    break reading
                case .endOfFileOrEmpty:
                    return Self.hungUp(fd) ? .closedByPeer : .emptySDU
                case .ended(.closedByKernel(let code)):
                    return .closedByKernel(errno: code != 0 ? code : Self.socketError(fd))
                case .ended(let end):
                    return end
                }
            }
        }
    }

    /// Queues an SDU for the consumer (or hands it over); true when the queue is now full.
    private func push(_ event: Event) -> Bool {
        let (waiter, full) = state.withLock { state -> (CheckedContinuation<Event, Never>?, Bool) in
            if let waiter = state.waiter {
                state.waiter = nil
                return (waiter, false)
            }
            state.queue.append(event)
            return (nil, state.queue.count >= capacity)
        }
        waiter?.resume(returning: event)
        return full
    }

    /// What one `recv` result means (pure; see the type's discussion).
    enum Step: Hashable {
        case sdu(size: Int)
        /// EINTR.
        case retry
        /// Nothing more to read now: poll again.
        case wait
        /// `recv` returned 0: end of file, or an empty SDU (the caller tells them apart by POLLRDHUP).
        case endOfFileOrEmpty
        case ended(BLELinkEnd)
    }

    /// - Parameters:
    ///   - received: `recv`'s result with `MSG_TRUNC` (an SDU's real length, even when it was longer than the buffer).
    ///   - errno: `errno` when `received` is negative.
    ///   - revents: what `poll` reported for the socket before this read.
    static func classify(received: Int, errno code: Int32, revents: Int16, receiveMTU: Int) -> Step {
        if received > receiveMTU { return .ended(.oversizeSDU(size: received, limit: receiveMTU)) }
        if received > 0 { return .sdu(size: received) }
        if received == 0 { return .endOfFileOrEmpty }
        switch code {
        case EINTR: return .retry
        case EAGAIN, EWOULDBLOCK:
            // A hang-up or an error with nothing to read and no end of file: the kernel closed the channel.
            let closed = Int16(POLLHUP) | Int16(POLLERR) | pollRDHUP
            return revents & closed != 0 ? .ended(.closedByKernel(errno: 0)) : .wait
        default:
            // An error with no hang-up yet: the kernel started an L2CAP disconnect of its own and waits for the peer's
            // response (the socket is BT_DISCONN). A link that was lost is BT_CLOSED, which reports POLLHUP too.
            if revents & Int16(POLLERR) != 0 && revents & Int16(POLLHUP) == 0 {
                return .ended(.closedByKernel(errno: code))
            }
            return .ended(.failed(call: "recv", errno: code))
        }
    }

    /// Whether the socket's receive side is shut down (POLLRDHUP/POLLHUP now): tells end of file from an empty SDU.
    private static func hungUp(_ fd: Int32) -> Bool {
        var check = pollfd(fd: fd, events: pollRDHUP, revents: 0)
        guard poll(&check, 1, 0) > 0 else { return false }
        return check.revents & (pollRDHUP | Int16(POLLHUP)) != 0
    }

    private static func socketError(_ fd: Int32) -> Int32 {
        (try? SeqPacketSocket.socketError(fd)) ?? 0
    }
}
