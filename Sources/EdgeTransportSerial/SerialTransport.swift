// EdgeTransportSerial: Ockam routing over UART/USB-serial links — COBS + CRC-32C frames, hello handshake, hot-plug.
// Long (~670 lines): port supervision (open, reopen with backoff, sessions) and the sender share per-port state;
// the link registry and sender are the parts the transports' shared link skeleton is to take over.
import EdgeSync
import EdgeNode
import EdgeRouting
import EdgeWire
import Logging
import NIOCore
import NIOPosix
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

extension TransportType {
    /// Serial links: `64#<port name>`. An ockam-edge extension: Ockam assigns 0–5 (local, TCP, UDP, WebSocket,
    /// BLE, UDS); 64 is unassigned there. Only ockam-edge nodes understand it (docs/serial-framing.md §7).
    public static let serial = TransportType(64)
}

extension Address {
    /// The stable route hop to the device on a serial port: `64#<port name>`.
    public static func serial(_ portName: String) -> Address { Address(.serial, portName) }
}

/// Options of the serial transport (per transport; per-port settings are in ``SerialConfiguration``).
public struct SerialTransportOptions: Sendable {
    /// First interval between a connector's hellos (doubling up to ``helloIntervalMax``).
    public var helloInterval: Duration = .milliseconds(250)
    public var helloIntervalMax: Duration = .seconds(4)
    /// Send a KEEPALIVE after this long without sending (announced in the hello; nil: never).
    public var keepaliveInterval: Duration? = .seconds(10)
    /// The link goes down after this many of the peer's keepalive intervals without a valid frame.
    public var peerTimeoutMultiplier = 3
    /// First delay before reopening a port that closed or could not be opened (doubling, with jitter).
    public var reopenDelay: Duration = .milliseconds(250)
    /// Cap of the reopen delay.
    public var reopenDelayMax: Duration = .seconds(10)
    /// Fraction of each reopen delay that is randomised away (0.4: between 60 % and all of it; ``Backoff``).
    public var reopenJitter: Double = 0.4
    /// How long resolving `64#<port>` waits for a link that is down before failing.
    public var resolveTimeout: Duration = .seconds(5)
    /// Limits for decoding routing messages from the device.
    public var routingLimits: RoutingLimits = .default
    /// Events buffered per ``SerialTransport/events()`` subscriber (oldest dropped beyond this).
    public var eventBufferSize = 256

    public init() {}
}

/// A link coming up or going down on a port. A later session layer re-creates secure channels on `.up`.
public struct SerialLinkEvent: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// A session is established; messages to ``SerialLinkEvent/senderAddress`` (or `64#<port>`) go to the peer.
        case up(SerialPeerInfo)
        /// The session ended; ``SerialLinkEvent/senderAddress`` no longer exists.
        case down(SerialLinkDownReason)
    }

    /// The port's name (`64#<port>`).
    public var port: String
    /// The link's sender worker address (new for every session).
    public var senderAddress: Address
    public var kind: Kind

    public var isUp: Bool {
        if case .up = kind { return true }
        return false
    }

    public var description: String {
        switch kind {
        case .up(let peer):
            return "serial link up on \(port): sender \(senderAddress), peer max frame \(peer.maxFrameSize)"
        case .down(let reason): return "serial link down on \(port) (sender \(senderAddress)): \(reason)"
        }
    }
}

/// Where a port is in its life.
public enum SerialPortPhase: String, Hashable, Sendable {
    /// The device is absent or could not be opened; retrying with backoff.
    case waitingForDevice = "waiting_for_device"
    /// The device is open; no link session yet.
    case open
    /// A link session is established.
    case linked
    /// Closed by ``SerialTransport/close(port:)`` or shutdown.
    case closed
}

/// A port as `status` shows it.
public struct SerialPortStatus: Hashable, Sendable {
    public var configuration: SerialConfiguration
    public var phase: SerialPortPhase
    /// The current link's sender address (what `64#<name>` resolves to).
    public var senderAddress: Address?
    public var peer: SerialPeerInfo?
    /// The last open or I/O error, for display.
    public var lastError: String?
    public var counters: SerialCounters

