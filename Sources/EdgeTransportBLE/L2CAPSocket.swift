// Kernel L2CAP LE socket plumbing: sockaddr_l2, socket options, and the ordered set-up plans for listeners and
// connectors. AF_UNIX SOCK_SEQPACKET endpoints stand in for L2CAP in tests.
import CBlueZ
import EdgePOSIX

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// MARK: - sockaddr_l2

/// An L2CAP socket address (`struct sockaddr_l2`) for LE: device, address type, PSM (and CID, 0 for CoC).
///
/// PSM and CID are held in host order; ``sockaddr`` converts them to the little-endian wire order the kernel
/// expects (`htobs`) and reverses the device address into `bdaddr_t` order.
struct L2CAPSocketAddress: Hashable, Sendable, CustomStringConvertible {
    var device: BluetoothDeviceAddress
    var addressType: BLEAddressType
    var psm: UInt16
    var cid: UInt16 = 0

    init(device: BluetoothDeviceAddress, addressType: BLEAddressType, psm: UInt16, cid: UInt16 = 0) {
        self.device = device
        self.addressType = addressType
        self.psm = psm
        self.cid = cid
    }

    init(peer: BLEPeerAddress) {
        self.init(device: peer.device, addressType: peer.addressType, psm: peer.psm.rawValue)
    }

    /// The C struct.
    var sockaddr: sockaddr_l2 {
        var raw = sockaddr_l2()
        raw.l2_family = sa_family_t(AF_BLUETOOTH)
        raw.l2_psm = psm.littleEndian
        raw.l2_cid = cid.littleEndian
        raw.l2_bdaddr_type = addressType.kernelValue
        let b = device.kernelOrderBytes
        raw.l2_bdaddr.b = (b[0], b[1], b[2], b[3], b[4], b[5])
        return raw
    }

    /// Reads a struct filled in by the kernel; nil for a non-LE address type.
    init?(_ raw: sockaddr_l2) {
        guard raw.l2_family == sa_family_t(AF_BLUETOOTH), let type = BLEAddressType(kernelValue: raw.l2_bdaddr_type)
        else { return nil }
        let b = raw.l2_bdaddr.b
        guard let device = BluetoothDeviceAddress(kernelOrderBytes: [b.0, b.1, b.2, b.3, b.4, b.5]) else { return nil }
        self.init(device: device, addressType: type, psm: UInt16(littleEndian: raw.l2_psm),
                  cid: UInt16(littleEndian: raw.l2_cid))
    }

    var description: String { "\(device)/\(addressType),psm=\(L2CAPPSM(psm))" }
}

// MARK: - Endpoints and set-up plans

/// Where a SEQPACKET socket binds or connects: a kernel L2CAP address, or (tests) an abstract AF_UNIX name whose
/// "MTUs" are given since AF_UNIX has no `BT_SNDMTU`.
enum SocketEndpoint: Hashable, Sendable, CustomStringConvertible {
    case l2cap(L2CAPSocketAddress)
    case unix(name: String, sendMTU: Int, receiveMTU: Int)

    var description: String {
        switch self {
        case .l2cap(let a): return "\(a)"
        case .unix(let name, _, _): return "unix:@\(name)"
        }
    }
}

/// One step of setting up an L2CAP socket. Plans are pure so that their order is tested.
enum SocketSetupStep: Hashable, Sendable {
    case open
    case bind
    /// `BT_RCVMTU`: the kernel accepts it only once `bind` gave the socket an LE source address type
    /// (EINVAL before), and only before the channel is connected (EISCONN after).
    case setReceiveMTU(Int)
    /// `BT_SECURITY`, before `listen`/`connect` (accepted channels inherit it from the listener).
    case setSecurity(BLESecurityLevel)
    /// `SO_SNDBUF` (or `SO_SNDBUFFORCE`): large SDUs need room for all their PDUs (docs/ble.md §4).
    case raiseSendBuffer(Int)
    case listen(backlog: Int32)
    case connect
    /// `BT_SNDMTU`/`BT_RCVMTU` of the connected channel.
    case readMTUs
}

enum SocketSetupPlan {
    /// socket → bind → RCVMTU → SECURITY → listen.
    static func listener(_ config: BLEListenConfiguration) -> [SocketSetupStep] {
        var steps: [SocketSetupStep] = [.open, .bind]
        if let mtu = config.receiveMTU { steps.append(.setReceiveMTU(mtu)) }
        steps.append(.setSecurity(config.security))
        steps.append(.listen(backlog: config.backlog))
        return steps
    }

    /// For each accepted socket: SNDBUF (not inherited from the listener) → read MTUs.
    static func accepted(sendBuffer: Int) -> [SocketSetupStep] {
        [.raiseSendBuffer(sendBuffer), .readMTUs]
    }

