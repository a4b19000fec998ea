// Listing local Bluetooth adapters through the kernel's HCI ioctls (HCIGETDEVLIST / HCIGETDEVINFO).
import CBlueZ

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A local Bluetooth controller as the kernel reports it (`struct hci_dev_info`).
public struct BLEAdapterInfo: Hashable, Sendable, CustomStringConvertible {
    /// N in `hciN`.
    public var index: Int
    /// `hciN`.
    public var name: String
    /// The controller's public address (00:00:00:00:00:00 until the controller has been initialised).
    public var address: BluetoothDeviceAddress
    /// Powered up (`HCI_UP`).
    public var isUp: Bool
    /// ACL MTU and buffer count reported by the controller (the LE ACL MTU may differ).
    public var aclMTU: Int
    public var aclPackets: Int

    public init(index: Int, name: String, address: BluetoothDeviceAddress, isUp: Bool, aclMTU: Int, aclPackets: Int) {
        self.index = index
        self.name = name
        self.address = address
        self.isUp = isUp
        self.aclMTU = aclMTU
        self.aclPackets = aclPackets
    }

    /// `hci0  00:AA:01:00:00:00  up  acl-mtu=192:1`.
    public var description: String {
        "\(name)  \(address)  \(isUp ? "up" : "down")  acl-mtu=\(aclMTU):\(aclPackets)"
    }
}

/// The local adapters (`ockam-edge ble list`).
public enum BLEAdapters {
    /// Lists the adapters the kernel knows, in index order.
    ///
    /// Uses an `AF_BLUETOOTH, SOCK_RAW, BTPROTO_HCI` socket, which needs no privileges for these two ioctls.
    /// - Throws: ``BLETransportError/bluetoothUnsupported`` when the kernel has no Bluetooth (EAFNOSUPPORT),
    ///   or ``BLETransportError/system(call:errno:)``.
    public static func list() throws(BLETransportError) -> [BLEAdapterInfo] {
        let fd = try openHCISocket()
        defer { SeqPacketSocket.close(fd) }
        var request = cbluez_hci_dev_list()
        request.dev_num = UInt16(HCI_MAX_DEV)
        guard cbluez_hci_get_dev_list(fd, &request) == 0 else {
            throw .system(call: "ioctl(HCIGETDEVLIST)", errno: errno)
        }
        let count = min(Int(request.dev_num), Int(HCI_MAX_DEV))
        let ids: [UInt16] = withUnsafeBytes(of: &request.dev_req) { raw in
            let entries = raw.bindMemory(to: hci_dev_req.self)
            return (0..<count).map { entries[$0].dev_id }
        }
        var adapters: [BLEAdapterInfo] = []
        for id in ids {
            // An adapter can vanish between the two ioctls (unplugged, btvirt stopped): skip it.
            if let info = try? info(fd: fd, index: Int(id)) { adapters.append(info) }
        }
        return adapters.sorted { $0.index < $1.index }
    }

    /// The adapter `hciN`.
    /// - Throws: ``BLETransportError/noSuchAdapter(_:)`` if it does not exist.
    public static func info(index: Int) throws(BLETransportError) -> BLEAdapterInfo {
        let fd = try openHCISocket()
        defer { SeqPacketSocket.close(fd) }
        return try info(fd: fd, index: index)
    }

    /// The address a selector stands for (`BDADDR_ANY` for ``BLEAdapterSelector/any``).
    public static func address(of selector: BLEAdapterSelector) throws(BLETransportError) -> BluetoothDeviceAddress {
        switch selector {
        case .any: return .any
        case .address(let address): return address
        case .index(let n):
            let adapter = try info(index: n)
            guard adapter.address != .any else { throw .noSuchAdapter("hci\(n) (no address yet: is it powered?)") }
            return adapter.address
        }
    }

    static func openHCISocket() throws(BLETransportError) -> Int32 {
        let fd = socket(AF_BLUETOOTH, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), BTPROTO_HCI)
        guard fd >= 0 else {
            let code = errno
            if code == EAFNOSUPPORT { throw .bluetoothUnsupported }
            throw .system(call: "socket(AF_BLUETOOTH, SOCK_RAW, BTPROTO_HCI)", errno: code)
        }
        return fd
    }

    static func info(fd: Int32, index: Int) throws(BLETransportError) -> BLEAdapterInfo {
        guard (0..<Int(UInt16.max)).contains(index) else { throw .noSuchAdapter("hci\(index)") }
        var raw = hci_dev_info()
        raw.dev_id = UInt16(index)
        guard cbluez_hci_get_dev_info(fd, &raw) == 0 else {
            let code = errno
            if code == ENODEV { throw .noSuchAdapter("hci\(index)") }
            throw .system(call: "ioctl(HCIGETDEVINFO, hci\(index))", errno: code)
        }
        let name = withUnsafeBytes(of: &raw.name) { bytes in
            String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        let b = raw.bdaddr.b
        let address = BluetoothDeviceAddress(kernelOrderBytes: [b.0, b.1, b.2, b.3, b.4, b.5]) ?? .any
        return BLEAdapterInfo(
            index: Int(raw.dev_id), name: name.isEmpty ? "hci\(index)" : name, address: address,
            isUp: raw.flags & cbluez_hci_flag_up() != 0, aclMTU: Int(raw.acl_mtu), aclPackets: Int(raw.acl_pkts))
    }
}