    public var name: String { configuration.name }
}

/// The serial transport: opens ports, keeps a link per port through unplug/replug, and resolves `64#<port>`.
///
/// Per port, a supervisor task opens the device (exclusively, raw mode), runs the link handshake, and when the
/// device disappears (EOF, EIO, ENXIO) reports the link down, logs once, and reopens it with capped exponential
/// backoff and jitter until it is back. Each link session gets a sender worker at a fresh random address that pops
/// itself from the onward route and writes one DATA frame per message; received DATA frames are decoded as
/// routing messages, the sender address is prepended to their return route, and they go to
/// `Node.deliverFromTransport` (heartbeats with an empty onward route are dropped by the node). `64#<port>`
/// always resolves to the current session's sender address. Wire format: docs/serial-framing.md.
public final class SerialTransport: TransportResolver, Sendable {
    public var transportType: TransportType { .serial }

    public let node: Node
    public let group: any EventLoopGroup
    public let options: SerialTransportOptions
    let logger: Logger

    private struct State: ~Copyable {
        var ports: [String: SerialPortRecord] = [:]
        var tasks: [String: Task<Void, Never>] = [:]
        var subscribers: [UInt64: AsyncStream<SerialLinkEvent>.Continuation] = [:]
        var nextSubscriber: UInt64 = 0
        var closed = false
    }

    private let state = EdgeMutex(State())

    public init(
        node: Node, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        options: SerialTransportOptions = SerialTransportOptions(), logger: Logger? = nil
    ) {
        self.node = node
        self.group = group
        self.options = options
        var logger = logger ?? node.logger
        logger[metadataKey: "transport"] = "serial"
        self.logger = logger
        node.registerTransport(self)
    }

    // MARK: Ports

    /// Starts serving a port: opens it now or, if the device is absent or busy, whenever it appears.
    ///
    /// - Parameters:
    ///   - configuration: device, line settings, name, role (listener or connector) and maximum frame size.
    ///   - requireDevice: open the device before returning and throw if that fails (later losses are still
    ///     recovered); otherwise a missing device is logged once and waited for.
    /// - Returns: the stable route hop to the device, `64#<name>`.
    /// - Throws: ``SerialConfigurationError`` for an invalid configuration, ``SerialTransportError/duplicatePort(_:)``,
    ///   ``SerialTransportError/shutdown``, and with `requireDevice` any ``SerialPort/open(_:)`` error.
    @discardableResult
    public func open(_ configuration: SerialConfiguration, requireDevice: Bool = false) throws -> Address {
        try configuration.validate()
        let first: SystemPackage.FileDescriptor? = requireDevice ? try SerialPort.open(configuration) : nil
        let record = SerialPortRecord(configuration: configuration)
        let error: SerialTransportError? = state.withLock { state in
            if state.closed { return .shutdown }
            if state.ports[configuration.name] != nil { return .duplicatePort(configuration.name) }
            state.ports[configuration.name] = record
            state.tasks[configuration.name] = Task { await self.supervise(record, first: first) }
            return nil
        }
        if let error {
            if let first { SerialPort.close(first) }
            throw error
        }
        return .serial(configuration.name)
    }

    /// Stops serving a port: ends its link, closes the device and waits for its task.
    public func close(port name: String) async {
        let (record, task) = state.withLock { state in
            (state.ports.removeValue(forKey: name), state.tasks.removeValue(forKey: name))
        }
        guard let record else { return }
        await record.close()
        task?.cancel()
        await task?.value
    }

    /// Closes every port, waits for their tasks, and ends every event stream.
    public func shutdown() async {
        let (records, tasks, subscribers) = state.withLock { state in
            state.closed = true
            defer {
                state.ports.removeAll()
                state.tasks.removeAll()
                state.subscribers.removeAll()
            }
            return (Array(state.ports.values), Array(state.tasks.values), Array(state.subscribers.values))
        }
        for record in records { await record.close() }
        for task in tasks {
            task.cancel()
            await task.value
        }
        for subscriber in subscribers { subscriber.finish() }
    }

