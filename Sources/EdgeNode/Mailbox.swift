// EdgeNode: the node runtime — workers at addresses, bounded mailboxes, routing between workers and transports.
import EdgeSync
import DequeModule
import EdgeRouting

/// A bounded FIFO mailbox with one consumer (the worker's task) and any number of producers.
///
/// When the mailbox is full, ``send(_:)`` suspends the producer until the worker takes a message, so a
/// fast transport is slowed to the pace of the worker (backpressure reaches the socket) instead of
/// messages being dropped. Waiting producers are served in FIFO order.
///
/// The buffer is bounded in messages (`capacity`) and in bytes (`capacityBytes`, the messages' payloads and
/// addresses): one message is always accepted into an empty buffer, whatever its size.
///
/// ### Invariants
/// - At most `capacity` messages and, beyond the first, `capacityBytes` bytes are buffered; at most one message per
///   suspended producer is held beyond that.
/// - After ``close()``, producers get ``NodeError/workerStopped(_:)`` and every message still waiting is
///   returned by ``close()`` so the caller can account for it (nothing disappears without being counted).
final class Mailbox: Sendable {
    private struct State: ~Copyable {
        /// Each message with its ``LocalMessage/approximateSize``, computed once when it was sent.
        var buffer: Deque<(message: LocalMessage, size: Int)> = []
        var bufferedBytes = 0
        var waitingSenders: Deque<(LocalMessage, size: Int, CheckedContinuation<Void, any Error>)> = []
        var receiver: CheckedContinuation<LocalMessage?, Never>?
        var closed = false

        func hasRoom(for size: Int, capacity: Int, capacityBytes: Int) -> Bool {
            buffer.isEmpty || (buffer.count < capacity && bufferedBytes + size <= capacityBytes)
        }

        mutating func append(_ message: LocalMessage, size: Int) {
            bufferedBytes += size
            buffer.append((message, size))
        }

        /// Moves the first waiting producer's message into the buffer if it fits now; returns that producer to resume.
        mutating func admitWaiting(capacity: Int, capacityBytes: Int) -> CheckedContinuation<Void, any Error>? {
            guard let (pending, size, continuation) = waitingSenders.first,
                hasRoom(for: size, capacity: capacity, capacityBytes: capacityBytes)
            else { return nil }
            waitingSenders.removeFirst()
            append(pending, size: size)
            return continuation
        }

        mutating func popFirst() -> LocalMessage? {
            guard let (message, size) = buffer.popFirst() else { return nil }
            bufferedBytes -= size
            return message
        }
    }

    let capacity: Int
    let capacityBytes: Int
    let address: Address
    private let state = EdgeMutex(State())

    init(capacity: Int, capacityBytes: Int = Int.max, address: Address) {
        precondition(capacity > 0 && capacityBytes > 0)
        self.capacity = capacity
        self.capacityBytes = capacityBytes
        self.address = address
    }

    /// Whether ``close()`` has been called.
    var isClosed: Bool { state.withLock { $0.closed } }

    /// Bytes buffered (for status and tests).
    var bufferedBytes: Int { state.withLock { $0.bufferedBytes } }

    /// Number of messages buffered (for status and tests).
    var depth: Int { state.withLock { $0.buffer.count + $0.waitingSenders.count } }

