// Host and port as operators write them (CLI, configuration): one parser, bounded, fuzzed.

/// A listener or target address, `host:port`: an IPv4 address or a name (`127.0.0.1:4000`, `gateway.lan:4000`), an
/// IPv6 address in brackets (`[::1]:4000`, `[fe80::1%eth0]:4000`), or no host (`:4000`), which the CLI's listeners
/// read as 0.0.0.0. Strict on purpose, like ``Quantity``:
/// - the port is decimal digits, 0…65535 (0: any free port, for listeners); leading zeros are read and dropped
///   (`04000` is 4000), as `TCPDestination` and ``Quantity/count(_:in:)`` read them, so ``description`` is canonical;
/// - an IPv6 address must be in brackets: in `::1:4000` the port cannot be told from the address's last group, so a
///   colon in an unbracketed host is refused rather than guessed;
/// - a host is ASCII letters, digits, `.`, `-` and `_`; in brackets hex digits, `:` and `.`, then optionally `%zone`.
///   So whitespace (a pasted `" 127.0.0.1:4000"`), control characters and anything a resolver might read
///   differently are errors, not name lookups;
/// - at most ``maxLength`` bytes.
///
/// The host is kept as written (no case folding, no address normalisation): it is what `bind` and `connect` get.
public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    /// Longest text accepted: a 253-byte DNS name, brackets, a colon and a port with some leading zeros.
    public static let maxLength = 300

    /// Without brackets; empty for no host.
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// The address `text` names, or nil if it is not exactly `host:port` or `[v6]:port` as described above.
    public static func parse(_ text: String) -> HostPort? {
        let bytes = Array(text.utf8)
        guard bytes.count <= maxLength else { return nil }
        let host: ArraySlice<UInt8>
        let rest: ArraySlice<UInt8>
        if bytes.first == UInt8(ascii: "[") {
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")) else { return nil }
            host = bytes[1..<close]
            rest = bytes[(close + 1)...]
            guard isIPv6(host) else { return nil }
        } else {
            guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { return nil }
            host = bytes[..<colon]
            rest = bytes[colon...]
            guard host.allSatisfy(isNameByte) else { return nil }
        }
        guard rest.first == UInt8(ascii: ":"),
            let port = Quantity.count(String(decoding: rest.dropFirst(), as: UTF8.self), in: 0...65535)
        else { return nil }
        return HostPort(host: String(decoding: host, as: UTF8.self), port: port)
    }

    /// `host:port`, `[v6]:port` or `:port`; for a value ``parse(_:)`` returned, it reads back to the same value.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Hex digits, `:` and `.` (an embedded IPv4 address), with at least one `:`; then optionally `%` and a zone of
    /// name bytes.
    private static func isIPv6(_ text: ArraySlice<UInt8>) -> Bool {
        let percent = text.firstIndex(of: UInt8(ascii: "%")) ?? text.endIndex
        let address = text[..<percent]
        let zone = text[percent...].dropFirst()
        guard address.contains(UInt8(ascii: ":")),
            address.allSatisfy({ isHexDigit($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") })
        else { return false }
        return percent == text.endIndex || (!zone.isEmpty && zone.allSatisfy(isNameByte))
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
            return true
        default:
            return false
        }
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"):
            return true
        default:
            return false
        }
    }
}