    /// Status of every port, sorted by name.
    public var ports: [SerialPortStatus] {
        state.withLock { Array($0.ports.values) }.map(\.status).sorted { $0.name < $1.name }
    }

    /// Status of one port.
    public func status(port name: String) -> SerialPortStatus? {
        state.withLock { $0.ports[name] }?.status
    }

    // MARK: Events

    /// A stream of link up/down events of every port, from now on. Each call makes a new subscriber; the
    /// stream ends at ``shutdown()``. Buffers ``SerialTransportOptions/eventBufferSize`` events, newest kept.
    public func events() -> AsyncStream<SerialLinkEvent> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: SerialLinkEvent.self, bufferingPolicy: .bufferingNewest(max(1, options.eventBufferSize)))
        let id: UInt64? = state.withLock { state in
            if state.closed { return nil }
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            state.subscribers[id] = continuation
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    private func emit(_ event: SerialLinkEvent) {
        let subscribers = state.withLock { Array($0.subscribers.values) }
        for subscriber in subscribers { subscriber.yield(event) }
    }

    // MARK: Resolving

    /// Resolves `64#<port name>` (or `64#<configured path>`) to the current link's sender address, waiting up
    /// to ``SerialTransportOptions/resolveTimeout`` for a link that is down.
    public func resolve(_ address: Address) async throws -> Address {
        guard address.transportType == .serial else {
            throw SerialTransportError.notASerialAddress(address.description)
        }
        let key = address.valueString
        let record = state.withLock { state in
            state.ports[key] ?? state.ports.values.first { $0.configuration.path.string == key }
        }
        guard let record else { throw SerialTransportError.unknownPort(key) }
        return try await record.waitForSender(timeout: options.resolveTimeout)
    }

    /// Waits until the port's link is up and returns its sender address.
    /// - Throws: ``SerialTransportError/linkDown(port:)`` after `timeout`, ``SerialTransportError/unknownPort(_:)``.
    public func waitForLink(port name: String, timeout: Duration) async throws -> Address {
        guard let record = state.withLock({ $0.ports[name] }) else { throw SerialTransportError.unknownPort(name) }
        return try await record.waitForSender(timeout: timeout)
    }

    // MARK: Supervision

    private func supervise(_ record: SerialPortRecord, first: SystemPackage.FileDescriptor?) async {
        let configuration = record.configuration
        var logger = self.logger
        logger[metadataKey: "port"] = "\(configuration.name)"
        let backoff = Backoff(
            initial: max(options.reopenDelay, .milliseconds(1)),
            maximum: max(options.reopenDelayMax, options.reopenDelay, .milliseconds(1)),
            jitter: min(max(options.reopenJitter, 0), 1))
        var attempt = 0
        var pending = first
        var quiet = false  // the device's absence was already logged
        while !record.isClosed && !Task.isCancelled {
            let fd: SystemPackage.FileDescriptor
            if let opened = pending {
                fd = opened
                pending = nil
            } else {
                do {
                    fd = try SerialPort.open(configuration)
                } catch {
                    record.counters.update { $0.openFailures += 1 }
                    record.set(phase: .waitingForDevice, error: "\(error)")
                    if quiet {
                        logger.debug("reopen of \(configuration.path) failed: \(error)")
                    } else {
                        logger.warning("\(error); retrying until the device is available")
                        quiet = true
                    }
                    if !(await sleep(backoff.delay(attempt: attempt))) { break }
                    attempt += 1
                    continue
                }
            }
            record.counters.update { $0.opens += 1 }
            record.set(phase: .open, error: nil)
            let summary = "\(configuration.lineSummary), \(configuration.role), max frame \(configuration.maxFrameSize)"
            logger.info("opened \(configuration.path) (\(summary))")
            quiet = false
            let (linked, reason) = await runSession(record, fd: fd, logger: logger)
            if linked { attempt = 0 }
            if record.isClosed || Task.isCancelled { break }
            record.set(phase: .waitingForDevice, error: reason)
            logger.warning("\(configuration.path) closed (\(reason)); reopening when the device is back")
            quiet = true
            if !(await sleep(backoff.delay(attempt: attempt))) { break }
            attempt += 1
        }
        if let pending { SerialPort.close(pending) }
        record.set(phase: .closed, error: nil)
        record.failWaiters(SerialTransportError.linkDown(port: configuration.name))
    }

    /// Sleeps unless cancelled; false if cancelled.
    private func sleep(_ duration: Duration) async -> Bool {
        do {
            try await Task.sleep(for: duration)
            return true
        } catch {
            return false
        }
    }

    /// Runs one open of the device until it closes. Returns whether a link came up and why the session ended.
    private func runSession(
        _ record: SerialPortRecord, fd: SystemPackage.FileDescriptor, logger: Logger
    ) async -> (Bool, String) {
        let configuration = record.configuration
        let name = configuration.name
        let machineConfiguration = SerialLinkMachine.Configuration(
            role: configuration.role, maxFrameSize: configuration.maxFrameSize, helloInterval: options.helloInterval,
            helloIntervalMax: options.helloIntervalMax,
            keepaliveInterval: configuration.keepalive.map { $0 == .zero ? nil : $0 } ?? options.keepaliveInterval,
            peerTimeoutMultiplier: options.peerTimeoutMultiplier)
        var generator = SystemRandomNumberGenerator()
        let seed = generator.next()
        let counters = record.counters
        // The channel writes to a duplicate of the descriptor. Made here, not by `takingOwnershipOfDescriptor(
        // inputOutput:)`, whose `dup` is a `try!`: with the descriptor table full (EMFILE; peers' connections count
        // towards it) a replugged device would trap the process instead of failing this session, which is retried.
        let output = fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 0)
        guard output >= 0 else {
            let error = Errno(rawValue: errno)
            SerialPort.close(fd)
            return (false, "cannot attach the port to the event loop: dup: \(error)")
        }
        let channel: NIOAsyncChannel<SerialInbound, SerialOutbound>
        // NIO hands the descriptors back if the channel cannot be created, but closes them itself once it exists (the
        // initializer ran): closing them again would close whatever reused the numbers.
        let handedOver = OnceFlag()
        do {
            channel = try await NIOPipeBootstrap(group: group)
                .takingOwnershipOfDescriptors(input: fd.rawValue, output: output) { channel in
                    handedOver.set()
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            SerialLinkHandler(
                                configuration: machineConfiguration, port: name, counters: counters, seed: seed))
                        return try NIOAsyncChannel<SerialInbound, SerialOutbound>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            if !handedOver.isSet {
                SerialPort.close(fd)
                _ = Glibc.close(output)
            }
            return (false, "cannot attach the port to the event loop: \(error)")
        }
        guard record.attach(channel.channel) else {
            try? await channel.executeThenClose { _, _ in }  // finishes the writer: dropping it unfinished traps
            return (false, "closed")
        }

        var sender: Address?
        var linked = false
        var reason = "device disappeared (end of file)"
        let limits = options.routingLimits
        do {
            try await channel.executeThenClose { inbound, _ in
                for try await event in inbound {
                    switch event {
                    case .linkUp(let peer):
                        if let old = sender {
                            self.linkDown(record, sender: old, reason: .peerRestarted, logger: logger)
                        }
                        sender = nil
                        let address = Address.random()
                        let worker = SerialSenderWorker(
                            channel: channel.channel, port: name, maxMessageSize: peer.maxMessageSize,
                            counters: counters)
                        do {
                            try self.node.startWorker(worker, at: address, options: WorkerOptions(reach: .linkSender))
                        } catch {
                            // Only a node that is shutting down refuses a fresh random address: stop serving the port.
                            logger.error("cannot start the link's sender worker: \(error)")
                            record.markClosed()
                            throw error
                        }
                        sender = address
                        linked = true
                        record.linkUp(sender: address, peer: peer)
                        let keepalive = peer.keepaliveInterval.map { "\($0)" } ?? "off"
                        let peerLimits = "max frame \(peer.maxFrameSize), keepalive \(keepalive)"
                        if let suppressed = record.linkLog.admit() {
                            logger.info(
                                "link up: sender \(address), peer framing v\(peer.version), \(peerLimits)\(LogRateLimiter.note(suppressed))")
                        } else {
                            logger.debug("link up: sender \(address), peer framing v\(peer.version), \(peerLimits)")
                        }
                        self.emit(SerialLinkEvent(port: name, senderAddress: address, kind: .up(peer)))
                    case .linkDown(let why):
                        if let old = sender { self.linkDown(record, sender: old, reason: why, logger: logger) }
                        sender = nil
                    case .message(let bytes):
                        guard let sender else {
                            counters.update { $0.dropped[.notLinked, default: 0] += 1 }
                            continue
                        }
                        let decoded: RoutingMessage
                        do {
                            decoded = try RoutingMessage(decoding: bytes, limits: limits)
                        } catch {
                            counters.update { $0.dropped[.badMessage, default: 0] += 1 }
                            logger.debug("dropped a DATA frame that is not a routing message: \(error)")
                            continue
                        }
                        counters.update { $0.messagesIn += 1 }
                        var returnRoute = decoded.returnRoute
                        returnRoute.prepend(sender)
                        await self.node.deliverFromTransport(
                            LocalMessage(
                                onwardRoute: decoded.onwardRoute, returnRoute: returnRoute, payload: decoded.payload),
                            link: sender)
                    }
                }
            }
        } catch {
            reason = Self.describe(error)
        }
        if record.isClosed { reason = "closed" }
        if let old = sender { linkDown(record, sender: old, reason: .portClosed(reason), logger: logger) }
        record.detach()
        return (linked, reason)
    }

    private func linkDown(_ record: SerialPortRecord, sender: Address, reason: SerialLinkDownReason, logger: Logger) {
        node.stopWorkerNoWait(at: sender)
        record.linkDown()
        if let suppressed = record.linkLog.admit() {
            logger.info("link down: \(reason)\(LogRateLimiter.note(suppressed))")
        } else {
            logger.debug("link down: \(reason)")
        }
        emit(SerialLinkEvent(port: record.configuration.name, senderAddress: sender, kind: .down(reason)))
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? IOError {
            switch error.errnoCode {
            case EIO: return "device disappeared (I/O error)"
            case ENXIO, ENODEV: return "device disappeared (\(Errno(rawValue: error.errnoCode)))"
            default: return "\(Errno(rawValue: error.errnoCode))"
            }
        }
        return "\(error)"
    }
}

