// The device kit's top: link session + framing + bridge client over one serial port, driven by polling.

/// The serial port a board provides (a UART driver, or a pty/socket in the host build).
public protocol DevicePort {
    /// The next received byte, if one is waiting (never blocks).
    mutating func readByte() -> UInt8?
    /// Writes bytes (may block until the UART takes them).
    mutating func write(_ bytes: UnsafeBufferPointer<UInt8>)
}

/// Counters a firmware can show or report (all wrap).
public struct DeviceCounters: Equatable, Sendable {
    public var linkUps: UInt32 = 0
    public var linkDowns: UInt32 = 0
    public var framesIn: UInt32 = 0
    public var framesOut: UInt32 = 0
    public var bytesOut: UInt32 = 0
    public var dropped: UInt32 = 0
    public var lastDrop: LinkDropReason?
    public var messagesIgnored: UInt32 = 0
    public var lastSequence: UInt64 = 0

    public init() {}
}

/// One device on one serial link: call ``poll(now:)`` often (every millisecond or on every UART interrupt) and
/// ``enqueue(_:)`` readings; the node handshakes, keeps the link alive, sends readings to the gateway's bridge and
/// drops them once acknowledged.
///
/// ### Invariants
/// - All memory is allocated in `init`: two frame buffers of `maxFrameSize` bytes plus the bridge client's buffer.
public struct DeviceNode<Port: DevicePort> {
    public var port: Port
    public private(set) var session: LinkSession
    public private(set) var bridge: BridgeClient
    public private(set) var counters = DeviceCounters()
    private var receiver: FrameReceiver
    private let sender: FrameSender
    private var started = false
    /// Called with each acknowledged reading's number and bridge sequence (for a console; must not allocate).
    public var onAcknowledged: ((UInt32, UInt64) -> Void)?
    /// Called on each link up (true) and down (false).
    public var onLink: ((Bool) -> Void)?

    public init(port: Port, session: LinkSession.Configuration, bridge: BridgeClient.Configuration, seed: UInt64) {
        self.port = port
        self.session = LinkSession(configuration: session, seed: seed)
        self.bridge = BridgeClient(configuration: bridge)
        receiver = FrameReceiver(maxFrameSize: Int(session.maxFrameSize))
        sender = FrameSender(maxFrameSize: Int(session.maxFrameSize))
    }

    /// Buffers a reading for the bridge; nil if the buffer is full (try again later) or the payload too long.
    public mutating func enqueue(_ payload: UnsafeBufferPointer<UInt8>) -> UInt32? { bridge.enqueue(payload) }

    /// Reads what arrived, runs the session's timers and sends what is due. Returns the number of bytes read.
    @discardableResult
    public mutating func poll(now: UInt32) -> Int {
        if !started {
            started = true
            perform(session.start(now: now), now: now)
        }
        var read = 0
        while let byte = port.readByte() {
            read += 1
            guard let frame = receiver.feed(byte) else { continue }
            counters.framesIn &+= 1
            switch frame {
            case .hello(let hello): perform(session.receiveHello(hello, now: now), now: now)
            case .helloAck(let hello): perform(session.receiveHelloAck(hello, now: now), now: now)
            case .keepalive: perform(session.receiveKeepalive(now: now), now: now)
            case .data: perform(session.receiveData(now: now), now: now)
            case .dropped(let reason): count(reason)
            }
        }
        perform(session.tick(now: now), now: now)
        sendDueReadings(now: now)
        return read
    }

    private mutating func count(_ reason: LinkDropReason) {
        counters.dropped &+= 1
        counters.lastDrop = reason
    }

    private mutating func perform(_ actions: LinkActions, now: UInt32) {
        if actions.linkDown {
            counters.linkDowns &+= 1
            onLink?(false)
        }
        if actions.linkUp {
            counters.linkUps &+= 1
            bridge.linkRestarted()
            onLink?(true)
        }
        if let frame = actions.send,
            let bytes = sender.encode(frame, ourMaxFrameSize: session.configuration.maxFrameSize,
                                      keepaliveMilliseconds: session.configuration.keepaliveMilliseconds)
        {
            transmit(bytes)
        }
        if actions.deliver { deliver() }
        if let reason = actions.dropped { count(reason) }
    }

    private mutating func deliver() {
        let body = receiver.body
        guard let message = RoutingCodec.decode(body) else {
            count(.badMessage)
            return
        }
        guard let destination = message.destination else { return }  // a heartbeat
        let payload = UnsafeBufferPointer(rebasing: body[message.payloadStart..<(message.payloadStart + message.payloadCount)])
        switch bridge.handle(destination: destination, payload: payload, in: body) {
        case .acknowledged(let id, let sequence):
            counters.lastSequence = sequence
            onAcknowledged?(id, sequence)
        case .duplicate, .refused:
            break
        case .notForUs:
            counters.messagesIgnored &+= 1
        }
    }

    private mutating func sendDueReadings(now: UInt32) {
        guard session.isLinked else { return }
        while true {
            var writer = ByteWriter(sender.bodyBuffer)
            guard bridge.writeNextDue(now: now, into: &writer) else { return }
            guard !writer.overflowed, session.prepareData(frameLength: writer.count + SerialWire.overhead, now: now),
                let bytes = sender.encode(type: SerialWire.dataType, bodyLength: writer.count)
            else { return }  // too large for this link: stays in the buffer (the configuration is wrong)
            transmit(bytes)
        }
    }

    private mutating func transmit(_ bytes: UnsafeBufferPointer<UInt8>) {
        counters.framesOut &+= 1
        counters.bytesOut &+= UInt32(truncatingIfNeeded: bytes.count)
        port.write(bytes)
    }
}
