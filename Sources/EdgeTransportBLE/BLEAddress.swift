// Bluetooth device addresses, LE address types, L2CAP PSMs and BLE peer (route hop) addresses.
import EdgeRouting

// MARK: - Device address

/// A 48-bit Bluetooth device address (`BD_ADDR`), as people write it: `AA:BB:CC:DD:EE:FF`, most
/// significant octet first.
///
/// The kernel's `bdaddr_t` stores the same octets in the opposite order (least significant first);
/// ``kernelOrderBytes`` is the only place that reversal happens.
public struct BluetoothDeviceAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The address as a 48-bit number (`AA:BB:CC:DD:EE:FF` is `0xAABBCCDDEEFF`).
    public let rawValue: UInt64

    /// `00:00:00:00:00:00`, the kernel's `BDADDR_ANY` ("any adapter" when binding).
    public static let any = BluetoothDeviceAddress(uncheckedRawValue: 0)

    init(uncheckedRawValue: UInt64) { rawValue = uncheckedRawValue }

    /// Creates an address from a 48-bit number; nil if `rawValue` has bits above bit 47.
    public init?(rawValue: UInt64) {
        guard rawValue >> 48 == 0 else { return nil }
        self.rawValue = rawValue
    }

    /// Creates an address from six octets in display order (most significant first).
    public init?(bytes: [UInt8]) {
        guard bytes.count == 6 else { return nil }
        rawValue = bytes.reduce(0) { ($0 << 8) | UInt64($1) }
    }

    /// Creates an address from the kernel's `bdaddr_t` octets (least significant first).
    public init?(kernelOrderBytes bytes: [UInt8]) {
        self.init(bytes: bytes.reversed())
    }

    /// Parses `AA:BB:CC:DD:EE:FF` (six colon-separated pairs of hex digits, either case).
    ///
    /// This is a Swift re-implementation of what libbluetooth's `str2ba` does, minus its leniency: every
    /// octet must be exactly two hex digits.
    /// - Throws: ``BLEParseError/invalidDeviceAddress(_:)``.
    public init(parsing text: String) throws(BLEParseError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { throw .invalidDeviceAddress(text) }
        var value: UInt64 = 0
        for part in parts {
            guard part.utf8.count == 2, part.utf8.allSatisfy(\.isHexDigit), let octet = UInt8(part, radix: 16) else {
                throw .invalidDeviceAddress(text)
            }
            value = (value << 8) | UInt64(octet)
        }
        rawValue = value
    }

    /// The six octets in display order (most significant first).
    public var bytes: [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: rawValue >> (8 * (5 - $0))) } }

    /// The six octets in the kernel's `bdaddr_t` order (least significant first).
    public var kernelOrderBytes: [UInt8] { bytes.reversed() }

    /// `AA:BB:CC:DD:EE:FF` in upper case, as BlueZ prints addresses.
    public var description: String {
        let digits: [Character] = Array("0123456789ABCDEF")
        var out = ""
        out.reserveCapacity(17)
        for (i, octet) in bytes.enumerated() {
            if i > 0 { out.append(":") }
            out.append(digits[Int(octet >> 4)])
            out.append(digits[Int(octet & 0x0f)])
        }
        return out
    }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

// MARK: - Address type

/// The LE address type of a device address (Core spec Vol 6 Part B §1.3).
public enum BLEAddressType: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// An IEEE-assigned public device address. The corresponding C constant is `BDADDR_LE_PUBLIC`.
    case `public`
    /// A random device address (static, or private resolvable/non-resolvable). The corresponding C constant is
    /// `BDADDR_LE_RANDOM`.
    case random

    /// The `l2_bdaddr_type` value.
    public var kernelValue: UInt8 {
        switch self {
        case .public: return 0x01
        case .random: return 0x02
        }
    }

    /// Maps an `l2_bdaddr_type`; nil for BR/EDR (0) and unknown values.
    public init?(kernelValue: UInt8) {
        switch kernelValue {
        case 0x01: self = .public
        case 0x02: self = .random
        default: return nil
        }
    }

    public var description: String { rawValue }
}

// MARK: - PSM

/// An LE Protocol/Service Multiplexer: the "port" of an L2CAP LE credit-based channel.
///
/// LE PSMs are 0x0001–0x00FF: 0x01–0x7F are SIG-assigned (binding them needs `CAP_NET_BIND_SERVICE`),
/// 0x80–0xFF are dynamic. 0 means "let the kernel pick a free dynamic PSM" when listening.
public struct L2CAPPSM: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    /// The dynamic LE PSM range, the only one accepted by default.
    public static let dynamicRange: ClosedRange<UInt16> = 0x80...0xFF
    /// Every valid LE PSM.
    public static let leRange: ClosedRange<UInt16> = 0x01...0xFF
    /// "Any free dynamic PSM" (listeners only).
    public static let automatic = L2CAPPSM(0)

    /// Parses `0x81` (hex) or `129` (decimal) and checks it against `allowedRange`.
    /// - Throws: ``BLEParseError/invalidPSM(_:reason:)``.
    public init(parsing text: String, allowedRange: ClosedRange<UInt16> = L2CAPPSM.dynamicRange) throws(BLEParseError) {
        let value: UInt16?
        if text.hasPrefix("0x") || text.hasPrefix("0X") {
            let digits = text.dropFirst(2)
            value = digits.isEmpty || digits.utf8.count > 4 ? nil : UInt16(digits, radix: 16)
        } else {
            value = text.utf8.count > 5 ? nil : UInt16(text)
        }
        guard let value else { throw .invalidPSM(text, reason: "expected a number such as 0x81 or 129") }
        guard allowedRange.contains(value) else {
            throw .invalidPSM(
                text,
                reason: "must be in 0x\(Self.hex(allowedRange.lowerBound))-0x\(Self.hex(allowedRange.upperBound))")
        }
        rawValue = value
    }

    public var isDynamic: Bool { Self.dynamicRange.contains(rawValue) }

    /// `0x81`.
    public var description: String { "0x" + Self.hex(rawValue) }

    static func hex(_ value: UInt16) -> String {
        let text = String(value, radix: 16)
        return text.count < 2 ? "0" + text : text
    }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

