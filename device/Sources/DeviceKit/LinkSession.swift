// The device side of a serial link session (docs/serial-framing.md §5): hello handshake, keepalive, peer timeout.
// A pure value: the caller passes the time and performs the returned actions; no I/O, no clock, no allocation.

/// A control frame the session asks the caller to send (DATA goes through ``LinkSession/prepareData(frameLength:now:)``).
public enum LinkControlFrame: Equatable, Sendable {
    /// HELLO with our nonce.
    case hello(nonce: UInt32)
    /// HELLO_ACK with our nonce, answering `peerNonce`.
    case helloAck(nonce: UInt32, peerNonce: UInt32)
    /// KEEPALIVE.
    case keepalive
}

/// Why a received frame was dropped (the names of docs/serial-framing.md §5.4).
public enum LinkDropReason: UInt8, Equatable, Sendable, CaseIterable {
    case badEncoding, tooShort, crcMismatch, oversize, unknownType, badHello, staleHelloAck, notLinked, badMessage
}

/// What one input asks the caller to do, in this order: `linkDown`, `linkUp`, `send`, `deliver`. At most one of
/// each, so the set fits in a few registers and needs no array.
public struct LinkActions: Equatable, Sendable {
    /// The session ended (before any new one in `linkUp`).
    public var linkDown = false
    /// A session is established.
    public var linkUp = false
    /// A control frame to write.
    public var send: LinkControlFrame?
    /// The DATA body just received is to be delivered.
    public var deliver = false
    /// The frame was dropped for this reason.
    public var dropped: LinkDropReason?

    public init() {}
}

/// A received hello's fields (docs/serial-framing.md §5.1).
public struct LinkHello: Equatable, Sendable {
    public var version: UInt8
    public var maxFrameSize: UInt32
    public var nonce: UInt32
    public var peerNonce: UInt32
    public var keepaliveMilliseconds: UInt32

    public init(version: UInt8 = 1, maxFrameSize: UInt32, nonce: UInt32, peerNonce: UInt32 = 0,
                keepaliveMilliseconds: UInt32) {
        self.version = version
        self.maxFrameSize = maxFrameSize
        self.nonce = nonce
        self.peerNonce = peerNonce
        self.keepaliveMilliseconds = keepaliveMilliseconds
    }
}

/// The device's link session: a connector (§5.2) that repeats its HELLO every 250 ms doubling to 4 s until
/// answered, answers the gateway's hellos, keeps the line alive and times a silent gateway out.
///
/// Time is a free-running millisecond counter (`UInt32`, wrapping after 49 days): only differences are used.
///
/// ### Invariants
/// - `deliver` is only returned while linked.
/// - Every `linkUp` is followed by exactly one `linkDown` before the next `linkUp`.
/// - Our nonce is never 0 and changes at every handshake this side starts (§5.3).
public struct LinkSession: Sendable {
    public struct Configuration: Equatable, Sendable {
        /// Our largest accepted decoded frame, announced in hellos (≥ 64).
        public var maxFrameSize: UInt32
        /// Sent as `keepalive_ms`: we send a KEEPALIVE after this long without sending (0: never).
        public var keepaliveMilliseconds: UInt32
        /// First interval between hellos while handshaking.
        public var helloIntervalMilliseconds: UInt32
        /// Cap of the doubling hello interval.
        public var helloIntervalMaxMilliseconds: UInt32
        /// The gateway is declared gone after this many of its keepalive intervals without a valid frame.
        public var peerTimeoutMultiplier: UInt32

