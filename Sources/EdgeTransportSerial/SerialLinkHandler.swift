// The NIO adapter of one open port: bytes ⇄ SerialFrameDecoder/SerialLinkMachine, timers, counters.
import EdgeSync
import NIOCore

/// Counters of one serial port, kept across reopens (exposed by ``SerialTransport/status(port:)``).
public struct SerialCounters: Hashable, Sendable {
    /// Valid frames received (any type).
    public var framesIn: UInt64 = 0
    /// Frames written (any type).
    public var framesOut: UInt64 = 0
    /// Bytes read from the device.
    public var bytesIn: UInt64 = 0
    /// Bytes written to the device (delimiters included).
    public var bytesOut: UInt64 = 0
    /// Routing messages delivered to the node.
    public var messagesIn: UInt64 = 0
    /// Routing messages written.
    public var messagesOut: UInt64 = 0
    /// Frames or messages dropped, by reason.
    public var dropped: [SerialDropReason: UInt64] = [:]
    /// Routing messages refused because they exceed the peer's maximum frame.
    public var rejectedTooLarge: UInt64 = 0
    /// Routing messages refused because the peer would have to reject them: a route or address over its limits once
    /// this node added its hop (as the TCP transport checks; docs/routing.md).
    public var rejectedOverLimit: UInt64 = 0
    public var linkUps: UInt64 = 0
    public var linkDowns: UInt64 = 0
    /// Hellos repeated (connector retries and prompts to a peer that sent data without a session).
    public var helloRetries: UInt64 = 0
    /// Successful opens of the device.
    public var opens: UInt64 = 0
    /// Failed attempts to open the device (absent, busy, misconfigured).
    public var openFailures: UInt64 = 0

    public init() {}

    /// Dropped frames for one reason.
    public func dropped(_ reason: SerialDropReason) -> UInt64 { dropped[reason, default: 0] }

    /// All dropped frames.
    public var droppedTotal: UInt64 { dropped.values.reduce(0, +) }
}

/// What the handler passes up to the port's async loop.
enum SerialInbound: Sendable {
    case linkUp(SerialPeerInfo)
    case linkDown(SerialLinkDownReason)
    case message([UInt8])
}

/// What sender workers write: one routing message.
struct SerialOutbound: Sendable {
    var message: [UInt8]
}

/// Shared, lock-protected counters of a port.
final class SerialCounterStore: Sendable {
    private let storage = EdgeMutex(SerialCounters())
    var value: SerialCounters { storage.withLock { $0 } }
    func update(_ body: (inout SerialCounters) -> Void) { storage.withLock { body(&$0) } }
}

