// The bridge runtime: a device-facing worker that accepts messages into the store, and an uplink loop that delivers
// them, oldest first, to the ingest service at the end of a (secure-channel) route, with a window of envelopes in
// flight once the ingest service says it keeps their order (cumulative acknowledgements; docs/bridge.md).
import EdgeSync
import Dispatch
import EdgeIdentity
import EdgeNode
import EdgeRouting
import EdgeSecureChannel
import EdgeWire
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Where accepted records wait for delivery. ``StoreAndForwardQueue`` (EdgeQueue) is the production store. Calls may
/// block on disk I/O; the bridge makes them on its own dispatch queue, never on the event loop.
public protocol BridgeStore: AnyObject, Sendable {
    /// Stores one record; returns its sequence number and how many of the oldest records were dropped for room.
    func store(_ record: [UInt8]) throws -> (sequence: UInt64, droppedOldest: Int)
    /// Up to `max` of the oldest unacknowledged records, oldest first.
    func oldest(max: Int) throws -> [(sequence: UInt64, bytes: [UInt8])]
    /// Up to `max` of the oldest unacknowledged records numbered after `sequence`, oldest first: what the bridge sends
    /// next while records are in flight.
    func oldest(after sequence: UInt64, max: Int) throws -> [(sequence: UInt64, bytes: [UInt8])]
    /// Everything up to and including `sequence` was delivered; returns how many records this removed.
    @discardableResult
    func acknowledge(through sequence: UInt64) throws -> Int
    /// Records waiting for delivery.
    var pending: Int { get }
    /// The store's ``QueueEpoch``, sent with every envelope; nil for a store without one (sent without).
    var epoch: [UInt8]? { get }
}

extension BridgeStore {
    public var epoch: [UInt8]? { nil }

    /// Reads from the oldest: for small stores (tests). ``StoreAndForwardQueue`` skips what is in flight.
    public func oldest(after sequence: UInt64, max: Int) throws -> [(sequence: UInt64, bytes: [UInt8])] {
        Array(try oldest(max: pending).lazy.filter { $0.sequence > sequence }.prefix(max))
    }
}

/// A gateway bridge: device messages in, acknowledged delivery out. See docs/bridge.md.
public final class Bridge: Sendable {
    public struct Options: Sendable {
        /// How long envelopes may be in flight with no acknowledgement before the route is considered broken.
        public var ackTimeout: Duration = .seconds(5)
        /// Most envelopes in flight (sent, not yet acknowledged) once the ingest service's acknowledgements say it
        /// keeps the order of pipelined envelopes; one at a time until then, and with an ingest service that does not.
        public var window = 256
        /// Most payload bytes in flight (at least one envelope is always sent): bounds what the window puts in the
        /// secure channel's and the socket's buffers.
        public var windowBytes = 1 << 20
        /// Reply `ok <sequence>` (a BARE string) to the device once its message is stored.
        public var replyToDevices = true
        /// Back-off between attempts to rebuild the uplink route (doubles up to `retryMax`, each delay shortened by a
        /// random 0–50 %: ``Backoff``).
        public var retryInitial: Duration = .milliseconds(200)
        public var retryMax: Duration = .seconds(10)
        public init() {}
    }

    public struct Counters: Sendable, Equatable {
        /// Device messages stored.
        public var accepted: UInt64 = 0
        /// Device messages the store refused (disk failure, oversize): the device got an error reply.
        public var refused: UInt64 = 0
        /// Stored messages dropped, oldest first, because the store was full.
        public var droppedOldest: UInt64 = 0
        /// Stored records that could not be decoded (corrupt store) and were skipped.
        public var droppedCorrupt: UInt64 = 0
        /// Messages the ingest service acknowledged.
        public var delivered: UInt64 = 0
        /// Delivery attempts that failed (no acknowledgement in time, route broken).
        public var deliveryFailures: UInt64 = 0
        /// Times the uplink route was (re)built.
        public var routeBuilds: UInt64 = 0
        /// Envelopes sent again after a failed delivery run (they were in flight when the route broke).
        public var resent: UInt64 = 0
    }

