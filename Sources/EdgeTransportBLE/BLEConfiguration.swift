// Listener/connector configuration, security levels, adapters, and the `--ble-listen`/`--ble-connect` spec parsers.

/// The `BT_SECURITY` level of a channel (what the kernel requires of the LE link before the channel opens).
public enum BLESecurityLevel: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// No encryption or authentication required. The corresponding C constant is `BT_SECURITY_LOW`.
    case low
    /// Encrypted link, unauthenticated pairing allowed (Just Works). `BT_SECURITY_MEDIUM`.
    case medium
    /// Encrypted link with authenticated (MITM-protected) pairing. `BT_SECURITY_HIGH`.
    case high
    /// Authenticated LE Secure Connections pairing with a 128-bit key. `BT_SECURITY_FIPS`.
    case fips

    /// The `bt_security.level` value.
    public var kernelValue: UInt8 {
        switch self {
        case .low: return 1
        case .medium: return 2
        case .high: return 3
        case .fips: return 4
        }
    }

    public init?(kernelValue: UInt8) {
        guard let level = Self.allCases.first(where: { $0.kernelValue == kernelValue }) else { return nil }
        self = level
    }

    public var description: String { rawValue }
}

extension BLESecurityLevel: Comparable {
    public static func < (a: BLESecurityLevel, b: BLESecurityLevel) -> Bool { a.kernelValue < b.kernelValue }
}

/// Which local adapter (controller) a socket uses.
public enum BLEAdapterSelector: Hashable, Sendable, CustomStringConvertible {
    /// Any adapter (`BDADDR_ANY`): the kernel picks one for outgoing connections and listens on all.
    case any
    /// `hciN`: resolved to its address through the kernel when the socket is bound.
    case index(Int)
    /// The adapter with this public address.
    case address(BluetoothDeviceAddress)

    /// Parses `hciN`, `any`, or a device address.
    /// - Throws: ``BLEParseError/invalidAdapter(_:)``.
    public init(parsing text: String) throws(BLEParseError) {
        if text == "any" {
            self = .any
        } else if text.hasPrefix("hci"), let n = Int(text.dropFirst(3)), (0..<1024).contains(n),
            text.dropFirst(3).allSatisfy(\.isASCII)
        {
            self = .index(n)
        } else if let address = try? BluetoothDeviceAddress(parsing: text) {
            self = .address(address)
        } else {
            throw .invalidAdapter(text)
        }
    }

    public var description: String {
        switch self {
        case .any: return "any"
        case .index(let n): return "hci\(n)"
        case .address(let a): return "\(a)"
        }
    }
}

/// Inclusive MTU bounds of an LE credit-based channel (Core spec: 23…65535).
public enum BLEMTU {
    public static let minimum = 23
    public static let maximum = 65535
    /// What the kernel uses when `BT_RCVMTU` is not set.
    public static let kernelDefault = 672
}

/// A listener: which adapter and PSM, our receive MTU, and the security level (`--ble-listen`).
public struct BLEListenConfiguration: Hashable, Sendable, CustomStringConvertible {
    public var adapter: BLEAdapterSelector
    /// The PSM to listen on; ``L2CAPPSM/automatic`` lets the kernel pick a free dynamic one.
    public var psm: L2CAPPSM
    /// Our receive MTU (`BT_RCVMTU`); nil keeps the kernel default (672).
    public var receiveMTU: Int?
    public var security: BLESecurityLevel
    /// `listen(2)` backlog.
    public var backlog: Int32

    public init(
        adapter: BLEAdapterSelector = .any, psm: L2CAPPSM, receiveMTU: Int? = nil, security: BLESecurityLevel = .low,
        backlog: Int32 = 8
    ) {
        self.adapter = adapter
        self.psm = psm
        self.receiveMTU = receiveMTU
        self.security = security
        self.backlog = backlog
    }

