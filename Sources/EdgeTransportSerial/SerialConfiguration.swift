// Serial port settings and their spec-string form (`/dev/ttyUSB0,baud=115200,flow=rtscts,...`).
import EdgeConfig
import SystemPackage

/// A line speed in bits per second. Rates in ``standardRates`` use the classic `Bnnn` termios constants;
/// anything else (250000, 12000000, ...) is set with termios2 and `BOTHER`.
public struct BaudRate: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible,
    ExpressibleByIntegerLiteral
{
    public var rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    public init(_ rawValue: Int) { self.rawValue = rawValue }
    public init(integerLiteral value: Int) { rawValue = value }

    /// Supported range: 50 bit/s ... 12 Mbit/s (termios2 accepts more; USB adapters top out around 12 Mbaud).
    public static let supportedRange = 50...12_000_000

    /// Rates with a `Bnnn` constant in Linux termios.
    public static let standardRates: [Int] = [
        50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400,
        460800, 500000, 576000, 921600, 1_000_000, 1_152_000, 1_500_000, 2_000_000, 2_500_000, 3_000_000,
        3_500_000, 4_000_000,
    ]

    /// True when the rate has a `Bnnn` constant; otherwise it needs `BOTHER`.
    public var isStandard: Bool { Self.standardRates.contains(rawValue) }

    public var description: String { String(rawValue) }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    /// Parses `115200`, `250k`, `1M`, `12M` (k = 1000, M = 1000000).
    public init?(parsing text: String) {
        var digits = Substring(text)
        var multiplier = 1
        if let last = digits.last {
            if last == "k" || last == "K" {
                multiplier = 1000
                digits = digits.dropLast()
            } else if last == "m" || last == "M" {
                multiplier = 1_000_000
                digits = digits.dropLast()
            }
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(digits),
            value <= Int.max / multiplier
        else { return nil }
        rawValue = value * multiplier
    }
}

/// Number of data bits per character.
public enum SerialDataBits: Int, Hashable, Sendable, CaseIterable {
    case five = 5
    case six = 6
    case seven = 7
    case eight = 8
}

/// Parity bit.
public enum SerialParity: String, Hashable, Sendable, CaseIterable {
    case none, even, odd
}

/// Stop bits.
public enum SerialStopBits: Int, Hashable, Sendable, CaseIterable {
    case one = 1
    case two = 2
}

/// Hardware flow control.
public enum SerialFlowControl: String, Hashable, Sendable, CaseIterable {
    case none
    /// RTS/CTS (`CRTSCTS`): the UART deasserts RTS when our receive buffer is full and stops sending while CTS is off.
    case rtsCts = "rtscts"
}

/// What to do with a modem-control output line (DTR or RTS) when the port opens.
///
/// Linux asserts DTR and RTS when a tty is opened; boards like ESP32 dev kits and Arduinos wire them to reset
/// and boot-mode pins, so the right choice depends on the board.
public enum SerialLineAction: String, Hashable, Sendable, CaseIterable {
    /// Assert the line (`on`).
    case assert = "on"
    /// Deassert the line (`off`).
    case deassert = "off"
    /// Leave it as the kernel set it on open (`keep`).
    case leave = "keep"
}

/// Everything about one serial port: the device, line settings, and the link role and limit.
///
/// Apply the line settings with ``SerialPort/open(_:)`` (or ``SerialPort/apply(_:to:)``). The spec-string form,
/// used by `ockam-edge node run --serial <spec>`, is the device path followed by comma-separated `key=value`
/// options (see ``init(parsing:)``); ``description`` prints it back in canonical form.
public struct SerialConfiguration: Hashable, Sendable, CustomStringConvertible {
    /// The device: preferably a stable name (`/dev/serial/by-id/...`, `/dev/ockam-edge/...`).
    public var path: FilePath
    /// The port's name in routes: `64#<name>` reaches the device on this port. Default: the path's last component.
    public var name: String
    public var baudRate: BaudRate
    public var dataBits: SerialDataBits
    public var parity: SerialParity
    public var stopBits: SerialStopBits
    public var flowControl: SerialFlowControl
    public var dtr: SerialLineAction
    /// Must be ``SerialLineAction/leave`` with RTS/CTS flow control (the UART drives RTS then).
    public var rts: SerialLineAction
    /// Listener (gateway side, waits for the device's hello) or connector (device side, repeats hello).
    public var role: SerialLinkRole
    /// Largest decoded frame this side accepts, announced in the hello (64 ... 1 MiB).
    public var maxFrameSize: Int
    /// How long this side stays silent before it sends a KEEPALIVE, announced in the hello (the peer declares the link
    /// down after 3 × this without a valid frame): nil takes the transport's default (10 s); `.zero` is off (never).
    public var keepalive: Duration?

    public init(
        path: FilePath, name: String? = nil, baudRate: BaudRate = 115_200, dataBits: SerialDataBits = .eight,
        parity: SerialParity = .none, stopBits: SerialStopBits = .one, flowControl: SerialFlowControl = .none,
        dtr: SerialLineAction = .leave, rts: SerialLineAction = .leave, role: SerialLinkRole = .listener,
        maxFrameSize: Int = SerialFraming.defaultMaxFrameSize, keepalive: Duration? = nil
    ) {
        self.path = path
        self.name = name ?? Self.defaultName(for: path)
        self.baudRate = baudRate
        self.dataBits = dataBits
        self.parity = parity
        self.stopBits = stopBits
        self.flowControl = flowControl
        self.dtr = dtr
        self.rts = rts
        self.role = role
        self.maxFrameSize = maxFrameSize
        self.keepalive = keepalive
    }

    /// The keys the spec string accepts, in canonical order.
    public static let keys = [
        "name", "mode", "baud", "data", "parity", "stop", "flow", "dtr", "rts", "max-frame", "keepalive",
    ]

    /// The keepalive intervals a spec may set (the hello carries milliseconds in 32 bits; a day is plenty).
    public static let keepaliveRange: ClosedRange<Duration> = .milliseconds(100) ... .seconds(86_400)

    /// Parses `PATH[,key=value]...`.
    ///
    /// | key | values | default |
    /// |---|---|---|
    /// | `name` | `[A-Za-z0-9._:-]{1,64}` (route name: `64#<name>`) | last path component |
    /// | `mode` | `listen`, `connect` | `listen` |
    /// | `baud` | 50 ... 12000000, also `250k`, `1M` | 115200 |
    /// | `data` | 5, 6, 7, 8 | 8 |
    /// | `parity` | `none`, `even`, `odd` | `none` |
    /// | `stop` | 1, 2 | 1 |
    /// | `flow` | `none`, `rtscts` | `none` |
    /// | `dtr`, `rts` | `on`, `off`, `keep` | `keep` |
    /// | `max-frame` | 64 ... 1048576 | 16384 |
    /// | `keepalive` | a duration from 100ms to 24h (`500ms`, `10s`, `2m`), or `off` | the transport's, 10s |
    ///
    /// - Throws: ``SerialConfigurationError`` naming the offending key or value.
    public init(parsing spec: String) throws(SerialConfigurationError) {
        let parts = spec.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard let first = parts.first, !first.isEmpty else { throw .missingPath }
        guard !first.contains("=") else { throw .missingPath }
        guard first.hasPrefix("/") else { throw .invalidPath(first) }
        self.init(path: FilePath(first))
        var seen = Set<String>()
        for option in parts.dropFirst() {
            guard let eq = option.firstIndex(of: "="), eq != option.startIndex else {
                throw .malformedOption(option)
            }
            let key = String(option[..<eq]).lowercased()
            let value = String(option[option.index(after: eq)...])
            guard Self.keys.contains(key) else { throw .unknownKey(key) }
            guard seen.insert(key).inserted else { throw .duplicateKey(key) }
            func invalid(_ expected: String) -> SerialConfigurationError {
                .invalidValue(key: key, value: value, expected: expected)
            }
            switch key {
            case "name":
                guard Self.isValidName(value) else { throw invalid("1-64 characters from A-Z a-z 0-9 . _ : -") }
                name = value
            case "mode":
                guard let role = SerialLinkRole(rawValue: value.lowercased()) else {
                    throw invalid("listen or connect")
                }
                self.role = role
            case "baud":
                guard let rate = BaudRate(parsing: value), BaudRate.supportedRange.contains(rate.rawValue) else {
                    throw invalid("a rate from 50 to 12000000 (e.g. 115200, 250k, 1M)")
                }
                baudRate = rate
            case "data":
                guard let bits = Int(value).flatMap(SerialDataBits.init(rawValue:)) else {
                    throw invalid("5, 6, 7 or 8")
                }
                dataBits = bits
            case "parity":
                guard let parity = SerialParity(rawValue: value.lowercased()) else {
                    throw invalid("none, even or odd")
                }
                self.parity = parity
            case "stop":
                guard let bits = Int(value).flatMap(SerialStopBits.init(rawValue:)) else { throw invalid("1 or 2") }
                stopBits = bits
            case "flow":
                let lowered = value.lowercased()
                guard let flow = SerialFlowControl(rawValue: lowered == "rts/cts" ? "rtscts" : lowered) else {
                    throw invalid("none or rtscts")
                }
                flowControl = flow
            case "dtr", "rts":
                guard let action = Self.lineAction(value) else { throw invalid("on, off or keep") }
                if key == "dtr" { dtr = action } else { rts = action }
            case "max-frame":
                guard let size = Int(value),
                    (SerialFraming.minimumMaxFrameSize...SerialFraming.implementationMaxFrameSize).contains(size)
                else {
                    throw invalid(
                        "\(SerialFraming.minimumMaxFrameSize)...\(SerialFraming.implementationMaxFrameSize) bytes")
                }
                maxFrameSize = size
            case "keepalive":
                if ["off", "0", "never"].contains(value.lowercased()) {
                    keepalive = .zero
                } else {
                    guard let interval = Quantity.duration(value), Self.keepaliveRange.contains(interval) else {
                        throw invalid("a duration from 100ms to 24h (e.g. 10s), or off")
                    }
                    keepalive = interval
                }
            default:
                throw .unknownKey(key)
            }
        }
        if !seen.contains("name") && !Self.isValidName(name) {
            throw .invalidValue(
                key: "name", value: name, expected: "a port name: the path's last component is not usable, set name=")
        }
        try validate()
    }

    /// Checks combinations the parser cannot see key by key.
    public func validate() throws(SerialConfigurationError) {
        guard Self.isValidName(name) else {
            throw .invalidValue(key: "name", value: name, expected: "1-64 characters from A-Z a-z 0-9 . _ : -")
        }
        guard BaudRate.supportedRange.contains(baudRate.rawValue) else {
            throw .invalidValue(key: "baud", value: String(baudRate.rawValue), expected: "50...12000000")
        }
        guard (SerialFraming.minimumMaxFrameSize...SerialFraming.implementationMaxFrameSize).contains(maxFrameSize)
        else {
            throw .invalidValue(key: "max-frame", value: String(maxFrameSize), expected: "64...1048576")
        }
        if let keepalive, keepalive != .zero, !Self.keepaliveRange.contains(keepalive) {
            throw .invalidValue(key: "keepalive", value: "\(keepalive)", expected: "100ms...24h or off")
        }
        if flowControl == .rtsCts && rts != .leave {
            throw .conflict("rts=\(rts.rawValue) cannot be combined with flow=rtscts (the UART drives RTS)")
        }
    }

    /// The canonical spec string: path, then every key in ``keys`` order (`keepalive` only when set: its default is the
    /// transport's).
    public var description: String {
        var parts = [path.string]
        parts.append("name=\(name)")
        parts.append("mode=\(role.rawValue)")
        parts.append("baud=\(baudRate.rawValue)")
        parts.append("data=\(dataBits.rawValue)")
        parts.append("parity=\(parity.rawValue)")
        parts.append("stop=\(stopBits.rawValue)")
        parts.append("flow=\(flowControl.rawValue)")
        parts.append("dtr=\(dtr.rawValue)")
        parts.append("rts=\(rts.rawValue)")
        parts.append("max-frame=\(maxFrameSize)")
        if let keepalive {
            parts.append("keepalive=" + (keepalive == .zero ? "off" : Quantity.text(of: keepalive)))
        }
        return parts.joined(separator: ",")
    }

    /// `8N1`-style summary.
    public var lineSummary: String {
        let parityLetter: String
        switch parity {
        case .none: parityLetter = "N"
        case .even: parityLetter = "E"
        case .odd: parityLetter = "O"
        }
        return "\(baudRate.rawValue) \(dataBits.rawValue)\(parityLetter)\(stopBits.rawValue)"
            + (flowControl == .rtsCts ? " rtscts" : "")
    }

    static func lineAction(_ value: String) -> SerialLineAction? {
        switch value.lowercased() {
        case "on", "1", "assert", "high": return .assert
        case "off", "0", "deassert", "low": return .deassert
        case "keep", "leave": return .leave
        default: return nil
        }
    }

    /// A port name usable as an address value and in spec strings.
    public static func isValidName(_ name: String) -> Bool {
        guard (1...64).contains(name.utf8.count) else { return false }
        return name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2E || byte == 0x5F || byte == 0x3A || byte == 0x2D
        }
    }

    /// The default route name: the last path component (`ttyUSB0`, `usb-FTDI_..._A1B2-if00-port0`).
    public static func defaultName(for path: FilePath) -> String {
        path.lastComponent?.string ?? path.string
    }
}

