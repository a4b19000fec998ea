// The link-session state machine: hello handshake, keepalive and peer timeout, as a pure value (no I/O, no clock).
import EdgeSync

/// Which side of a serial link this is.
public enum SerialLinkRole: String, Hashable, Sendable, CustomStringConvertible {
    /// Gateway side: announces itself once when the port opens, then waits for the peer's hello.
    case listener = "listen"
    /// Device side: sends hello when the port opens and repeats it (with backoff) until answered.
    case connector = "connect"

    public var description: String { rawValue }
}

/// What a link learned about its peer from the hello exchange.
public struct SerialPeerInfo: Hashable, Sendable {
    /// The framing version both sides use (the lower of the two announced).
    public var version: UInt8
    /// The largest decoded frame the peer accepts (capped at 1 MiB); DATA frames never exceed it.
    public var maxFrameSize: Int
    /// How often the peer promised to send when idle (nil: never).
    public var keepaliveInterval: Duration?
    /// The peer's session nonce.
    public var nonce: UInt32

    public init(version: UInt8, maxFrameSize: Int, keepaliveInterval: Duration?, nonce: UInt32) {
        self.version = version
        self.maxFrameSize = maxFrameSize
        self.keepaliveInterval = keepaliveInterval
        self.nonce = nonce
    }

    /// The largest routing message that fits in one DATA frame to this peer.
    public var maxMessageSize: Int { maxFrameSize - SerialFraming.overhead }
}

/// Why a link session ended.
public enum SerialLinkDownReason: Hashable, Sendable, CustomStringConvertible {
    /// The peer sent a hello with a new nonce (it restarted or lost the session).
    case peerRestarted
    /// Nothing valid arrived for `peerTimeoutMultiplier ×` the peer's keepalive interval.
    case peerSilent
    /// The port closed (device unplugged, read error, EOF) or was closed by us.
    case portClosed(String)

    public var description: String {
        switch self {
        case .peerRestarted: return "peer restarted the session"
        case .peerSilent: return "peer silent (keepalive timeout)"
        case .portClosed(let why): return "port closed: \(why)"
        }
    }
}

/// Errors of the link machine when asked to send.
public enum SerialLinkError: Error, Hashable, Sendable, CustomStringConvertible {
    /// No session is established.
    case notLinked
    /// The routing message is larger than the peer's maximum frame allows.
    case messageTooLarge(size: Int, limit: Int)

    public var description: String {
        switch self {
        case .notLinked: return "serial link is down"
        case .messageTooLarge(let size, let limit):
            return "routing message of \(size) bytes exceeds the serial peer's limit of \(limit) bytes per frame"
        }
    }
}

/// The link layer above the framing (docs/serial-framing.md §5): hello handshake, session nonces, keepalives.
///
/// Pure and synchronous, in the style of swift-nio-ssh's state machines: the caller feeds it frames and clock
/// ticks with the current time and performs the returned actions in order. It never does I/O.
///
/// ### Invariants
/// - `deliver` is only returned while linked.
/// - Every `linkUp` is followed by exactly one `linkDown` before the next `linkUp`.
/// - ``prepareData(_:now:)`` never returns a frame longer than the peer's announced `max_frame`.
public struct SerialLinkMachine: Sendable {
    public struct Configuration: Hashable, Sendable {
        public var role: SerialLinkRole
        /// Our maximum decoded frame size, announced in hellos (64 ... 1 MiB).
        public var maxFrameSize: Int
        /// First interval between a connector's hellos.
        public var helloInterval: Duration
        /// Cap of the doubling hello interval.
        public var helloIntervalMax: Duration
        /// Send a KEEPALIVE after this long without sending anything (nil: never; announced to the peer).
        public var keepaliveInterval: Duration?
        /// The link goes down after `multiplier ×` the peer's keepalive interval without a valid frame.
        public var peerTimeoutMultiplier: Int

        public init(
            role: SerialLinkRole, maxFrameSize: Int = SerialFraming.defaultMaxFrameSize,
            helloInterval: Duration = .milliseconds(250), helloIntervalMax: Duration = .seconds(4),
            keepaliveInterval: Duration? = .seconds(10), peerTimeoutMultiplier: Int = 3
        ) {
            self.role = role
            self.maxFrameSize = maxFrameSize
            self.helloInterval = helloInterval
            self.helloIntervalMax = helloIntervalMax
            self.keepaliveInterval = keepaliveInterval
            self.peerTimeoutMultiplier = peerTimeoutMultiplier
        }
    }