/// The per-link sender worker: pops itself from onward and writes one DATA frame per message, one at a time.
struct SerialSenderWorker: Worker {
    let channel: any Channel
    let port: String
    let maxMessageSize: Int
    let counters: SerialCounterStore

    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        var onward = message.onwardRoute
        onward.popFront()
        let wire = RoutingMessage(onwardRoute: onward, returnRoute: message.returnRoute, payload: message.payload)
        let bytes = wire.encode()
        guard bytes.count <= maxMessageSize else {
            counters.update { $0.rejectedTooLarge += 1 }
            throw SerialTransportError.messageTooLarge(port: port, size: bytes.count, limit: maxMessageSize)
        }
        // Never send what the peer's decoder must drop (route length, address size).
        do {
            try wire.checkLimits(RoutingLimits(maxMessageSize: maxMessageSize), encodedSize: bytes.count)
        } catch {
            counters.update { $0.rejectedOverLimit += 1 }
            throw error
        }
        // Backpressure: wait until the frame is in the tty's buffer before taking the next message, so at most one
        // message per link waits in NIO and a slow line slows the senders (via this worker's mailbox). Checking
        // `isWritable` instead would race with the event loop and let a fast producer queue without bound.
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(SerialOutbound(message: bytes), promise: promise)
        try await promise.futureResult.get()
    }
}