    /// Enqueues a message, suspending while the mailbox is full.
    func send(_ message: LocalMessage) async throws {
        let size = message.approximateSize
        enum Action {
            case done
            case resume(CheckedContinuation<LocalMessage?, Never>)
            case wait
            case closed
        }
        let action: Action = state.withLock { state in
            if state.closed { return .closed }
            if let receiver = state.receiver {
                state.receiver = nil
                return .resume(receiver)
            }
            if state.waitingSenders.isEmpty && state.hasRoom(for: size, capacity: capacity, capacityBytes: capacityBytes) {
                state.append(message, size: size)
                return .done
            }
            return .wait
        }
        switch action {
        case .done: return
        case .closed: throw NodeError.workerStopped(address)
        case .resume(let receiver): receiver.resume(returning: message)
        case .wait:
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                // Re-check under the lock: the consumer may have made room or started waiting meanwhile.
                enum Slow {
                    case queued
                    case refused
                    case accepted
                    case handOff(CheckedContinuation<LocalMessage?, Never>)
                }
                let slow: Slow = state.withLock { state in
                    if state.closed { return .refused }
                    if let receiver = state.receiver {
                        state.receiver = nil
                        return .handOff(receiver)
                    }
                    if state.waitingSenders.isEmpty
                        && state.hasRoom(for: size, capacity: capacity, capacityBytes: capacityBytes)
                    {
                        state.append(message, size: size)
                        return .accepted
                    }
                    state.waitingSenders.append((message, size, continuation))
                    return .queued
                }
                switch slow {
                case .queued: break
                case .refused: continuation.resume(throwing: NodeError.workerStopped(address))
                case .accepted: continuation.resume()
                case .handOff(let receiver):
                    receiver.resume(returning: message)
                    continuation.resume()
                }
            }
        }
    }

    /// Enqueues without waiting; returns false if the mailbox is full or closed.
    func trySend(_ message: LocalMessage) -> Bool {
        let size = message.approximateSize
        let result: (Bool, CheckedContinuation<LocalMessage?, Never>?) = state.withLock { state in
            if state.closed { return (false, nil) }
            if let receiver = state.receiver {
                state.receiver = nil
                return (true, receiver)
            }
            guard state.waitingSenders.isEmpty, state.hasRoom(for: size, capacity: capacity, capacityBytes: capacityBytes)
            else { return (false, nil) }
            state.append(message, size: size)
            return (true, nil)
        }
        result.1?.resume(returning: message)
        return result.0
    }

    /// The next message, or nil once the mailbox is closed and drained.
    func next() async -> LocalMessage? {
        enum Action {
            case message(LocalMessage, CheckedContinuation<Void, any Error>?)
            case finished
            case wait
        }
        let action: Action = state.withLock { state in
            if let message = state.popFirst() {
                return .message(message, state.admitWaiting(capacity: capacity, capacityBytes: capacityBytes))
            }
            if let (pending, _, continuation) = state.waitingSenders.popFirst() {
                return .message(pending, continuation)
            }
            return state.closed ? .finished : .wait
        }
        switch action {
        case .message(let message, let released):
            released?.resume()
            return message
        case .finished:
            return nil
        case .wait:
            return await withCheckedContinuation { (continuation: CheckedContinuation<LocalMessage?, Never>) in
                let immediate: (LocalMessage?, CheckedContinuation<Void, any Error>?)? = state.withLock { state in
                    if let message = state.popFirst() {
                        return (message, state.admitWaiting(capacity: capacity, capacityBytes: capacityBytes))
                    }
                    if let (pending, _, sender) = state.waitingSenders.popFirst() { return (pending, sender) }
                    if state.closed { return (nil, nil) }
                    precondition(state.receiver == nil, "a mailbox has exactly one consumer")
                    state.receiver = continuation
                    return nil
                }
                if let (message, released) = immediate {
                    released?.resume()
                    continuation.resume(returning: message)
                }
            }
        }
    }

    /// Closes the mailbox: the consumer drains what is buffered, later sends fail, waiting producers fail.
    /// Returns the number of producer messages that were refused because they were still waiting.
    @discardableResult
    func close() -> Int {
        let (senders, receiver): ([CheckedContinuation<Void, any Error>], CheckedContinuation<LocalMessage?, Never>?) =
            state.withLock { state in
                state.closed = true
                let senders = state.waitingSenders.map(\.2)
                state.waitingSenders.removeAll()
                let receiver = state.buffer.isEmpty ? state.receiver : nil
                if receiver != nil { state.receiver = nil }
                return (senders, receiver)
            }
        for sender in senders { sender.resume(throwing: NodeError.workerStopped(address)) }
        receiver?.resume(returning: nil)
        return senders.count
    }

    /// Drops everything still buffered (after the worker has stopped) and returns how many were dropped.
    func discardBuffered() -> Int {
        state.withLock { state in
            let n = state.buffer.count
            state.buffer.removeAll()
            state.bufferedBytes = 0
            return n
        }
    }
}

extension LocalMessage {
    /// What a buffered message costs, for byte budgets: its payload and address values, plus a fixed overhead per
    /// address and message (an estimate of Swift's array and struct headers).
    var approximateSize: Int {
        let addresses = onwardRoute.addresses.reduce(0) { $0 + $1.value.count + 32 }
            + returnRoute.addresses.reduce(0) { $0 + $1.value.count + 32 }
        return payload.count + addresses + 64
    }
}
