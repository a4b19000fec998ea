// Typed errors of the BLE transport: text parsing, and runtime (sockets, links, framing).
import EdgePOSIX
import EdgeRouting

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A BLE address or option spec that does not parse. Every case names the offending text or key.
public enum BLEParseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Not six colon-separated two-digit hex octets.
    case invalidDeviceAddress(String)
    /// An address type other than `public` or `random`.
    case invalidAddressType(String)
    /// A PSM that is not a number or is outside the allowed range.
    case invalidPSM(String, reason: String)
    /// A peer address (hop value or multiaddr) with the wrong shape.
    case invalidPeerAddress(String, reason: String)
    /// An Ockam address whose transport type is not BLE (4).
    case notBLEAddress(String)
    /// An adapter that is neither `hciN`, `any`, nor a device address.
    case invalidAdapter(String)
    /// A `key=value` option whose key this spec does not know.
    case unknownKey(String)
    /// A key given twice.
    case duplicateKey(String)
    /// A required key is missing.
    case missingKey(String)
    /// A key whose value is wrong.
    case invalidValue(key: String, value: String, reason: String)
    /// An empty spec or an empty item between commas.
    case emptySpec(String)

    public var description: String {
        switch self {
        case .invalidDeviceAddress(let t):
            return "invalid Bluetooth device address \"\(t)\" (expected six hex octets, e.g. AA:BB:CC:DD:EE:FF)"
        case .invalidAddressType(let t): return "invalid LE address type \"\(t)\" (expected public or random)"
        case .invalidPSM(let t, let reason): return "invalid PSM \"\(t)\": \(reason)"
        case .invalidPeerAddress(let t, let reason): return "invalid BLE peer address \"\(t)\": \(reason)"
        case .notBLEAddress(let t): return "\(t) is not a BLE address (transport type 4)"
        case .invalidAdapter(let t): return "invalid adapter \"\(t)\" (expected hciN, any, or a device address)"
        case .unknownKey(let k): return "unknown option \"\(k)\""
        case .duplicateKey(let k): return "option \"\(k)\" given more than once"
        case .missingKey(let k): return "missing option \"\(k)\""
        case .invalidValue(let k, let v, let reason): return "invalid value \"\(v)\" for option \"\(k)\": \(reason)"
        case .emptySpec(let t): return "empty item in BLE spec \"\(t)\""
        }
    }
}

/// Why a message or SDU was dropped or refused (also the keys of ``BLECounters``' drop counters).
public enum BLEDropReason: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// An inbound SDU longer than our receive MTU.
    case oversizeSDU = "oversize-sdu"
    /// A message (inbound, announced by its first fragment; or outbound) above `maxMessageSize`.
    case oversizeMessage = "oversize-message"
    /// A complete message that is not a valid routing message.
    case malformedMessage = "malformed-message"
    /// An outbound message the peer would have to reject (a route or address over its limits after our hop): not sent.
    case overLimit = "over-limit"
    /// A fragment that breaks the fragmentation rules, or an empty SDU (the link is closed).
    case framingViolation = "framing-violation"
    /// A link the kernel closed itself because the peer broke L2CAP's rules on it (an SDU or PDU over our MTU, data
    /// without credits): Linux drops what it was sending and disconnects the channel (``BLELinkEnd/closedByKernel(errno:)``).
    case kernelClosed = "kernel-closed"
    /// An outbound message that could not be written (link closed or write error).
    case sendFailed = "send-failed"

    public var description: String { rawValue }
}

/// Errors of the BLE transport at run time.
public enum BLETransportError: Error, Hashable, Sendable, CustomStringConvertible {
    /// `socket(AF_BLUETOOTH, …)` failed with `EAFNOSUPPORT`: the running kernel has no Bluetooth.
    case bluetoothUnsupported
    /// A system call failed.
    case system(call: String, errno: Int32)
    /// No Bluetooth adapter matches (e.g. `hci3` when there are only two).
    case noSuchAdapter(String)
    /// The connection was not established within the connect timeout.
    case connectTimeout(peer: String, Duration)
    /// The kernel refused or failed the connection (`SO_ERROR`).
    case connectFailed(peer: String, errno: Int32)
    /// The kernel opened the channel on an LE link below the security the connector asked for (seen on Linux 6.1
    /// when a channel asking for `medium` reused a still-open unencrypted connection); the channel is closed.
    case insufficientSecurity(peer: String, link: BLESecurityLevel?, required: BLESecurityLevel)
    /// An outbound routing message larger than the transport's `maxMessageSize`.
    case messageTooLarge(size: Int, limit: Int)
    /// An SDU larger than the link's SDU limit (never sent) or our receive MTU (dropped).
    case sduTooLarge(size: Int, limit: Int)
    /// A fragment that violates the fragmentation rules; the link's message boundaries can no longer be
    /// trusted, so the link is closed.
    case framingViolation(String)
    /// A bad BLE address in a route.
    case invalidAddress(BLEParseError)
    /// The link is closed.
    case linkClosed
    /// The operation was cancelled (transport shutting down).
    case cancelled
    /// The transport is shut down.
    case shutDown
    /// The transport already has ``BLETransportOptions/maxLinks`` links.
    case tooManyLinks(limit: Int)

    public var description: String {
        switch self {
        case .bluetoothUnsupported:
            return "no Bluetooth support in this kernel (socket(AF_BLUETOOTH) failed with EAFNOSUPPORT)"
        case .system(let call, let errno): return "\(call) failed: \(Self.describe(errno: errno))"
        case .noSuchAdapter(let a): return "no Bluetooth adapter \(a)"
        case .connectTimeout(let peer, let d): return "connecting to \(peer) timed out after \(d)"
        case .connectFailed(let peer, let errno): return "connecting to \(peer) failed: \(Self.describe(errno: errno))"
        case .insufficientSecurity(let peer, let link, let required):
            return "the link to \(peer) opened at security \(link.map { "\($0)" } ?? "unknown"), below the required \(required); closed"
        case .messageTooLarge(let size, let limit):
            return "routing message of \(size) bytes exceeds the BLE transport limit of \(limit) bytes"
        case .sduTooLarge(let size, let limit): return "SDU of \(size) bytes exceeds the limit of \(limit) bytes"
        case .framingViolation(let why): return "framing violation: \(why)"
        case .invalidAddress(let e): return "\(e)"
        case .linkClosed: return "BLE link closed"
        case .cancelled: return "cancelled"
        case .shutDown: return "BLE transport is shut down"
        case .tooManyLinks(let limit): return "the BLE transport already has its maximum of \(limit) links"
        }
    }

    /// `ENOENT (No such file or directory)` style text.
    static func describe(errno code: Int32) -> String {
        let name = errnoName(code)
        guard let text = strerror(code) else { return name }
        return "\(name) (\(String(cString: text)))"
    }
}
