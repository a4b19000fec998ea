// Link information, link/listener events and counters of the BLE transport.
import EdgeRouting

/// A live link as shown by `status` and carried in events.
public struct BLELinkInfo: Hashable, Sendable, CustomStringConvertible {
    /// A number unique within the transport.
    public var id: Int
    /// The peer: for outgoing links what was dialled; for accepted links the peer's device and type, with the
    /// listener's PSM. Nil only for links over test sockets.
    public var peer: BLEPeerAddress?
    /// The local address of the link's sender worker (the first hop of return routes through this link).
    public var senderAddress: Address
    public var outgoing: Bool
    /// The peer's receive MTU (`BT_SNDMTU`).
    public var sendMTU: Int
    /// Our receive MTU (`BT_RCVMTU`).
    public var receiveMTU: Int
    /// The largest SDU this side sends on the link (≤ `sendMTU`).
    public var sduLimit: Int
    /// The LE link's security when the channel opened (`BT_SECURITY` of the connected socket: `medium` and above
    /// mean the kernel paired and encrypted the link). Nil for sockets that are not L2CAP (tests).
    public var security: BLESecurityLevel?

    public init(
        id: Int, peer: BLEPeerAddress?, senderAddress: Address, outgoing: Bool, sendMTU: Int, receiveMTU: Int,
        sduLimit: Int, security: BLESecurityLevel? = nil
    ) {
        self.id = id
        self.peer = peer
        self.senderAddress = senderAddress
        self.outgoing = outgoing
        self.sendMTU = sendMTU
        self.receiveMTU = receiveMTU
        self.sduLimit = sduLimit
        self.security = security
    }

    public var description: String {
        "\(outgoing ? "to" : "from") \(peer.map { "\($0)" } ?? "?") sender=\(senderAddress) "
            + "mtu=\(sendMTU)/\(receiveMTU) sdu=\(sduLimit)" + (security.map { " security=\($0)" } ?? "")
    }
}

/// What happened to links and listeners. Subscribe with ``BLETransport/events()``.
public enum BLELinkEvent: Hashable, Sendable, CustomStringConvertible {
    /// A link is up; route through `info.senderAddress`.
    case linkUp(BLELinkInfo)
    /// A link went down (its sender address is gone).
    case linkDown(BLELinkInfo, reason: String)
    /// A connector will retry `peer` after `delay` (attempt counts from 1 since the last good link).
    case reconnectScheduled(peer: BLEPeerAddress, attempt: Int, delay: Duration, reason: String)
    /// A listener is accepting on `psm` (first bind, or re-bound after a failure).
    case listenerUp(BLEListenConfiguration, psm: L2CAPPSM)
    /// A listener's socket failed; it will be re-bound with backoff.
    case listenerDown(BLEListenConfiguration, reason: String)

    public var description: String {
        switch self {
        case .linkUp(let info): return "link up \(info)"
        case .linkDown(let info, let reason): return "link down \(info): \(reason)"
        case .reconnectScheduled(let peer, let attempt, let delay, let reason):
            return "reconnect \(peer) attempt \(attempt) in \(delay) (\(reason))"
        case .listenerUp(let config, let psm): return "listener up \(config.adapter) psm=\(psm)"
        case .listenerDown(let config, let reason): return "listener down \(config.adapter) psm=\(config.psm): \(reason)"
        }
    }
}

/// Counters of the BLE transport (monotonic since start).
public struct BLECounters: Hashable, Sendable {
    public var sdusIn: UInt64 = 0
    public var sdusOut: UInt64 = 0
    public var bytesIn: UInt64 = 0
    public var bytesOut: UInt64 = 0
    public var messagesIn: UInt64 = 0
    public var messagesOut: UInt64 = 0
    /// Drops and refusals, by reason.
    public var drops: [BLEDropReason: UInt64] = [:]
    public var linkUps: UInt64 = 0
    public var linkDowns: UInt64 = 0
    /// Reconnect attempts made by connectors (not counting the first connect).
    public var reconnectAttempts: UInt64 = 0
    /// Failed connect attempts (first or reconnect).
    public var connectFailures: UInt64 = 0
    /// Listener socket failures that led to a re-bind.
    public var listenerRestarts: UInt64 = 0
    /// Accepted links closed because the device's required security level (``BLETransport/requireSecurity(_:of:)``)
    /// was not met.
    public var linksRefusedSecurity: UInt64 = 0
    /// Links closed as soon as they came up because the transport already had ``BLETransportOptions/maxLinks``.
    public var linksRefusedOverCap: UInt64 = 0

    public init() {}

    public func dropped(_ reason: BLEDropReason) -> UInt64 { drops[reason] ?? 0 }
}