    /// Parses `[hciN,]psm=0x81[,mtu=…][,security=medium][,adapter=…][,backlog=…]`.
    ///
    /// `psm=auto` lets the kernel choose. The adapter may be given as a leading bare `hciN`/`any`/address item or
    /// as `adapter=`. Keys: `adapter`, `psm` (required), `mtu`, `security`, `backlog`.
    /// - Parameter allowedPSMs: the PSM range accepted (dynamic PSMs by default).
    /// - Throws: ``BLEParseError`` naming the bad key or value.
    public init(parsing spec: String, allowedPSMs: ClosedRange<UInt16> = L2CAPPSM.dynamicRange) throws(BLEParseError) {
        var items = try SpecItems(spec)
        var adapter = BLEAdapterSelector.any
        if let bare = items.leadingBareItem {
            adapter = try BLEAdapterSelector(parsing: bare)
        }
        if let text = try items.take("adapter") {
            guard items.leadingBareItem == nil else { throw .duplicateKey("adapter") }
            adapter = try BLEAdapterSelector(parsing: text)
        }
        guard let psmText = try items.take("psm") else { throw .missingKey("psm") }
        let psm: L2CAPPSM
        if psmText == "auto" {
            psm = .automatic
        } else {
            psm = try Self.parsePSM(psmText, allowedPSMs: allowedPSMs)
        }
        let mtu = try items.take("mtu").map { (t: String) throws(BLEParseError) in try parseMTU(t) }
        let security = try items.take("security").map { (t: String) throws(BLEParseError) in try parseSecurity(t) }
        let backlog = try items.take("backlog").map { (t: String) throws(BLEParseError) -> Int32 in
            guard let n = Int32(t), (1...128).contains(n) else {
                throw .invalidValue(key: "backlog", value: t, reason: "expected 1-128")
            }
            return n
        }
        try items.finish()
        self.init(adapter: adapter, psm: psm, receiveMTU: mtu, security: security ?? .low, backlog: backlog ?? 8)
    }

    static func parsePSM(_ text: String, allowedPSMs: ClosedRange<UInt16>) throws(BLEParseError) -> L2CAPPSM {
        do {
            return try L2CAPPSM(parsing: text, allowedRange: allowedPSMs)
        } catch {
            if case .invalidPSM(_, let reason) = error { throw .invalidValue(key: "psm", value: text, reason: reason) }
            throw error
        }
    }

    /// The canonical spec (parses back to an equal value).
    public var description: String {
        var out = "\(adapter),psm=\(psm == .automatic ? "auto" : psm.description)"
        if let receiveMTU { out += ",mtu=\(receiveMTU)" }
        out += ",security=\(security)"
        if backlog != 8 { out += ",backlog=\(backlog)" }
        return out
    }
}

/// A connector: the peer, our adapter, MTU and security, and whether to keep the link up (`--ble-connect`).
public struct BLEConnectConfiguration: Hashable, Sendable, CustomStringConvertible {
    public var peer: BLEPeerAddress
    public var adapter: BLEAdapterSelector
    /// Our receive MTU (`BT_RCVMTU`); nil keeps the kernel default (672).
    public var receiveMTU: Int?
    public var security: BLESecurityLevel
    /// Reconnect (capped exponential backoff with jitter) when the link drops.
    public var reconnect: Bool

    public init(
        peer: BLEPeerAddress, adapter: BLEAdapterSelector = .any, receiveMTU: Int? = nil,
        security: BLESecurityLevel = .low, reconnect: Bool = true
    ) {
        self.peer = peer
        self.adapter = adapter
        self.receiveMTU = receiveMTU
        self.security = security
        self.reconnect = reconnect
    }