    /// What the uplink loop is doing, for `status`.
    public struct Delivery: Sendable, Equatable {
        /// Envelopes sent and not yet acknowledged.
        public var inFlight = 0
        /// The window in use: 1 until the ingest service advertised one, then the smaller of its and ours.
        public var window = 1
    }

    public let name: String
    public let options: Options
    let node: Node
    let store: any BridgeStore
    let logger: Logger
    let describeLink: @Sendable (Address) -> String?
    let resolve: @Sendable () async throws -> Route
    let discard: @Sendable (Route) async -> Void
    private let io: DispatchQueue
    private let state = EdgeMutex(State())
    /// Where the ingest service's acknowledgements come back (the envelopes' return route).
    let ackAddress = Address.random()
    private let event: AsyncStream<Event>.Continuation
    private let events: AsyncStream<Event>
    private let tasks = EdgeMutex<[Task<Void, Never>]>([])
    /// Refusals of oversized messages, and drops from a full store: a device decides how many messages it sends.
    let oversizeLog = LogRateLimiter()
    let queueFullLog = LogRateLimiter()

    struct State {
        var counters = Counters()
        var delivery = Delivery()
        var uplinkUp = false
        var lastError: String?
    }

    /// What wakes the uplink loop. Acknowledgements are cumulative, so the stream keeps only the newest events.
    enum Event: Sendable {
        /// A device message was stored.
        case stored
        case ack(BridgeAck)
        /// The ingest service could not store that envelope.
        case refused(BridgeRefusal)
        /// Time to check for an acknowledgement overdue.
        case tick
    }

