// A bare L2CAP LE credit-based channel, set up exactly as BLETransport sets up its links, then read and written
// directly: the reference the transport is measured against in the virtual rig (bench suite 7). Package access only:
// it is a measuring tool for this package's executables, not part of the library's API.
import CBlueZ
import EdgePOSIX

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A connected L2CAP LE CoC socket with blocking I/O, one SDU per call.
///
/// The socket goes through the same ``SocketSetupPlan`` steps as a transport link (bind, `BT_RCVMTU`,
/// `BT_SECURITY`, the raised send buffer, connect or accept, the MTUs), and ``sduLimit`` is the limit a link would
/// use, so a transfer over it differs from one through ``BLETransport`` only by what the transport adds.
package struct BLERawChannel: Sendable {
    package let fd: Int32
    /// The peer's receive MTU (`BT_SNDMTU`).
    package let sendMTU: Int
    /// Our receive MTU (`BT_RCVMTU`).
    package let receiveMTU: Int
    /// The largest SDU ``send(_:)`` accepts: the limit a transport link on this socket would use.
    package let sduLimit: Int

    /// Takes a set-up socket; on failure the caller still owns (and closes) `fd`.
    init(fd: Int32, mtus: LinkMTUs) throws(BLETransportError) {
        // The set-up ran on a non-blocking socket (connect with a timeout); the transfer itself blocks.
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0 else {
            throw .system(call: "fcntl(O_NONBLOCK off)", errno: errno)
        }
        self.fd = fd
        sendMTU = mtus.send
        receiveMTU = mtus.receive
        sduLimit = mtus.sduLimit
    }

    /// Connects as a transport link to `config.peer` would (reconnection is not attempted).
    package static func connect(
        _ config: BLEConnectConfiguration, options: BLETransportOptions = BLETransportOptions()
    ) async throws(BLETransportError) -> BLERawChannel {
        try await connect(config, endpoint: .l2cap(L2CAPSocketAddress(peer: config.peer)), options: options)
    }

    /// `endpoint` replaces the L2CAP address (tests use AF_UNIX).
    static func connect(
        _ config: BLEConnectConfiguration, endpoint: SocketEndpoint, options: BLETransportOptions
    ) async throws(BLETransportError) -> BLERawChannel {
        let fd = try SeqPacketSocket.open(for: endpoint)
        do {
            let mtus = try await BLETransport.setUpConnector(fd, config, endpoint: endpoint, options: options)
            return try BLERawChannel(fd: fd, mtus: mtus)
        } catch {
            SeqPacketSocket.close(fd)
            throw error
        }
    }

    /// Sends `bytes` as one SDU; fails with ``BLETransportError/sduTooLarge(size:limit:)`` above ``sduLimit``.
    package func send(_ bytes: UnsafeRawBufferPointer) throws(BLETransportError) {
        guard bytes.count <= sduLimit else { throw .sduTooLarge(size: bytes.count, limit: sduLimit) }
        let n = retryingOnInterrupt { Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
        if n == bytes.count { return }
        throw .system(call: "send(\(bytes.count) bytes)", errno: n < 0 ? errno : EMSGSIZE)
    }

    /// Receives one SDU into `buffer` (give it ``receiveMTU`` bytes or more). Returns its size; 0 when the peer
    /// closed the channel.
    package func receive(into buffer: UnsafeMutableRawBufferPointer) throws(BLETransportError) -> Int {
        let n = retryingOnInterrupt { recv(fd, buffer.baseAddress, buffer.count, 0) }
        if n >= 0 { return n }
        let code = errno
        if code == ECONNRESET || code == ENOTCONN { return 0 }
        throw .system(call: "recv", errno: code)
    }

    package func close() { SeqPacketSocket.close(fd) }
}

/// A listening L2CAP LE CoC socket (``SocketSetupPlan/listener(_:)``) handing out ``BLERawChannel``s.
package struct BLERawListener: Sendable {
    package let fd: Int32
    /// The PSM listened on (the kernel's choice for ``L2CAPPSM/automatic``).
    package let psm: L2CAPPSM
    let endpoint: SocketEndpoint
    let options: BLETransportOptions

    package init(_ config: BLEListenConfiguration, options: BLETransportOptions = BLETransportOptions()) throws(BLETransportError) {
        try self.init(config, endpoint: nil, options: options)
    }

    /// `endpoint` replaces the L2CAP address (tests use AF_UNIX).
    init(_ config: BLEListenConfiguration, endpoint: SocketEndpoint?, options: BLETransportOptions) throws(BLETransportError) {
        (fd, psm, self.endpoint) = try BLETransport.openListener(config, endpoint: endpoint)
        self.options = options
    }

    /// Waits (up to `timeout`; nil: forever) for the next connection and sets it up as the transport would.
    package func accept(timeout: Duration? = nil) async throws(BLETransportError) -> BLERawChannel {
        while true {
            if case .timedOut = try await FDWait.wait(fd: fd, events: Int16(POLLIN), timeout: timeout) {
                throw .system(call: "accept (nothing connected within \(timeout.map { "\($0)" } ?? "-"))", errno: ETIMEDOUT)
            }
            guard let child = try SeqPacketSocket.accept(fd) else { continue }
            do {
                let setup = try BLETransport.setUpAccepted(child, endpoint: endpoint, psm: psm, options: options)
                return try BLERawChannel(fd: child, mtus: setup.mtus)
            } catch {
                SeqPacketSocket.close(child)
                throw error
            }
        }
    }

    package func close() { SeqPacketSocket.close(fd) }
}