        public init(maxFrameSize: UInt32 = 256, keepaliveMilliseconds: UInt32 = 5_000,
                    helloIntervalMilliseconds: UInt32 = 250, helloIntervalMaxMilliseconds: UInt32 = 4_000,
                    peerTimeoutMultiplier: UInt32 = 3) {
            self.maxFrameSize = max(maxFrameSize, UInt32(SerialWire.minimumMaxFrameSize))
            self.keepaliveMilliseconds = keepaliveMilliseconds
            self.helloIntervalMilliseconds = max(1, helloIntervalMilliseconds)
            self.helloIntervalMaxMilliseconds = max(self.helloIntervalMilliseconds, helloIntervalMaxMilliseconds)
            self.peerTimeoutMultiplier = max(1, peerTimeoutMultiplier)
        }
    }

    private enum Phase: Equatable, Sendable {
        case idle
        case handshaking
        case linked
    }

    public let configuration: Configuration
    private var phase: Phase = .idle
    private var random: UInt64
    /// Our current nonce (0 before the first handshake).
    public private(set) var nonce: UInt32 = 0
    /// The gateway's nonce in the current session.
    public private(set) var peerNonce: UInt32 = 0
    /// The gateway's announced maximum frame (valid while linked).
    public private(set) var peerMaxFrameSize: UInt32 = 0
    /// The gateway's announced keepalive interval (valid while linked; 0: never).
    public private(set) var peerKeepaliveMilliseconds: UInt32 = 0
    private var helloBackoff: UInt32
    private var lastHelloSent: UInt32 = 0
    private var lastSent: UInt32 = 0
    private var lastReceived: UInt32 = 0
    /// Hellos sent because the previous one went unanswered, or to prompt a peer that sent data outside a session.
    public private(set) var helloRetries: UInt32 = 0

    /// - Parameter seed: seeds the nonce generator; a device mixes in real entropy (docs/device-kit.md).
    public init(configuration: Configuration = Configuration(), seed: UInt64) {
        self.configuration = configuration
        random = seed
        helloBackoff = configuration.helloIntervalMilliseconds
    }

    public var isLinked: Bool { phase == .linked }

    // MARK: Inputs

    /// The port is open: start a handshake.
    public mutating func start(now: UInt32) -> LinkActions {
        guard phase == .idle else { return LinkActions() }
        return beginHandshake(now: now)
    }

    /// The port closed (or the board reset its UART): the session, if any, is down until ``start(now:)``.
    public mutating func stop() -> LinkActions {
        var actions = LinkActions()
        actions.linkDown = phase == .linked
        phase = .idle
        return actions
    }

    /// A HELLO arrived.
    public mutating func receiveHello(_ hello: LinkHello, now: UInt32) -> LinkActions {
        guard phase != .idle else { return LinkActions() }
        var actions = establish(with: hello, now: now)
        actions.send = .helloAck(nonce: nonce, peerNonce: hello.nonce)
        lastSent = now
        return actions
    }

    /// A HELLO_ACK arrived.
    public mutating func receiveHelloAck(_ hello: LinkHello, now: UInt32) -> LinkActions {
        guard phase != .idle else { return LinkActions() }
        guard hello.peerNonce == nonce else {
            var actions = LinkActions()
            actions.dropped = .staleHelloAck
            return actions
        }
        return establish(with: hello, now: now)
    }

    /// A DATA frame arrived (its body stays in the caller's buffer).
    public mutating func receiveData(now: UInt32) -> LinkActions {
        guard phase != .idle else { return LinkActions() }
        guard phase == .linked else { return notLinked(now: now) }
        lastReceived = now
        var actions = LinkActions()
        actions.deliver = true
        return actions
    }

    /// A KEEPALIVE arrived.
    public mutating func receiveKeepalive(now: UInt32) -> LinkActions {
        guard phase != .idle else { return LinkActions() }
        guard phase == .linked else { return notLinked(now: now) }
        lastReceived = now
        return LinkActions()
    }