    /// - Parameters:
    ///   - describeLink: names the device link behind a transport sender address (`serial:<name>`, `ble:<addr>`).
    ///   - resolve: builds the route to the ingest service (opening secure channels as needed).
    ///   - discard: called with a route that stopped working (e.g. to close its secure channel).
    public init(
        name: String, store: any BridgeStore, node: Node, logger: Logger, options: Options = Options(),
        describeLink: @escaping @Sendable (Address) -> String? = { _ in nil },
        resolve: @escaping @Sendable () async throws -> Route,
        discard: @escaping @Sendable (Route) async -> Void = { _ in }
    ) {
        self.name = name
        self.store = store
        self.node = node
        self.options = options
        self.describeLink = describeLink
        self.resolve = resolve
        self.discard = discard
        var logger = logger
        logger[metadataKey: "bridge"] = "\(name)"
        self.logger = logger
        io = DispatchQueue(label: "ockam-edge.bridge.\(name)")
        (events, event) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingNewest(64))
    }

    public var counters: Counters { state.withLock { $0.counters } }
    public var uplinkUp: Bool { state.withLock { $0.uplinkUp } }
    public var lastError: String? { state.withLock { $0.lastError } }
    public var delivery: Delivery { state.withLock { $0.delivery } }
    public var pending: Int { store.pending }

    /// The worker devices send to (register it at the bridge's address).
    public var worker: some Worker { DeviceWorker(bridge: self) }

    /// Starts delivering (and keeps delivering until ``stop()``): starts the worker acknowledgements come back to.
    public func start() throws(NodeError) {
        try node.startWorker(AckWorker(bridge: self), at: ackAddress, options: WorkerOptions(mailboxCapacity: 64))
        // The overdue check's resolution: a quarter of the timeout, between 10 ms and 250 ms.
        let tick = min(max(options.ackTimeout / 4, .milliseconds(10)), .milliseconds(250))
        let started = [
            Task { await self.deliverLoop() },
            Task { [event] in
                while (try? await Task.sleep(for: tick)) != nil { event.yield(.tick) }
            },
        ]
        tasks.withLock { $0 = started }
        event.yield(.stored)
    }

    public func stop() async {
        let running = tasks.withLock { $0 }
        for task in running { task.cancel() }
        event.finish()
        for task in running { await task.value }
        await node.stopWorker(at: ackAddress)
    }

    func answered(_ reply: BridgeReply) {
        switch reply {
        case .ack(let ack): event.yield(.ack(ack))
        case .refused(let refusal): event.yield(.refused(refusal))
        }
    }

    // MARK: Accepting

    /// The device's tag: its secure-channel identifier, else its link, else the first return hop.
    func deviceTag(_ message: LocalMessage) -> String {
        if let identifier = SecureChannelLocalInfo.identifier(of: message) { return identifier.description }
        guard let first = message.returnRoute.addresses.first else { return "unknown" }
        return describeLink(first) ?? "route:\(first)"
    }

    func accept(_ message: LocalMessage, context: WorkerContext) async {
        let record = BridgeRecord(device: deviceTag(message), receivedAt: Self.nowMilliseconds(), payload: message.payload)
        let reply: String
        if message.payload.count > BridgeLimits.maxPayload {
            state.withLock { $0.counters.refused += 1 }
            oversizeLog.log(
                "refused a \(message.payload.count)-byte message from \(record.device): larger than \(BridgeLimits.maxPayload)",
                to: logger)
            reply = "error too large"
        } else {
            do {
                let (sequence, dropped) = try await onIO { try self.store.store(record.encoded()) }
                state.withLock {
                    $0.counters.accepted += 1
                    $0.counters.droppedOldest += UInt64(dropped)
                }
                if dropped > 0 {
                    queueFullLog.log(
                        "queue full: dropped the \(dropped) oldest undelivered message(s) to store \(sequence)", to: logger)
                }
                reply = "ok \(sequence)"
                event.yield(.stored)
            } catch {
                state.withLock { $0.counters.refused += 1 }
                logger.error("could not store a message from \(record.device): \(error)")
                reply = "error store"
            }
        }
        if options.replyToDevices && !message.returnRoute.addresses.isEmpty {
            // One device that does not read its replies must not stall the bridge for the others: dropped, counted.
            try? await context.reply(to: message.returnRoute, payload: BARE.encodeString(reply))
        }
    }

    // MARK: Delivering

    private func deliverLoop() async {
        var route: Route?
        let backoff = Backoff(
            initial: max(options.retryInitial, .milliseconds(1)),
            maximum: max(options.retryMax, options.retryInitial, .milliseconds(1)), jitter: 0.5)
        var attempt = 0
        var reportedDown = false  // log an outage once, not every retry
        var events = self.events.makeAsyncIterator()
        var highestSent: UInt64?  // across runs: an acknowledgement from an earlier run may still be on its way
        while !Task.isCancelled {
            if store.pending == 0 {
                guard await events.next() != nil else { break }
                continue
            }
            if route == nil {
                do {
                    let built = try await resolve()
                    route = built
                    attempt = 0
                    reportedDown = false
                    state.withLock {
                        $0.uplinkUp = true
                        $0.counters.routeBuilds += 1
                    }
                    logger.info("uplink up via \(built); \(store.pending) message(s) waiting")
                } catch {
                    state.withLock {
                        $0.uplinkUp = false
                        $0.lastError = "\(error)"
                    }
                    if !reportedDown {
                        reportedDown = true
                        logger.warning("uplink down (\(error)); queueing, retrying with back-off")
                    }
                    guard (try? await Task.sleep(for: backoff.delay(attempt: attempt))) != nil else { break }
                    attempt += 1
                    continue
                }
            }
            guard let current = route else { continue }
            var run = DeliveryRun(options: options, highestSent: highestSent)
            let failure = await deliver(over: current, run: &run, events: &events)
            highestSent = run.highestSent
            state.withLock { $0.delivery = Delivery(inFlight: 0, window: $0.delivery.window) }
            guard let failure, !Task.isCancelled else { break }
            switch failure {
            case .store(let error):
                logger.error("cannot read the queue: \(error)")
                guard (try? await Task.sleep(for: options.retryMax)) != nil else { return }
            case .uplink(let why):
                state.withLock {
                    $0.counters.deliveryFailures += 1
                    $0.counters.resent += UInt64(run.inFlight.count)
                    $0.uplinkUp = false
                    $0.lastError = why
                }
                logger.warning("uplink down: \(why); queueing, rebuilding the route")
                reportedDown = true
                route = nil
                await discard(current)
                guard (try? await Task.sleep(for: backoff.delay(attempt: attempt))) != nil else { return }
                attempt += 1
            }
        }
    }

    /// The bookkeeping of one delivery run over one route: what is in flight, what was sent last.
    struct DeliveryRun {
        let options: Options
        /// Sent, not yet acknowledged, oldest first (a plain array: at most `window` entries, popped in batches).
        var inFlight: [(sequence: UInt64, bytes: Int)] = []
        var bytesInFlight = 0
        /// The last envelope sent in this run: the next one's ``BridgeEnvelope/after``.
        var lastSent: UInt64?
        /// The highest sequence ever sent, this run or an earlier one: no acknowledgement can be beyond it.
        var highestSent: UInt64?
        /// The last record read from the store (sent, or skipped as corrupt).
        var lastRead: UInt64?
        /// Read from the store, not sent yet.
        var readAhead: [(sequence: UInt64, bytes: [UInt8])] = []
        /// Corrupt records skipped while older ones were in flight: acknowledged in the store once those are.
        var corrupt: [UInt64] = []
        var window = 1
        /// The last time the oldest envelope in flight changed (sent into an empty window, or acknowledged).
        var progress = ContinuousClock.now

        init(options: Options, highestSent: UInt64?) {
            self.options = options
            self.highestSent = highestSent
        }

        var hasRoom: Bool {
            inFlight.count < window && (inFlight.isEmpty || bytesInFlight < options.windowBytes)
        }
    }

    enum RunFailure: Error {
        case uplink(String)
        case store(any Error)
    }

    /// Sends while the window has room and takes acknowledgements as they come, until the uplink fails (nil only when
    /// cancelled). Envelopes are sent in sequence order; each names the one sent before it (`after`), so the ingest
    /// service never stores one past a lost one; an acknowledgement covers everything up to its sequence.
    private func deliver(
        over route: Route, run: inout DeliveryRun, events: inout AsyncStream<Event>.Iterator
    ) async -> RunFailure? {
        while !Task.isCancelled {
            while run.hasRoom {
                if run.readAhead.isEmpty {
                    // Read only now: while the route was down, or while these were in flight, the store may have
                    // dropped its oldest records.
                    let after = run.lastRead
                    let count = max(1, min(64, run.window - run.inFlight.count))
                    do {
                        run.readAhead = try await onIO {
                            if let after { try self.store.oldest(after: after, max: count) }
                            else { try self.store.oldest(max: count) }
                        }
                    } catch {
                        return .store(error)
                    }
                    if run.readAhead.isEmpty { break }
                }
                let (sequence, bytes) = run.readAhead.removeFirst()
                run.lastRead = sequence
                let record: BridgeRecord
                do {
                    record = try BridgeRecord(decoding: bytes)
                } catch {
                    state.withLock { $0.counters.droppedCorrupt += 1 }
                    logger.error("skipping stored message \(sequence): \(error)")
                    run.corrupt.append(sequence)
                    if let failure = await acknowledgeCorrupt(&run) { return failure }
                    continue
                }
                let envelope = BridgeEnvelope(
                    sequence: sequence, bridge: name, record: record, epoch: store.epoch, after: run.lastSent)
                do {
                    try await node.send(
                        LocalMessage(onwardRoute: route, returnRoute: [ackAddress], payload: envelope.encoded()))
                } catch {
                    return .uplink("message \(sequence) not sent (\(error))")
                }
                if run.inFlight.isEmpty { run.progress = .now }
                run.inFlight.append((sequence, record.payload.count))
                run.bytesInFlight += record.payload.count
                run.lastSent = sequence
                run.highestSent = max(run.highestSent ?? sequence, sequence)
                publish(run)
            }
            guard let event = await events.next(isolation: #isolation) else { return nil }
            switch event {
            case .stored:
                break  // the loop above sends it if the window has room
            case .refused(let refusal):
                // Stale (a run that already ended) unless that envelope is in flight now.
                guard run.inFlight.contains(where: { $0.sequence == refusal.sequence }) else { continue }
                return .uplink("the ingest service could not store message \(refusal.sequence)")
            case .tick:
                if !run.inFlight.isEmpty && ContinuousClock.now - run.progress >= options.ackTimeout {
                    return .uplink("message \(run.inFlight[0].sequence) not acknowledged within \(options.ackTimeout)")
                }
            case .ack(let ack):
                if let offered = ack.window {
                    run.window = Int(clamping: min(UInt64(max(1, options.window)), max(1, offered)))
                }
                guard let oldest = run.inFlight.first, ack.sequence >= oldest.sequence else {
                    publish(run)
                    continue  // a late or repeated acknowledgement: nothing new
                }
                // (An acknowledgement from an earlier run that is still on its way is true, and welcome.)
                guard let highest = run.highestSent, ack.sequence <= highest else {
                    return .uplink("acknowledged \(ack.sequence), beyond the last message sent")
                }
                let removed: Int
                do {
                    removed = try await onIO { try self.store.acknowledge(through: ack.sequence) }
                } catch {
                    return .store(error)
                }
                let done = run.inFlight.prefix { $0.sequence <= ack.sequence }
                run.bytesInFlight -= done.reduce(0) { $0 + $1.bytes }
                run.inFlight.removeFirst(done.count)
                run.progress = .now
                // Delivered: what the acknowledgement removed from the store (records of an earlier run included),
                // less the corrupt records it swept away (counted as such when skipped).
                let corrupt = run.corrupt.prefix { $0 <= ack.sequence }.count
                run.corrupt.removeFirst(corrupt)
                state.withLock { $0.counters.delivered += UInt64(max(0, removed - corrupt)) }
                if let failure = await acknowledgeCorrupt(&run) { return failure }
                publish(run)
            }
        }
        return nil
    }

    /// Acknowledges in the store the corrupt records that nothing older in flight holds back.
    private func acknowledgeCorrupt(_ run: inout DeliveryRun) async -> RunFailure? {
        var through: UInt64?
        while let skipped = run.corrupt.first, run.inFlight.first.map({ skipped < $0.sequence }) ?? true {
            through = skipped
            run.corrupt.removeFirst()
        }
        guard let through else { return nil }
        do {
            _ = try await onIO { try self.store.acknowledge(through: through) }  // (counted as corrupt when skipped)
        } catch {
            return .store(error)
        }
        return nil
    }

    private func publish(_ run: DeliveryRun) {
        state.withLock { $0.delivery = Delivery(inFlight: run.inFlight.count, window: run.window) }
    }

    // MARK: Helpers

    /// Runs a blocking store operation on the bridge's own queue.
    private func onIO<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            io.async { continuation.resume(with: Result { try body() }) }
        }
    }


    static func nowMilliseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return UInt64(max(0, spec.tv_sec)) * 1000 + UInt64(max(0, spec.tv_nsec)) / 1_000_000
    }
}

/// Where the ingest service's acknowledgements arrive (replies through the uplink's secure channel only).
struct AckWorker: Worker {
    let bridge: Bridge
    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        bridge.answered(try BridgeReply(decoding: message.payload))
    }
}

/// The device-facing worker: every message it receives is a device message for the bridge.
struct DeviceWorker: Worker {
    let bridge: Bridge
    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        await bridge.accept(message, context: context)
    }
}