    /// What the caller must do, in order.
    public enum Action: Hashable, Sendable {
        /// Write this frame.
        case send(SerialFrame)
        /// A session is established (start a sender worker).
        case linkUp(SerialPeerInfo)
        /// The session ended (stop the sender worker).
        case linkDown(SerialLinkDownReason)
        /// A DATA body arrived on the session.
        case deliver([UInt8])
        /// A frame was ignored (count it).
        case dropped(SerialDropReason)
    }

    private enum Phase: Sendable {
        case idle
        case handshaking
        case linked(SerialPeerInfo)
    }

    public let configuration: Configuration
    private var phase: Phase = .idle
    private var rng: SplitMix64
    private(set) var nonce: UInt32 = 0
    private var lastHelloSent: ContinuousClock.Instant?
    private var nextHelloAt: ContinuousClock.Instant?
    private var helloBackoff: Duration
    private var lastSent: ContinuousClock.Instant?
    private var lastReceived: ContinuousClock.Instant?

    /// Hellos sent again because no answer came (connector) or to prompt a peer that sent data without a session.
    public private(set) var helloRetries: UInt64 = 0

    /// - Parameter seed: seeds the nonce generator (the transport passes a random seed; tests a fixed one).
    public init(configuration: Configuration, seed: UInt64) {
        var configuration = configuration
        configuration.maxFrameSize = min(
            max(configuration.maxFrameSize, SerialFraming.minimumMaxFrameSize), SerialFraming.implementationMaxFrameSize
        )
        configuration.peerTimeoutMultiplier = max(1, configuration.peerTimeoutMultiplier)
        self.configuration = configuration
        rng = SplitMix64(seed: seed)
        helloBackoff = configuration.helloInterval
    }

    public var isLinked: Bool {
        if case .linked = phase { return true }
        return false
    }

    /// The peer of the current session.
    public var peer: SerialPeerInfo? {
        if case .linked(let peer) = phase { return peer }
        return nil
    }

    /// When ``tick(now:)`` next has something to do (nil: nothing scheduled).
    public var nextDeadline: ContinuousClock.Instant? {
        var deadlines: [ContinuousClock.Instant] = []
        switch phase {
        case .idle:
            return nil
        case .handshaking:
            if let nextHelloAt { deadlines.append(nextHelloAt) }
        case .linked(let peer):
            if let keepalive = configuration.keepaliveInterval, let lastSent { deadlines.append(lastSent + keepalive) }
            if let timeout = peerTimeout(peer), let lastReceived { deadlines.append(lastReceived + timeout) }
        }
        return deadlines.min()
    }

    // MARK: Inputs

    /// The port is open: both roles announce themselves; a connector keeps repeating until answered.
    public mutating func start(now: ContinuousClock.Instant) -> [Action] {
        guard case .idle = phase else { return [] }
        return beginHandshake(now: now)
    }

    /// A frame arrived.
    public mutating func receive(_ frame: SerialFrame, now: ContinuousClock.Instant) -> [Action] {
        if case .idle = phase { return [] }
        switch frame {
        case .hello(let hello):
            var actions: [Action] = [.send(.helloAck(ourHello(peerNonce: hello.nonce)))]
            lastSent = now
            actions += establish(with: hello, now: now)
            return actions
        case .helloAck(let hello):
            guard hello.peerNonce == nonce else { return [.dropped(.staleHelloAck)] }
            return establish(with: hello, now: now)
        case .data(let body):
            guard isLinked else { return notLinked(now: now) }
            lastReceived = now
            return [.deliver(body)]
        case .keepalive:
            guard isLinked else { return notLinked(now: now) }
            lastReceived = now
            return []
        }
    }

    /// Time passed: resend hellos, send keepalives, notice a silent peer.
    public mutating func tick(now: ContinuousClock.Instant) -> [Action] {
        switch phase {
        case .idle:
            return []
        case .handshaking:
            guard let due = nextHelloAt, now >= due else { return [] }
            helloRetries += 1
            helloBackoff = min(helloBackoff * 2, configuration.helloIntervalMax)
            nextHelloAt = now + helloBackoff
            lastHelloSent = now
            return [.send(.hello(ourHello(peerNonce: 0)))]
        case .linked(let peer):
            if let timeout = peerTimeout(peer), let lastReceived, now - lastReceived >= timeout {
                return [.linkDown(.peerSilent)] + beginHandshake(now: now)
            }
            if let keepalive = configuration.keepaliveInterval, let lastSent, now - lastSent >= keepalive {
                self.lastSent = now
                return [.send(.keepalive)]
            }
            return []
        }
    }