    /// socket → bind (source adapter, PSM 0) → RCVMTU → SECURITY → SNDBUF → connect → read MTUs.
    static func connector(_ config: BLEConnectConfiguration, sendBuffer: Int) -> [SocketSetupStep] {
        var steps: [SocketSetupStep] = [.open, .bind]
        if let mtu = config.receiveMTU { steps.append(.setReceiveMTU(mtu)) }
        steps += [.setSecurity(config.security), .raiseSendBuffer(sendBuffer), .connect, .readMTUs]
        return steps
    }
}

// MARK: - System calls

/// Thin syscall wrappers over a SEQPACKET socket: retry on EINTR, throw ``BLETransportError/system(call:errno:)``.
enum SeqPacketSocket {
    static let socketType = Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)

    /// Opens a non-blocking, close-on-exec SEQPACKET socket for `endpoint`'s family.
    static func open(for endpoint: SocketEndpoint) throws(BLETransportError) -> Int32 {
        switch endpoint {
        case .l2cap: return try openL2CAP()
        case .unix:
            let fd = socket(AF_UNIX, socketType, 0)
            guard fd >= 0 else { throw .system(call: "socket(AF_UNIX)", errno: errno) }
            return fd
        }
    }

    static func openL2CAP() throws(BLETransportError) -> Int32 {
        let fd = socket(AF_BLUETOOTH, socketType, BTPROTO_L2CAP)
        guard fd >= 0 else {
            let code = errno
            if code == EAFNOSUPPORT { throw .bluetoothUnsupported }
            throw .system(call: "socket(AF_BLUETOOTH, SOCK_SEQPACKET, BTPROTO_L2CAP)", errno: code)
        }
        return fd
    }

    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)  // never retried: Linux releases the descriptor even on EINTR
    }

    static func withSockaddr<R>(
        _ endpoint: SocketEndpoint, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R
    ) -> R {
        switch endpoint {
        case .l2cap(let address):
            var raw = address.sockaddr
            return withUnsafePointer(to: &raw) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_l2>.size)) }
            }
        case .unix(let name, _, _):
            var raw = sockaddr_un()
            raw.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(name.utf8.prefix(100))
            withUnsafeMutableBytes(of: &raw.sun_path) { path in
                path[0] = 0  // abstract namespace: no file, gone when the socket closes
                for (i, b) in bytes.enumerated() { path[i + 1] = b }
            }
            let length = MemoryLayout<sa_family_t>.size + 1 + bytes.count
            return withUnsafePointer(to: &raw) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(length)) }
            }
        }
    }

    static func bind(_ fd: Int32, to endpoint: SocketEndpoint) throws(BLETransportError) {
        let result = withSockaddr(endpoint) { Glibc.bind(fd, $0, $1) }
        guard result == 0 else { throw .system(call: "bind(\(endpoint))", errno: errno) }
    }

    static func listen(_ fd: Int32, backlog: Int32) throws(BLETransportError) {
        guard Glibc.listen(fd, backlog) == 0 else { throw .system(call: "listen", errno: errno) }
    }

    /// `accept4` with CLOEXEC|NONBLOCK. Returns nil on EAGAIN (nothing pending).
    static func accept(_ fd: Int32) throws(BLETransportError) -> Int32? {
        let child = retryingOnInterrupt {
            cbluez_accept4(fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue))
        }
        if child >= 0 { return child }
        let code = errno
        if code == EAGAIN || code == EWOULDBLOCK { return nil }
        throw .system(call: "accept4", errno: code)
    }

    /// Starts a non-blocking connect. Returns true if it completed at once, false if in progress.
    static func startConnect(_ fd: Int32, to endpoint: SocketEndpoint) throws(BLETransportError) -> Bool {
        // A connect interrupted by a signal goes on in the background (EINTR, then EALREADY if repeated): in progress.
        let result = withSockaddr(endpoint) { Glibc.connect(fd, $0, $1) }
        if result == 0 { return true }
        let code = errno
        if code == EINPROGRESS || code == EAGAIN || code == EINTR { return false }
        throw .connectFailed(peer: "\(endpoint)", errno: code)
    }

    static func socketError(_ fd: Int32) throws(BLETransportError) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length) == 0 else {
            throw .system(call: "getsockopt(SO_ERROR)", errno: errno)
        }
        return value
    }

    static func setInt(_ fd: Int32, level: Int32, name: Int32, _ value: Int32, call: String) throws(BLETransportError) {
        var v = value
        guard setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw .system(call: call, errno: errno)
        }
    }

    static func getInt(_ fd: Int32, level: Int32, name: Int32, call: String) throws(BLETransportError) -> Int32 {
        var v: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, level, name, &v, &length) == 0 else { throw .system(call: call, errno: errno) }
        return v
    }

    /// `BT_RCVMTU` (a 16-bit option).
    static func setReceiveMTU(_ fd: Int32, _ mtu: Int) throws(BLETransportError) {
        var value = UInt16(clamping: mtu)
        guard setsockopt(fd, SOL_BLUETOOTH, BT_RCVMTU, &value, socklen_t(MemoryLayout<UInt16>.size)) == 0 else {
            throw .system(call: "setsockopt(BT_RCVMTU=\(mtu))", errno: errno)
        }
    }

    static func getMTU(_ fd: Int32, option: Int32, call: String) throws(BLETransportError) -> Int {
        var value: UInt16 = 0
        var length = socklen_t(MemoryLayout<UInt16>.size)
        guard getsockopt(fd, SOL_BLUETOOTH, option, &value, &length) == 0 else {
            throw .system(call: call, errno: errno)
        }
        return Int(value)
    }

    /// The connected channel's MTUs: `BT_SNDMTU` (the peer's receive MTU) and our `BT_RCVMTU`; for the AF_UNIX
    /// stand-in, the MTUs its endpoint declares.
    static func readMTUs(_ fd: Int32, endpoint: SocketEndpoint) throws(BLETransportError) -> (send: Int, receive: Int) {
        switch endpoint {
        case .l2cap:
            return (
                try getMTU(fd, option: BT_SNDMTU, call: "getsockopt(BT_SNDMTU)"),
                try getMTU(fd, option: BT_RCVMTU, call: "getsockopt(BT_RCVMTU)")
            )
        case .unix(_, let send, let receive): return (send, receive)
        }
    }

    /// `BT_SECURITY` with `bt_security { level, key_size = 0 }`.
    static func setSecurity(_ fd: Int32, _ level: BLESecurityLevel) throws(BLETransportError) {
        var value = bt_security()
        value.level = level.kernelValue
        value.key_size = 0
        guard setsockopt(fd, SOL_BLUETOOTH, BT_SECURITY, &value, socklen_t(MemoryLayout<bt_security>.size)) == 0
        else { throw .system(call: "setsockopt(BT_SECURITY=\(level))", errno: errno) }
    }

    /// The link's current `BT_SECURITY` level (what the kernel negotiated for the LE connection), or nil if the
    /// socket cannot say (not an L2CAP socket).
    static func security(_ fd: Int32) -> BLESecurityLevel? {
        var value = bt_security()
        var length = socklen_t(MemoryLayout<bt_security>.size)
        guard getsockopt(fd, SOL_BLUETOOTH, BT_SECURITY, &value, &length) == 0 else { return nil }
        return BLESecurityLevel(kernelValue: value.level)
    }

    /// Raises the send buffer: `SO_SNDBUFFORCE` (needs CAP_NET_ADMIN) and else `SO_SNDBUF` (capped by
    /// `net.core.wmem_max`). Returns the effective size the kernel reports (twice the request, Linux-style).
    @discardableResult
    static func raiseSendBuffer(_ fd: Int32, to bytes: Int) -> Int {
        var value = Int32(clamping: bytes)
        if setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &value, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, socklen_t(MemoryLayout<Int32>.size))
        }
        return Int((try? getInt(fd, level: SOL_SOCKET, name: SO_SNDBUF, call: "getsockopt(SO_SNDBUF)")) ?? 0)
    }

    static func localAddress(_ fd: Int32) throws(BLETransportError) -> L2CAPSocketAddress? {
        var raw = sockaddr_l2()
        var length = socklen_t(MemoryLayout<sockaddr_l2>.size)
        let result = withUnsafeMutablePointer(to: &raw) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else { throw .system(call: "getsockname", errno: errno) }
        return L2CAPSocketAddress(raw)
    }

    static func peerAddress(_ fd: Int32) -> L2CAPSocketAddress? {
        var raw = sockaddr_l2()
        var length = socklen_t(MemoryLayout<sockaddr_l2>.size)
        let result = withUnsafeMutablePointer(to: &raw) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard result == 0, raw.l2_family == sa_family_t(AF_BLUETOOTH) else { return nil }
        return L2CAPSocketAddress(raw)
    }
}

/// The MTUs of a connected channel and the SDU limit derived from them.
struct LinkMTUs: Hashable, Sendable {
    /// The peer's receive MTU (`BT_SNDMTU`): no SDU we send may exceed it.
    var send: Int
    /// Our receive MTU (`BT_RCVMTU`): the largest SDU the link reader accepts (it reads with `MSG_TRUNC`, which reports a
    /// longer SDU's real length).
    var receive: Int
    /// The largest SDU we send: min(peer MTU, configured cap, send buffer / ``sendBufferDivisor``).
    var sduLimit: Int

    /// A send buffer must hold every PDU (plus skb overhead) of one SDU, or `send` blocks until L2CAP's 40 s
    /// timeout (pitfall 7 in the rig notes). 1/32 of the buffer leaves room for MPS down to ~64 bytes.
    static let sendBufferDivisor = 32

    static func sduLimit(sendMTU: Int, sendBuffer: Int?, cap: Int?) -> Int {
        var limit = sendMTU
        if let cap { limit = min(limit, cap) }
        if let sendBuffer, sendBuffer > 0 { limit = min(limit, sendBuffer / sendBufferDivisor) }
        return max(limit, BLEFraming.minimumSDUSize)
    }
}
