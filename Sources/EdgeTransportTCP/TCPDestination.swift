// Canonical TCP destinations and the forwarding allow-list that decides which ones a peer's message may reach.
import EdgeNode
import EdgeRouting
import EdgeSync

#if canImport(Glibc)
import Glibc
#endif

/// One TCP destination in a single textual form: a numeric port without leading zeros, an IPv4 address in
/// dotted-decimal, an IPv6 address as `inet_ntop` writes it (in brackets), a DNS name in lower case without a trailing
/// dot. Two spellings of one destination give equal values, so they share one connection and one allow-list entry.
public struct TCPDestination: Hashable, Sendable, CustomStringConvertible {
    public enum Host: Hashable, Sendable {
        /// Network byte order, as `inet_pton` writes it.
        case ipv4([UInt8])
        case ipv6([UInt8])
        case name(String)
    }

    public let host: Host
    public let port: UInt16

    /// Parses `host:port` (`[v6]:port` for IPv6).
    ///
    /// - Throws: ``TCPTransportError/invalidPeerAddress(_:)`` for anything else, including a name that only looks like
    ///   a number (`010.0.0.1`, `0x7f.1`, `2130706433`: resolvers read those as IPv4 in ways `inet_pton` does not, so
    ///   they could reach an address no allow-list entry names).
    public init(parsing text: String) throws(TCPTransportError) {
        guard let (hostText, bracketed, port) = Self.split(text), let port,
            let host = Self.parseHost(hostText, bracketed: bracketed)
        else { throw .invalidPeerAddress(text) }
        self.host = host
        self.port = port
    }

    /// `host:port` or `[host]:port` into the host (brackets removed), whether it was bracketed, and the port: nil
    /// for `*`. Nil for anything else: a port is 1…65535 (0 too with `allowingZero`, for listeners) in at most 16
    /// digits (leading zeros allowed).
    static func split(_ text: String, allowingZero: Bool = false) -> (host: String, bracketed: Bool, port: UInt16?)? {
        guard text.utf8.count <= 300, let colon = text.lastIndex(of: ":") else { return nil }
        let portText = text[text.index(after: colon)...]
        let port: UInt16?
        if portText == "*" {
            port = nil
        } else {
            guard !portText.isEmpty, portText.utf8.count <= 16, portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let value = Int(portText), ((allowingZero ? 0 : 1)...65535).contains(value)
            else { return nil }
            port = UInt16(value)
        }
        var host = String(text[..<colon])
        let bracketed = host.hasPrefix("[") && host.hasSuffix("]")
        if bracketed { host = String(host.dropFirst().dropLast()) }
        return (host, bracketed, port)
    }

    public init(host: Host, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// The host as `connect` takes it (no brackets).
    public var hostText: String {
        switch host {
        case .ipv4(let bytes): IPText.format(bytes, family: AF_INET) ?? "?"
        case .ipv6(let bytes): IPText.format(bytes, family: AF_INET6) ?? "?"
        case .name(let name): name
        }
    }

    public var description: String {
        if case .ipv6 = host { return "[\(hostText)]:\(port)" }
        return "\(hostText):\(port)"
    }

    static func parseHost(_ text: String, bracketed: Bool) -> Host? {
        guard !text.isEmpty else { return nil }
        if let bytes = IPText.parse(text, family: AF_INET6) { return .ipv6(bytes) }
        if bracketed { return nil }
        if let bytes = IPText.parse(text, family: AF_INET) { return .ipv4(bytes) }
        var name = text.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        guard !name.isEmpty, name.utf8.count <= 253 else { return nil }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard !label.isEmpty, label.utf8.count <= 63,
                label.utf8.allSatisfy({ isLetterOrDigit($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") })
            else { return nil }
        }
        // A top-level label of digits or `0x…` is a number to a resolver (inet_aton), never a DNS name.
        let last = labels.last!
        if last.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) || last.hasPrefix("0x") { return nil }
        return .name(name)
    }

    private static func isLetterOrDigit(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x7a)
    }
}

/// One entry of a forwarding allow-list: `host:port`, `host:*`, `a.b.c.d/len:port` or `[v6/len]:port`. A name matches
/// only that name (a message naming the address it resolves to does not match, and vice versa).
public struct TCPForwardRule: Hashable, Sendable, CustomStringConvertible {
    public enum HostPattern: Hashable, Sendable {
        case name(String)
        /// Address bytes (network order) and prefix length; an exact address has the full length.
        case network([UInt8], prefix: Int)
    }