    /// Checks that `body` may be sent now and returns its DATA frame.
    /// - Throws: ``SerialLinkError/notLinked`` or ``SerialLinkError/messageTooLarge(size:limit:)``.
    public mutating func prepareData(
        _ body: [UInt8], now: ContinuousClock.Instant
    ) throws(SerialLinkError) -> SerialFrame {
        guard case .linked(let peer) = phase else { throw .notLinked }
        guard body.count <= peer.maxMessageSize else {
            throw .messageTooLarge(size: body.count, limit: peer.maxMessageSize)
        }
        lastSent = now
        return .data(body)
    }

    /// The port closed: ends a session if there is one; the machine is idle until ``start(now:)``.
    public mutating func stop(reason: String) -> [Action] {
        defer {
            phase = .idle
            nextHelloAt = nil
        }
        if isLinked { return [.linkDown(.portClosed(reason))] }
        return []
    }

    // MARK: Internals

    private func peerTimeout(_ peer: SerialPeerInfo) -> Duration? {
        peer.keepaliveInterval.map { $0 * configuration.peerTimeoutMultiplier }
    }

    private mutating func freshNonce() -> UInt32 {
        while true {
            let candidate = UInt32(truncatingIfNeeded: rng.next())
            if candidate != 0 && candidate != nonce { return candidate }
        }
    }

    private func ourHello(peerNonce: UInt32) -> SerialHello {
        let keepalive = configuration.keepaliveInterval.map { interval -> UInt32 in
            let ms = interval.components.seconds * 1000 + interval.components.attoseconds / 1_000_000_000_000_000
            return UInt32(clamping: max(1, ms))
        }
        return SerialHello(
            maxFrameSize: UInt32(configuration.maxFrameSize), nonce: nonce, peerNonce: peerNonce,
            keepaliveMilliseconds: keepalive ?? 0)
    }

    /// New nonce, send a hello; a connector schedules retries.
    private mutating func beginHandshake(now: ContinuousClock.Instant) -> [Action] {
        phase = .handshaking
        nonce = freshNonce()
        helloBackoff = configuration.helloInterval
        nextHelloAt = configuration.role == .connector ? now + helloBackoff : nil
        lastHelloSent = now
        lastSent = now
        return [.send(.hello(ourHello(peerNonce: 0)))]
    }

    private mutating func establish(with hello: SerialHello, now: ContinuousClock.Instant) -> [Action] {
        lastReceived = now
        let info = SerialPeerInfo(
            version: min(hello.version, SerialFraming.version),
            maxFrameSize: min(Int(hello.maxFrameSize), SerialFraming.implementationMaxFrameSize),
            keepaliveInterval: hello.keepaliveMilliseconds == 0
                ? nil : .milliseconds(Int64(hello.keepaliveMilliseconds)),
            nonce: hello.nonce)
        switch phase {
        case .linked(let current) where current.nonce == hello.nonce:
            // The peer repeated its hello (our answer was lost) or answered one we repeated: same session.
            phase = .linked(info)
            return []
        case .linked:
            phase = .linked(info)
            nextHelloAt = nil
            if lastSent == nil { lastSent = now }
            return [.linkDown(.peerRestarted), .linkUp(info)]
        case .handshaking, .idle:
            phase = .linked(info)
            nextHelloAt = nil
            if lastSent == nil { lastSent = now }
            return [.linkUp(info)]
        }
    }

    /// DATA or KEEPALIVE without a session: drop it and (at most once per hello interval) send a hello so a
    /// peer that still believes in an old session restarts it.
    private mutating func notLinked(now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = [.dropped(.notLinked)]
        if lastHelloSent.map({ now - $0 >= configuration.helloInterval }) ?? true {
            lastHelloSent = now
            lastSent = now
            helloRetries += 1
            actions.append(.send(.hello(ourHello(peerNonce: 0))))
        }
        return actions
    }
}

