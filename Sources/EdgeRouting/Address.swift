// EdgeRouting: Ockam's routing layer as pure values — addresses, routes, routing messages, multiaddrs.
import EdgeWire

/// The transport an address belongs to (`ockam_core::TransportType`, a `u8` on the wire).
public struct TransportType: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public init(_ rawValue: UInt8) { self.rawValue = rawValue }

    /// A worker inside this node. Ockam `LOCAL = 0`.
    public static let local = TransportType(0)
    /// `host:port` over TCP. Ockam `TCP = 1`.
    public static let tcp = TransportType(1)
    /// Ockam `UDP = 2`.
    public static let udp = TransportType(2)
    /// Ockam `WS = 3`.
    public static let webSocket = TransportType(3)
    /// Ockam `BLE = 4`.
    public static let ble = TransportType(4)
    /// Ockam `UDS = 5`.
    public static let unixDomainSocket = TransportType(5)

    public var description: String { String(rawValue) }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// An Ockam address: a transport type and an opaque (normally UTF-8) value.
///
/// Text form `tt#value` (`0#echo`, `1#127.0.0.1:4000`); a string without `#` is a local address.
public struct Address: Hashable, Sendable, CustomStringConvertible {
    public var transportType: TransportType
    public var value: [UInt8]

    public init(_ transportType: TransportType, _ value: [UInt8]) {
        self.transportType = transportType
        self.value = value
    }

    public init(_ transportType: TransportType, _ value: String) {
        self.init(transportType, Array(value.utf8))
    }

    /// A local (worker) address.
    public static func local(_ name: String) -> Address { Address(.local, name) }

    /// A TCP peer address `1#host:port`.
    public static func tcp(_ hostPort: String) -> Address { Address(.tcp, hostPort) }

    /// A fresh random local address: 16 random bytes as 32 lowercase hex characters, as Ockam makes them.
    public static func random() -> Address {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<16 { bytes[i] = generator.next() }
        return Address(.local, Hex.encode(bytes))
    }

    public var isLocal: Bool { transportType == .local }

    /// The value as text (invalid UTF-8 is replaced, for display only).
    public var valueString: String { String(decoding: value, as: UTF8.self) }

    public var description: String { "\(transportType.rawValue)#\(valueString)" }

    /// Parses `tt#value` or a bare local name. More than one `#`, an empty value or a bad type is an error.
    public init(parsing text: String) throws(RoutingError) {
        let parts = text.split(separator: "#", omittingEmptySubsequences: false)
        switch parts.count {
        case 1:
            guard !text.isEmpty else { throw .invalidAddress(text, reason: "empty address") }
            self.init(.local, text)
        case 2:
            guard let tt = UInt8(parts[0]) else {
                throw .invalidAddress(text, reason: "transport type must be a number 0-255")
            }
            guard !parts[1].isEmpty else { throw .invalidAddress(text, reason: "empty address value") }
            self.init(TransportType(tt), String(parts[1]))
        default:
            throw .invalidAddress(text, reason: "more than one '#'")
        }
    }
}

/// Errors of the routing layer.
public enum RoutingError: Error, Hashable, Sendable, CustomStringConvertible {
    case invalidAddress(String, reason: String)
    case malformed(WireError, context: String)
    case limitExceeded(what: String, limit: Int)

    public var description: String {
        switch self {
        case .invalidAddress(let text, let reason): return "invalid address \"\(text)\": \(reason)"
        case .malformed(let error, let context): return "malformed \(context): \(error)"
        case .limitExceeded(let what, let limit): return "\(what) exceeds limit of \(limit)"
        }
    }
}