// MARK: - Port record

/// Shared state of one port: phase, current link, waiters for a link, counters.
final class SerialPortRecord: Sendable {
    let configuration: SerialConfiguration
    let counters = SerialCounterStore()
    /// Link up/down lines: a device can send HELLOs as fast as the line allows, each a new session.
    let linkLog = LogRateLimiter()

    private struct State {
        var phase: SerialPortPhase = .waitingForDevice
        var sender: Address?
        var peer: SerialPeerInfo?
        var lastError: String?
        var channel: (any Channel)?
        var waiters: [UInt64: LinkWaiter] = [:]
        var nextWaiter: UInt64 = 0
        var closed = false
    }

    private let state = EdgeMutex(State())

    init(configuration: SerialConfiguration) { self.configuration = configuration }

    var isClosed: Bool { state.withLock { $0.closed } }

    var status: SerialPortStatus {
        let snapshot = state.withLock { ($0.phase, $0.sender, $0.peer, $0.lastError) }
        return SerialPortStatus(
            configuration: configuration, phase: snapshot.0, senderAddress: snapshot.1, peer: snapshot.2,
            lastError: snapshot.3, counters: counters.value)
    }

    func set(phase: SerialPortPhase, error: String?) {
        state.withLock { state in
            state.phase = state.closed ? .closed : phase
            if let error { state.lastError = error }
        }
    }

