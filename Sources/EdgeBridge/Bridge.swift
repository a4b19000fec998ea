// The bridge runtime: a device-facing worker that accepts messages into the store, and an uplink loop that delivers
// them, oldest first, to the ingest service at the end of a (secure-channel) route, one acknowledged message at a time.
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
    /// Everything up to and including `sequence` was delivered.
    func acknowledge(through sequence: UInt64) throws
    /// Records waiting for delivery.
    var pending: Int { get }
    /// The store's ``QueueEpoch``, sent with every envelope; nil for a store without one (sent without).
    var epoch: [UInt8]? { get }
}

extension BridgeStore {
    public var epoch: [UInt8]? { nil }
}

/// A gateway bridge: device messages in, acknowledged delivery out. See docs/bridge.md.
public final class Bridge: Sendable {
    public struct Options: Sendable {
        /// How long to wait for the ingest service's acknowledgement before the route is considered broken.
        public var ackTimeout: Duration = .seconds(5)
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
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    private let task = EdgeMutex<Task<Void, Never>?>(nil)
    /// Refusals of oversized messages, and drops from a full store: a device decides how many messages it sends.
    let oversizeLog = LogRateLimiter()
    let queueFullLog = LogRateLimiter()

    struct State {
        var counters = Counters()
        var uplinkUp = false
        var lastError: String?
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
        (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    public var counters: Counters { state.withLock { $0.counters } }
    public var uplinkUp: Bool { state.withLock { $0.uplinkUp } }
    public var lastError: String? { state.withLock { $0.lastError } }
    public var pending: Int { store.pending }

    /// The worker devices send to (register it at the bridge's address).
    public var worker: some Worker { DeviceWorker(bridge: self) }

    /// Starts delivering (and keeps delivering until ``stop()``).
    public func start() {
        let t = Task { await self.deliverLoop() }
        task.withLock { $0 = t }
        wake.yield()
    }

    public func stop() async {
        let t = task.withLock { $0 }
        t?.cancel()
        wake.finish()
        await t?.value
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
                wake.yield()
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
        var wokenBy = wakes.makeAsyncIterator()
        while !Task.isCancelled {
            if store.pending == 0 {
                guard await wokenBy.next() != nil else { break }
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
            // Read the batch only now: while the route was down the store may have dropped its oldest records.
            let batch: [(sequence: UInt64, bytes: [UInt8])]
            do {
                batch = try await onIO { try self.store.oldest(max: 32) }
            } catch {
                logger.error("cannot read the queue: \(error)")
                guard (try? await Task.sleep(for: options.retryMax)) != nil else { break }
                continue
            }
            for (sequence, bytes) in batch {
                if Task.isCancelled { break }
                let record: BridgeRecord
                do {
                    record = try BridgeRecord(decoding: bytes)
                } catch {
                    state.withLock { $0.counters.droppedCorrupt += 1 }
                    logger.error("skipping stored message \(sequence): \(error)")
                    try? await onIO { try self.store.acknowledge(through: sequence) }
                    continue
                }
                let envelope = BridgeEnvelope(sequence: sequence, bridge: name, record: record, epoch: store.epoch)
                do {
                    let reply = try await node.request(to: current, payload: envelope.encoded(), timeout: options.ackTimeout)
                    let ack = try BridgeAck(decoding: reply.payload)
                    guard ack.sequence >= sequence else {
                        throw BridgeError.malformed("acknowledged \(ack.sequence), expected \(sequence)")
                    }
                    try await onIO { try self.store.acknowledge(through: sequence) }
                    state.withLock { $0.counters.delivered += 1 }
                } catch {
                    state.withLock {
                        $0.counters.deliveryFailures += 1
                        $0.uplinkUp = false
                        $0.lastError = "\(error)"
                    }
                    logger.warning("uplink down: message \(sequence) not acknowledged (\(error)); queueing, rebuilding the route")
                    reportedDown = true
                    route = nil
                    await discard(current)
                    guard (try? await Task.sleep(for: backoff.delay(attempt: attempt))) != nil else { return }
                    attempt += 1
                    break
                }
            }
        }
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

/// The device-facing worker: every message it receives is a device message for the bridge.
struct DeviceWorker: Worker {
    let bridge: Bridge
    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        await bridge.accept(message, context: context)
    }
}