    /// Parses `<bdaddr>[/public|/random],psm=0x81[,adapter=hciN][,mtu=…][,security=…][,reconnect=on|off]`.
    /// - Throws: ``BLEParseError`` naming the bad key or value.
    public init(parsing spec: String, allowedPSMs: ClosedRange<UInt16> = L2CAPPSM.dynamicRange) throws(BLEParseError) {
        var items = try SpecItems(spec)
        guard let deviceText = items.leadingBareItem else { throw .missingKey("device address") }
        let (device, type) = try BLEPeerAddress.parseDevice(deviceText, separator: "/")
        guard let psmText = try items.take("psm") else { throw .missingKey("psm") }
        let psm = try BLEListenConfiguration.parsePSM(psmText, allowedPSMs: allowedPSMs)
        let adapter = try items.take("adapter").map { (t: String) throws(BLEParseError) in
            try BLEAdapterSelector(parsing: t)
        }
        let mtu = try items.take("mtu").map { (t: String) throws(BLEParseError) in try parseMTU(t) }
        let security = try items.take("security").map { (t: String) throws(BLEParseError) in try parseSecurity(t) }
        let reconnect = try items.take("reconnect").map { (t: String) throws(BLEParseError) -> Bool in
            switch t {
            case "on", "true", "yes", "1": return true
            case "off", "false", "no", "0": return false
            default: throw .invalidValue(key: "reconnect", value: t, reason: "expected on or off")
            }
        }
        try items.finish()
        self.init(
            peer: BLEPeerAddress(device: device, addressType: type, psm: psm), adapter: adapter ?? .any,
            receiveMTU: mtu, security: security ?? .low, reconnect: reconnect ?? true)
    }

    /// The canonical spec (parses back to an equal value).
    public var description: String {
        var out = "\(peer.device)/\(peer.addressType),psm=\(peer.psm),adapter=\(adapter)"
        if let receiveMTU { out += ",mtu=\(receiveMTU)" }
        out += ",security=\(security),reconnect=\(reconnect ? "on" : "off")"
        return out
    }
}

private func parseMTU(_ text: String) throws(BLEParseError) -> Int {
    guard text.utf8.count <= 6, let n = Int(text), (BLEMTU.minimum...BLEMTU.maximum).contains(n) else {
        throw .invalidValue(key: "mtu", value: text, reason: "expected \(BLEMTU.minimum)-\(BLEMTU.maximum)")
    }
    return n
}

private func parseSecurity(_ text: String) throws(BLEParseError) -> BLESecurityLevel {
    guard let level = BLESecurityLevel(rawValue: text) else {
        throw .invalidValue(key: "security", value: text, reason: "expected low, medium, high or fips")
    }
    return level
}

/// A comma-separated spec: an optional leading bare item, then unique `key=value` items.
private struct SpecItems {
    let spec: String
    let leadingBareItem: String?
    private var options: [(key: String, value: String)]

    static let maxLength = 512

    init(_ spec: String) throws(BLEParseError) {
        self.spec = spec
        guard !spec.isEmpty, spec.utf8.count <= Self.maxLength else { throw .emptySpec(spec) }
        var bare: String?
        var options: [(key: String, value: String)] = []
        for (i, item) in spec.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            guard !item.isEmpty else { throw .emptySpec(spec) }
            let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if kv.count == 1 {
                // Only the first item may be bare (the adapter or the device address).
                guard i == 0 else { throw .unknownKey(String(item)) }
                bare = String(item)
                continue
            }
            let key = String(kv[0])
            guard !key.isEmpty else { throw .emptySpec(spec) }
            if options.contains(where: { $0.key == key }) { throw .duplicateKey(key) }
            guard !kv[1].isEmpty else { throw .invalidValue(key: key, value: "", reason: "empty value") }
            options.append((key, String(kv[1])))
        }
        leadingBareItem = bare
        self.options = options
    }

    /// Removes and returns the value of `key`.
    mutating func take(_ key: String) throws(BLEParseError) -> String? {
        guard let index = options.firstIndex(where: { $0.key == key }) else { return nil }
        return options.remove(at: index).value
    }

    /// Fails on the first key nobody took.
    func finish() throws(BLEParseError) {
        if let unknown = options.first { throw .unknownKey(unknown.key) }
    }
}