    /// Records the open channel; false (caller closes it) if the port was closed meanwhile.
    func attach(_ channel: any Channel) -> Bool {
        state.withLock { state in
            if state.closed { return false }
            state.channel = channel
            return true
        }
    }

    func detach() { state.withLock { $0.channel = nil } }

    func linkUp(sender: Address, peer: SerialPeerInfo) {
        counters.update { $0.linkUps += 1 }
        let waiters: [LinkWaiter] = state.withLock { state in
            state.sender = sender
            state.peer = peer
            state.phase = .linked
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.finish(.success(sender)) }
    }

    func linkDown() {
        counters.update { $0.linkDowns += 1 }
        state.withLock { state in
            state.sender = nil
            state.peer = nil
            if state.phase == .linked { state.phase = .open }
        }
    }

    /// Stops the supervisor after the current session (the node refused new workers).
    func markClosed() {
        state.withLock { $0.closed = true }
    }

    func close() async {
        let channel: (any Channel)? = state.withLock { state in
            state.closed = true
            state.phase = .closed
            return state.channel
        }
        if let channel { try? await channel.close() }
        failWaiters(SerialTransportError.linkDown(port: configuration.name))
    }

    func failWaiters(_ error: SerialTransportError) {
        let waiters = state.withLock { state in
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.finish(.failure(error)) }
    }

    /// The current sender address, waiting up to `timeout` for a link.
    func waitForSender(timeout: Duration) async throws -> Address {
        let waiter = LinkWaiter()
        let registered: Result<Address, SerialTransportError>? = state.withLock { state in
            if let sender = state.sender { return .success(sender) }
            if state.closed { return .failure(.linkDown(port: configuration.name)) }
            let id = state.nextWaiter
            state.nextWaiter += 1
            state.waiters[id] = waiter
            waiter.id = id
            return nil
        }
        if let registered { return try registered.get() }
        let name = configuration.name
        let timeoutTask = Task { [self] in
            try? await Task.sleep(for: timeout)
            if let id = waiter.id { _ = self.state.withLock { $0.waiters.removeValue(forKey: id) } }
            waiter.finish(.failure(.linkDown(port: name)))
        }
        defer { timeoutTask.cancel() }
        return try await withTaskCancellationHandler {
            try await waiter.wait()
        } onCancel: {
            waiter.finish(.failure(.linkDown(port: name)))
        }
    }
}

/// One resolver waiting for a port's link; finished exactly once (link up, timeout, close or cancellation).
final class LinkWaiter: Sendable {
    private struct State {
        var result: Result<Address, SerialTransportError>?
        var continuation: CheckedContinuation<Address, any Error>?
        var id: UInt64?
    }

    private let state = EdgeMutex(State())

    var id: UInt64? {
        get { state.withLock { $0.id } }
        set { state.withLock { $0.id = newValue } }
    }

    func finish(_ result: Result<Address, SerialTransportError>) {
        let continuation: CheckedContinuation<Address, any Error>? = state.withLock { state in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(with: result.mapError { $0 as any Error })
    }

    func wait() async throws -> Address {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<Address, SerialTransportError>? = state.withLock { state in
                if let result = state.result { return result }
                state.continuation = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready.mapError { $0 as any Error }) }
        }
    }
}