// MARK: - Peer address

/// A BLE peer an LE credit-based channel can be opened to: device address, address type and PSM.
///
/// Text forms (see docs/ble.md):
/// - route hop value (``description``): `AA:BB:CC:DD:EE:FF/random,psm=0x81`; the type may be omitted when
///   parsing (public is assumed), and is always printed. The Ockam address is `4#` followed by this.
/// - multiaddr (``multiaddrDescription``): `/ble/AA:BB:CC:DD:EE:FF-random/psm/0x81`; the `-public`/`-random`
///   suffix may be omitted when parsing (public), and `-random` is printed only for random addresses.
public struct BLEPeerAddress: Hashable, Sendable, CustomStringConvertible {
    public var device: BluetoothDeviceAddress
    public var addressType: BLEAddressType
    public var psm: L2CAPPSM

    public init(device: BluetoothDeviceAddress, addressType: BLEAddressType = .public, psm: L2CAPPSM) {
        self.device = device
        self.addressType = addressType
        self.psm = psm
    }

    /// Longest text accepted by the parsers (a bound, not a format rule).
    static let maxTextLength = 128

    /// Parses either text form (a hop value `AA:BB:CC:DD:EE:FF[/public|/random],psm=0x81`, or a multiaddr
    /// `/ble/AA:BB:CC:DD:EE:FF[-public|-random]/psm/0x81`).
    /// - Parameter allowedPSMs: the PSM range accepted (dynamic PSMs by default).
    /// - Throws: ``BLEParseError``; the error names the part that is wrong.
    public init(parsing text: String, allowedPSMs: ClosedRange<UInt16> = L2CAPPSM.dynamicRange) throws(BLEParseError) {
        guard text.utf8.count <= Self.maxTextLength else {
            throw .invalidPeerAddress(text, reason: "longer than \(Self.maxTextLength) bytes")
        }
        if text.hasPrefix("/") {
            try self.init(parsingMultiaddr: text, allowedPSMs: allowedPSMs)
            return
        }
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
        guard items.count == 2 else {
            throw .invalidPeerAddress(text, reason: "expected <bdaddr>[/public|/random],psm=<psm>")
        }
        let (device, type) = try Self.parseDevice(String(items[0]), separator: "/")
        let option = items[1].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard option.count == 2, option[0] == "psm" else {
            throw .invalidPeerAddress(text, reason: "expected psm=<psm> after the device address")
        }
        self.init(
            device: device, addressType: type, psm: try L2CAPPSM(parsing: String(option[1]), allowedRange: allowedPSMs))
    }

    private init(parsingMultiaddr text: String, allowedPSMs: ClosedRange<UInt16>) throws(BLEParseError) {
        let parts = text.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "ble", parts[2] == "psm" else {
            throw .invalidPeerAddress(text, reason: "expected /ble/<bdaddr>[-random]/psm/<psm>")
        }
        let (device, type) = try Self.parseDevice(String(parts[1]), separator: "-")
        self.init(
            device: device, addressType: type, psm: try L2CAPPSM(parsing: String(parts[3]), allowedRange: allowedPSMs))
    }

    /// Splits `AA:BB:CC:DD:EE:FF[<sep>public|<sep>random]`.
    static func parseDevice(_ text: String, separator: Character) throws(BLEParseError) -> (
        BluetoothDeviceAddress, BLEAddressType
    ) {
        let parts = text.split(separator: separator, maxSplits: 1, omittingEmptySubsequences: false)
        let device = try BluetoothDeviceAddress(parsing: String(parts[0]))
        guard parts.count == 2 else { return (device, .public) }
        guard let type = BLEAddressType(rawValue: String(parts[1])) else {
            throw .invalidAddressType(String(parts[1]))
        }
        return (device, type)
    }

    /// The route hop value: `AA:BB:CC:DD:EE:FF/random,psm=0x81`.
    public var description: String { "\(device)/\(addressType),psm=\(psm)" }

    /// The multiaddr form: `/ble/AA:BB:CC:DD:EE:FF/psm/0x81` (public) or `/ble/AA:BB:CC:DD:EE:FF-random/psm/0x81`.
    public var multiaddrDescription: String {
        "/ble/\(device)\(addressType == .random ? "-random" : "")/psm/\(psm)"
    }

    /// The Ockam address of this peer: transport type 4 (`TransportType.ble`) and ``description``.
    public var address: Address { Address(.ble, description) }

    /// Parses the value of a `4#…` address.
    /// - Throws: ``BLEParseError/notBLEAddress(_:)`` for another transport type, or a parse error.
    public init(_ address: Address, allowedPSMs: ClosedRange<UInt16> = L2CAPPSM.dynamicRange) throws(BLEParseError) {
        guard address.transportType == .ble else { throw .notBLEAddress(address.description) }
        try self.init(parsing: address.valueString, allowedPSMs: allowedPSMs)
    }
}

extension UInt8 {
    /// `0-9`, `a-f`, `A-F` (`UInt8(_:radix:)` alone also accepts a sign).
    var isHexDigit: Bool {
        (0x30...0x39).contains(self) || (0x41...0x46).contains(self) || (0x61...0x66).contains(self)
    }
}