/// A bad serial spec string or configuration; every case names the key at fault.
public enum SerialConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The spec does not start with a device path.
    case missingPath
    /// The device path is not absolute.
    case invalidPath(String)
    /// An option is not `key=value`.
    case malformedOption(String)
    /// The key is not one of ``SerialConfiguration/keys``.
    case unknownKey(String)
    /// The key appears twice.
    case duplicateKey(String)
    /// The value is not allowed for the key.
    case invalidValue(key: String, value: String, expected: String)
    /// Two settings contradict each other.
    case conflict(String)

    public var description: String {
        switch self {
        case .missingPath: return "serial spec must start with the device path, e.g. /dev/ttyUSB0,baud=115200"
        case .invalidPath(let path): return "serial device path '\(path)' must be absolute"
        case .malformedOption(let option): return "serial option '\(option)' is not key=value"
        case .unknownKey(let key):
            return "unknown serial option '\(key)' (known: \(SerialConfiguration.keys.joined(separator: ", ")))"
        case .duplicateKey(let key): return "serial option '\(key)' given twice"
        case .invalidValue(let key, let value, let expected):
            return "invalid value '\(value)' for serial option '\(key)': expected \(expected)"
        case .conflict(let why): return "conflicting serial options: \(why)"
        }
    }
}