    public let host: HostPattern
    /// nil: any port.
    public let port: UInt16?

    public init(parsing text: String) throws(TCPTransportError) {
        guard let (hostText, bracketed, port) = TCPDestination.split(text) else { throw .invalidForwardRule(text) }
        self.port = port
        if let slash = hostText.firstIndex(of: "/") {
            let addressText = String(hostText[..<slash])
            let prefixText = hostText[hostText.index(after: slash)...]
            guard let prefix = Int(prefixText), prefixText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                throw .invalidForwardRule(text)
            }
            if let bytes = IPText.parse(addressText, family: AF_INET6), prefix <= 128 {
                host = .network(bytes, prefix: prefix)
            } else if !bracketed, let bytes = IPText.parse(addressText, family: AF_INET),
                prefix <= 32
            {
                host = .network(bytes, prefix: prefix)
            } else {
                throw .invalidForwardRule(text)
            }
        } else {
            switch TCPDestination.parseHost(hostText, bracketed: bracketed) {
            case .ipv4(let bytes)?: host = .network(bytes, prefix: 32)
            case .ipv6(let bytes)?: host = .network(bytes, prefix: 128)
            case .name(let name)?: host = .name(name)
            case nil: throw .invalidForwardRule(text)
            }
        }
    }

    /// The rule that allows exactly `destination`.
    public init(exactly destination: TCPDestination) {
        switch destination.host {
        case .ipv4(let bytes): host = .network(bytes, prefix: 32)
        case .ipv6(let bytes): host = .network(bytes, prefix: 128)
        case .name(let name): host = .name(name)
        }
        port = destination.port
    }

    public func matches(_ destination: TCPDestination) -> Bool {
        if let port, port != destination.port { return false }
        switch (host, destination.host) {
        case (.name(let a), .name(let b)): return a == b
        case (.network(let network, let prefix), .ipv4(let bytes)), (.network(let network, let prefix), .ipv6(let bytes)):
            guard network.count == bytes.count else { return false }
            var remaining = prefix
            for (a, b) in zip(network, bytes) where remaining > 0 {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xff << (8 - bits))
                if a & mask != b & mask { return false }
                remaining -= bits
            }
            return true
        default: return false
        }
    }

    public var description: String {
        let portText = port.map(String.init) ?? "*"
        switch host {
        case .name(let name): return "\(name):\(portText)"
        case .network(let bytes, let prefix):
            let v6 = bytes.count == 16
            let address = IPText.format(bytes, family: v6 ? AF_INET6 : AF_INET) ?? "?"
            let full = prefix == bytes.count * 8
            let hostText = full ? address : "\(address)/\(prefix)"
            return v6 ? "[\(hostText)]:\(portText)" : "\(hostText):\(portText)"
        }
    }
}

/// A forwarding allow-list that can change while the node runs (an agent's configuration reload).
public final class TCPForwardAllowList: Sendable {
    private let rules: EdgeMutex<[TCPForwardRule]>

    public init(_ rules: [TCPForwardRule] = []) { self.rules = EdgeMutex(Self.normalised(rules)) }

    public var current: [TCPForwardRule] { rules.withLock { $0 } }

    public func replace(with rules: [TCPForwardRule]) {
        let normalised = Self.normalised(rules)
        self.rules.withLock { $0 = normalised }
    }

    /// Whether a remote hop is a TCP destination some rule matches (only TCP: never a device link or other transport).
    public func allows(_ address: Address) -> Bool {
        guard address.transportType == .tcp, let destination = try? TCPDestination(parsing: address.valueString) else {
            return false
        }
        return rules.withLock { $0.contains { $0.matches(destination) } }
    }

    private static func normalised(_ rules: [TCPForwardRule]) -> [TCPForwardRule] {
        Array(Set(rules)).sorted { $0.description < $1.description }
    }
}

extension ForwardingPolicy {
    /// Forward a remote party's messages only to TCP destinations `list` allows; `enabled: false` forwards nothing.
    public static func tcp(_ list: TCPForwardAllowList, enabled: Bool = true) -> ForwardingPolicy {
        ForwardingPolicy(enabled: enabled, summary: { list.current.map(\.description) }) { list.allows($0) }
    }
}