    /// Time passed: repeat the hello, send a keepalive, or notice a silent gateway.
    public mutating func tick(now: UInt32) -> LinkActions {
        var actions = LinkActions()
        switch phase {
        case .idle:
            break
        case .handshaking:
            if now &- lastHelloSent >= helloBackoff {
                helloRetries &+= 1
                helloBackoff = min(helloBackoff &* 2, configuration.helloIntervalMaxMilliseconds)
                lastHelloSent = now
                lastSent = now
                actions.send = .hello(nonce: nonce)
            }
        case .linked:
            let timeout = UInt64(peerKeepaliveMilliseconds) * UInt64(configuration.peerTimeoutMultiplier)
            if timeout != 0 && UInt64(now &- lastReceived) >= timeout {
                actions = beginHandshake(now: now)
                actions.linkDown = true
            } else if configuration.keepaliveMilliseconds != 0 && now &- lastSent >= configuration.keepaliveMilliseconds {
                lastSent = now
                actions.send = .keepalive
            }
        }
        return actions
    }

    /// Whether a DATA frame of `frameLength` decoded bytes (type + body + CRC) may be sent now; if so it counts as
    /// sent (for the keepalive timer).
    public mutating func prepareData(frameLength: Int, now: UInt32) -> Bool {
        guard phase == .linked, frameLength <= Int(peerMaxFrameSize) else { return false }
        lastSent = now
        return true
    }

    /// Milliseconds until ``tick(now:)`` has something to do (nil: nothing scheduled), for boards that sleep.
    public func millisecondsUntilDeadline(now: UInt32) -> UInt32? {
        switch phase {
        case .idle:
            return nil
        case .handshaking:
            let elapsed = now &- lastHelloSent
            return elapsed >= helloBackoff ? 0 : helloBackoff - elapsed
        case .linked:
            var best: UInt32?
            if configuration.keepaliveMilliseconds != 0 {
                let elapsed = now &- lastSent
                best = elapsed >= configuration.keepaliveMilliseconds ? 0 : configuration.keepaliveMilliseconds - elapsed
            }
            let timeout = UInt64(peerKeepaliveMilliseconds) * UInt64(configuration.peerTimeoutMultiplier)
            if timeout != 0 {
                let elapsed = UInt64(now &- lastReceived)
                let left = UInt32(clamping: elapsed >= timeout ? 0 : timeout - elapsed)
                best = min(best ?? left, left)
            }
            return best
        }
    }

    // MARK: Internals

    private mutating func freshNonce() -> UInt32 {
        while true {
            // SplitMix64 (the gateway's nonce generator too).
            random &+= 0x9E37_79B9_7F4A_7C15
            var z = random
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            let candidate = UInt32(truncatingIfNeeded: z ^ (z >> 31))
            if candidate != 0 && candidate != nonce { return candidate }
        }
    }

    private mutating func beginHandshake(now: UInt32) -> LinkActions {
        phase = .handshaking
        nonce = freshNonce()
        helloBackoff = configuration.helloIntervalMilliseconds
        lastHelloSent = now
        lastSent = now
        var actions = LinkActions()
        actions.send = .hello(nonce: nonce)
        return actions
    }

    private mutating func establish(with hello: LinkHello, now: UInt32) -> LinkActions {
        var actions = LinkActions()
        lastReceived = now
        if phase == .linked && peerNonce == hello.nonce { return actions }
        actions.linkDown = phase == .linked
        actions.linkUp = true
        phase = .linked
        peerNonce = hello.nonce
        peerMaxFrameSize = hello.maxFrameSize
        peerKeepaliveMilliseconds = hello.keepaliveMilliseconds
        lastSent = now
        return actions
    }

    /// DATA or KEEPALIVE outside a session (§5.3 rule 4): dropped; a hello at most once per hello interval.
    private mutating func notLinked(now: UInt32) -> LinkActions {
        var actions = LinkActions()
        actions.dropped = .notLinked
        if now &- lastHelloSent >= configuration.helloIntervalMilliseconds {
            lastHelloSent = now
            lastSent = now
            helloRetries &+= 1
            actions.send = .hello(nonce: nonce)
        }
        return actions
    }
}