/// Runs the framing and link machine on the channel's event loop.
///
/// Inbound bytes go through ``SerialFrameDecoder`` and ``SerialLinkMachine``; the resulting link events and
/// routing-message bodies go up the pipeline as ``SerialInbound``. Outbound ``SerialOutbound`` messages become DATA
/// frames if the link is up and the message fits the peer's limit (else the write's promise fails). Every frame
/// written is preceded by a 0x00 so that line noise cannot corrupt it. One timer follows the machine's deadline.
final class SerialLinkHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = SerialInbound
    typealias OutboundIn = SerialOutbound
    typealias OutboundOut = ByteBuffer

    private var decoder: SerialFrameDecoder
    private var machine: SerialLinkMachine
    private let counters: SerialCounterStore
    private let port: String
    private var timer: Scheduled<Void>?
    private var timerDeadline: ContinuousClock.Instant?
    private var reportedRetries: UInt64 = 0
    private var started = false

    init(configuration: SerialLinkMachine.Configuration, port: String, counters: SerialCounterStore, seed: UInt64) {
        decoder = SerialFrameDecoder(maxFrameSize: configuration.maxFrameSize)
        machine = SerialLinkMachine(configuration: configuration, seed: seed)
        self.counters = counters
        self.port = port
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        perform(machine.start(now: .now), context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let events = decoder.feed(buffer.readableBytesView)
        var frames: UInt64 = 0
        var drops: [SerialDropReason] = []
        var actions: [SerialLinkMachine.Action] = []
        let now = ContinuousClock.now
        for event in events {
            switch event {
            case .frame(let frame):
                frames += 1
                actions += machine.receive(frame, now: now)
            case .dropped(let reason):
                drops.append(reason)
            }
        }
        counters.update { counters in
            counters.bytesIn += UInt64(buffer.readableBytes)
            counters.framesIn += frames
            for reason in drops { counters.dropped[reason, default: 0] += 1 }
        }
        perform(actions, context: context)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let outbound = unwrapOutboundIn(data)
        let frame: SerialFrame
        do {
            frame = try machine.prepareData(outbound.message, now: .now)
        } catch {
            switch error {
            case .notLinked: promise?.fail(SerialTransportError.linkDown(port: port))
            case .messageTooLarge(let size, let limit):
                counters.update { $0.rejectedTooLarge += 1 }
                promise?.fail(SerialTransportError.messageTooLarge(port: port, size: size, limit: limit))
            }
            return
        }
        let bytes = SerialFrameEncoder.encode(frame, leadingDelimiter: true)
        counters.update { counters in
            counters.framesOut += 1
            counters.messagesOut += 1
            counters.bytesOut += UInt64(bytes.count)
        }
        context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: promise)
        rescheduleTimer(context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The port's async loop reports the link as down with the reason the stream ended (EOF, EIO, ...).
        cancelTimer()
        _ = machine.stop(reason: "closed")
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
    }

    // MARK: Actions and timer

    private func perform(_ actions: [SerialLinkMachine.Action], context: ChannelHandlerContext) {
        var wrote = false
        var firedUp = false
        var drops: [SerialDropReason] = []
        for action in actions {
            switch action {
            case .send(let frame):
                // Control frames are idempotent and repeated by the protocol: when the device does not read (the
                // channel is over its write watermark), drop them instead of queueing without bound (a device
                // flooding us with hellos would otherwise grow our pending writes forever).
                guard context.channel.isWritable else { continue }
                let bytes = SerialFrameEncoder.encode(frame, leadingDelimiter: true)
                counters.update { counters in
                    counters.framesOut += 1
                    counters.bytesOut += UInt64(bytes.count)
                }
                context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
                wrote = true
            case .linkUp(let peer):
                firedUp = true
                context.fireChannelRead(wrapInboundOut(.linkUp(peer)))
            case .linkDown(let reason):
                firedUp = true
                context.fireChannelRead(wrapInboundOut(.linkDown(reason)))
            case .deliver(let body):
                firedUp = true
                context.fireChannelRead(wrapInboundOut(.message(body)))
            case .dropped(let reason):
                drops.append(reason)
            }
        }
        let retries = machine.helloRetries
        let newRetries = retries - reportedRetries
        reportedRetries = retries
        if newRetries > 0 || !drops.isEmpty {
            counters.update { counters in
                counters.helloRetries += newRetries
                for reason in drops { counters.dropped[reason, default: 0] += 1 }
            }
        }
        if wrote { context.flush() }
        if firedUp { context.fireChannelReadComplete() }
        rescheduleTimer(context)
    }

    private func rescheduleTimer(_ context: ChannelHandlerContext) {
        // A timer that fires early is harmless (tick does nothing and reschedules), so only an earlier
        // deadline replaces a pending timer; a write moving the keepalive later costs nothing.
        guard let deadline = machine.nextDeadline else { return }
        if let current = timerDeadline, timer != nil, current <= deadline { return }
        cancelTimer()
        timerDeadline = deadline
        let delay = max(.zero, deadline - .now)
        let (seconds, attoseconds) = delay.components
        let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000 + 1_000_000  // +1 ms: never early
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {
            let (handler, context) = loopBound.value
            handler.timer = nil
            handler.timerDeadline = nil
            handler.perform(handler.machine.tick(now: .now), context: context)
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
    }
}

@available(*, unavailable)
extension SerialLinkHandler: Sendable {}
