// EdgeTransportBLE: Ockam routing over Bluetooth LE credit-based L2CAP channels (BlueZ kernel sockets) on swift-nio.
// Long (~850 lines): links, connectors with reconnect, listeners and their shared registry in one type; the link
// registry, sender and receive loop are the parts the transports' shared link skeleton is to take over.
import EdgeSync
import EdgeNode
import EdgeRouting
import Logging
import NIOCore
import NIOPosix
import CBlueZ

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Options of the BLE transport.
public struct BLETransportOptions: Sendable {
    /// How long an outgoing L2CAP connect may take (the kernel's own limit is 40 s).
    public var connectTimeout: Duration = .seconds(20)
    /// Largest routing message sent or reassembled (docs/ble.md §3). Secure-channel handshakes need ~1 KiB.
    public var maxMessageSize: Int = 256 * 1024
    /// Most links at once, both directions (each has a reader thread and up to 8 SDUs buffered). A device can open
    /// many channels over one LE connection; links past this are closed as they come up and counted
    /// (`linksRefusedOverCap`).
    public var maxLinks: Int = 64
    /// Limits for decoding routing messages.
    public var routingLimits: RoutingLimits = .default
    /// Send buffer requested for every link (`SO_SNDBUFFORCE`, else `SO_SNDBUF`); see ``LinkMTUs``.
    public var sendBufferSize: Int = 2 * 1024 * 1024
    /// Optional cap on the SDU size below the peer's MTU.
    public var maxSDUSize: Int?
    /// Backoff of connectors between reconnect attempts.
    public var reconnectBackoff = Backoff()
    /// Backoff of listeners re-binding after their socket failed.
    public var listenerBackoff = Backoff(initial: .milliseconds(500), maximum: .seconds(30))
    /// A link that stayed up this long resets the reconnect backoff; shorter ones keep escalating it, so a flapping
    /// link cannot cause a retry storm.
    public var stableLinkTime: Duration = .seconds(10)
    /// PSMs accepted in `4#…` hops.
    public var allowedPSMs: ClosedRange<UInt16> = L2CAPPSM.dynamicRange
    /// Adapter, receive MTU and security of links the resolver opens for `4#…` hops.
    public var resolverAdapter: BLEAdapterSelector = .any
    public var resolverReceiveMTU: Int?
    public var resolverSecurity: BLESecurityLevel = .low
    /// Retries of one connect whose channel the kernel opened below the security asked for (``BLETransportError/insufficientSecurity``),
    /// and the pause before each. The first channel over an LE connection that was open unencrypted can come up at
    /// the connection's old level while the kernel pairs; once pairing has finished the connection is encrypted and
    /// a new channel opens at the level asked for (rig, Linux 6.1). See ``BLESecurityRetry``.
    public var securityRetry = BLESecurityRetry()
    /// Tests: a pause just before a new link is announced, which widens the window in which its receive loop could run
    /// first if the order were wrong.
    var announceDelay: Duration?

    public init() {}
}

/// Ockam's BLE transport (transport type 4) over L2CAP LE credit-based channels.
///
/// Mirrors the TCP transport: each link gets a sender worker at a random local address that pops itself from the
/// onward route and writes the message as SDUs; the receive loop reassembles SDUs, decodes the routing message,
/// prepends the link's sender address to the return route and hands it to the node. `4#AA:BB:CC:DD:EE:FF/random,psm=0x81`
/// hops are resolved by connecting (or reusing the live link to that peer). See docs/ble.md.
public final class BLETransport: TransportResolver, Sendable {
    public var transportType: TransportType { .ble }

    public let node: Node
    public let group: any EventLoopGroup
    public let options: BLETransportOptions
    let logger: Logger

    struct Link: Sendable {
        let info: BLELinkInfo
        let channel: any Channel
        /// Ends when the link is down and cleaned up.
        let done: Task<Void, Never>
    }

    private struct State: ~Copyable {
        var links: [Int: Link] = [:]
        var outgoing: [BLEPeerAddress: Int] = [:]
        var dialing: [BLEPeerAddress: Task<Link, any Error>] = [:]
        var maintained: [BLEPeerAddress: Int] = [:]
        var tasks: [Int: Task<Void, Never>] = [:]
        var nextTaskID = 0
        var nextLinkID = 1
        var subscribers: [Int: AsyncStream<BLELinkEvent>.Continuation] = [:]
        var nextSubscriberID = 0
        /// Tests: peers reached over AF_UNIX instead of L2CAP.
        var endpointOverrides: [BLEPeerAddress: SocketEndpoint] = [:]
        /// The least link security some devices need (paired devices: what they were paired with).
        var requiredSecurity: [BluetoothDeviceAddress: BLESecurityLevel] = [:]
        var closed = false
    }

    private let state = EdgeMutex(State())
    let counterBox = CounterBox()

    public init(
        node: Node, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        options: BLETransportOptions = BLETransportOptions(), logger: Logger? = nil
    ) {
        self.node = node
        self.group = group
        self.options = options
        var logger = logger ?? node.logger
        logger[metadataKey: "transport"] = "ble"
        self.logger = logger
        node.registerTransport(self)
    }

    // MARK: Status

    public var links: [BLELinkInfo] { state.withLock { $0.links.values.map(\.info) }.sorted { $0.id < $1.id } }

    public var counters: BLECounters { counterBox.snapshot }

    /// A new subscription to link and listener events (each subscriber gets every event after it subscribed;
    /// the newest 256 are kept if it falls behind). The stream finishes at ``shutdown()``.
    public func events() -> AsyncStream<BLELinkEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: BLELinkEvent.self, bufferingPolicy: .bufferingNewest(256))
        let id: Int? = state.withLock { state in
            if state.closed { return nil }
            let id = state.nextSubscriberID
            state.nextSubscriberID += 1
            state.subscribers[id] = continuation
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    private func emit(_ event: BLELinkEvent) {
        logger.info("\(event)")
        let subscribers = state.withLock { Array($0.subscribers.values) }
        for subscriber in subscribers { subscriber.yield(event) }
    }

    // MARK: Resolving

    /// Resolves `4#AA:BB:CC:DD:EE:FF[/random],psm=0x81` to the sender address of the live link to that peer,
    /// connecting first if there is none.
    public func resolve(_ address: Address) async throws -> Address {
        let peer: BLEPeerAddress
        do {
            peer = try BLEPeerAddress(address, allowedPSMs: options.allowedPSMs)
        } catch {
            throw BLETransportError.invalidAddress(error)
        }
        let config = BLEConnectConfiguration(
            peer: peer, adapter: options.resolverAdapter, receiveMTU: options.resolverReceiveMTU,
            security: options.resolverSecurity, reconnect: false)
        return try await dialShared(config).info.senderAddress
    }

    // MARK: Connecting

    /// Connects to a peer once and returns the link's sender address. With `config.reconnect`, the link is then
    /// kept up: when it drops, the transport reconnects with ``BLETransportOptions/reconnectBackoff`` and emits
    /// ``BLELinkEvent/linkUp(_:)`` with the new sender address.
    /// - Throws: ``BLETransportError`` if the first attempt fails (nothing is retried then; see ``maintain(_:)``).
    @discardableResult
    public func connect(_ config: BLEConnectConfiguration) async throws -> BLELinkInfo {
        let link = try await dialShared(config)
        if config.reconnect { startMaintaining(config, initial: link) }
        return link.info
    }

    /// Keeps a link to `config.peer` up in the background, starting now, whatever the first attempts give (for
    /// devices that boot before their gateway). Follow it through ``events()``. With `config.reconnect` off it makes
    /// one attempt, in the background, and does not re-establish the link once it is down.
    public func maintain(_ config: BLEConnectConfiguration) {
        startMaintaining(config, initial: nil)
    }

    /// Stops maintaining the link to `peer` and closes it.
    public func disconnect(_ peer: BLEPeerAddress) async {
        let (task, channel): (Task<Void, Never>?, (any Channel)?) = state.withLock { state in
            let task = state.maintained.removeValue(forKey: peer).flatMap { state.tasks[$0] }
            let channel = state.outgoing[peer].flatMap { state.links[$0]?.channel }
            return (task, channel)
        }
        task?.cancel()
        try? await channel?.close()
        await task?.value
    }

    private func startMaintaining(_ config: BLEConnectConfiguration, initial: Link?) {
        let previous: Task<Void, Never>? = state.withLock { state in
            state.maintained[config.peer].flatMap { state.tasks[$0] }
        }
        previous?.cancel()
        let id = spawn { await self.maintainLoop(config, initial: initial) }
        if let id { state.withLock { $0.maintained[config.peer] = id } }
    }

    private func maintainLoop(_ config: BLEConnectConfiguration, initial: Link?) async {
        var current = initial
        var attempt = 0
        var reason = "not connected"
        var first = initial == nil
        while !Task.isCancelled && !isClosed {
            if let link = current {
                let upSince = ContinuousClock.now
                await link.done.value
                if ContinuousClock.now - upSince >= options.stableLinkTime { attempt = 0 }
                reason = "link down"
                current = nil
                if Task.isCancelled || isClosed || !config.reconnect { break }
            }
            if first {
                first = false
            } else {
                guard config.reconnect else {
                    logger.warning("connecting to \(config.peer) failed (reconnect=off: not retried): \(reason)")
                    break
                }
                let delay = options.reconnectBackoff.delay(attempt: attempt)
                attempt += 1
                counterBox.update { $0.reconnectAttempts += 1 }
                emit(.reconnectScheduled(peer: config.peer, attempt: attempt, delay: delay, reason: reason))
                do { try await Task.sleep(for: delay) } catch { break }
            }
            do {
                current = try await dialShared(config)
            } catch {
                reason = "\(error)"
                logger.debug("connect to \(config.peer) failed: \(error)")
            }
        }
    }

    private var isClosed: Bool { state.withLock { $0.closed } }

    /// Returns the live outgoing link to the peer, joins a dial in progress, or dials.
    private func dialShared(_ config: BLEConnectConfiguration) async throws -> Link {
        let peer = config.peer
        let task: Task<Link, any Error> = try state.withLock { (state) throws(BLETransportError) in
            if state.closed { throw .shutDown }
            if let id = state.outgoing[peer], let link = state.links[id] { return Task { link } }
            if let pending = state.dialing[peer] { return pending }
            let task = Task { try await self.dial(config) }
            state.dialing[peer] = task
            return task
        }
        let result = await task.result
        finishDial(peer, task)
        return try result.get()
    }

    /// Forgets a finished dial (a synchronous step after the dial's suspension; see EdgeMutex.withLock).
    private func finishDial(_ peer: BLEPeerAddress, _ task: Task<Link, any Error>) {
        state.withLock { state in
            if state.dialing[peer] == task { state.dialing[peer] = nil }
        }
    }

    private func endpoint(for peer: BLEPeerAddress) -> SocketEndpoint {
        state.withLock { $0.endpointOverrides[peer] } ?? .l2cap(L2CAPSocketAddress(peer: peer))
    }

    // MARK: Per-device security

    /// Requires links to or from `device` to be at `level` at least (nil: no requirement beyond the connection's
    /// own). Connects to it ask the kernel for that level (it pairs or encrypts first, or fails the connect); a
    /// link it opens to one of our listeners at a lower level is closed and counted (`linksRefusedSecurity`).
    /// A paired device keeps the level it was paired with this way (docs/pairing.md).
    public func requireSecurity(_ level: BLESecurityLevel?, of device: BluetoothDeviceAddress) {
        state.withLock { state in
            if let level, level > .low { state.requiredSecurity[device] = level } else { state.requiredSecurity[device] = nil }
        }
    }

    /// The level ``requireSecurity(_:of:)`` set for `device`, if any.
    public func requiredSecurity(of device: BluetoothDeviceAddress) -> BLESecurityLevel? {
        state.withLock { $0.requiredSecurity[device] }
    }

    /// What a device record asks of its BLE links: the address in its `transport` (`ble:<bdaddr>/<type>,psm=<psm>`,
    /// as pairing stores it) and its `linkSecurity` level; nil when it was not paired over BLE or needs no more
    /// than `low`.
    public static func pairedDeviceRequirement(
        transport: String, linkSecurity: String?
    ) -> (BluetoothDeviceAddress, BLESecurityLevel)? {
        guard transport.hasPrefix("ble:"), let text = linkSecurity, let level = BLESecurityLevel(rawValue: text),
            level > .low,
            let peer = try? BLEPeerAddress(parsing: String(transport.dropFirst("ble:".count)), allowedPSMs: 1...0xFFFF)
        else { return nil }
        return (peer.device, level)
    }

    /// `config` with its security raised to what its peer requires.
    func effective(_ config: BLEConnectConfiguration) -> BLEConnectConfiguration {
        var config = config
        if let required = requiredSecurity(of: config.peer.device), required > config.security { config.security = required }
        return config
    }

    /// Whether an accepted link at `level` (nil: the socket could not say) may stay up for a device that requires
    /// `required`.
    static func admits(linkLevel level: BLESecurityLevel?, required: BLESecurityLevel?) -> Bool {
        guard let required else { return true }
        guard let level else { return false }
        return level >= required
    }

    /// One connect, retried as ``BLETransportOptions/securityRetry`` says when the channel opened below the
    /// security asked for.
    private func dial(_ config: BLEConnectConfiguration) async throws(BLETransportError) -> Link {
        var retries = 0
        while true {
            do {
                return try await dialOnce(config)
            } catch {
                guard let pause = options.securityRetry.pause(after: error, retries: retries), !isClosed else { throw error }
                retries += 1
                logger.info("\(error); retrying in \(pause) (the kernel may have paired meanwhile; retry \(retries))")
                do { try await Task.sleep(for: pause) } catch { throw .shutDown }
            }
        }
    }

    /// One connect attempt following ``SocketSetupPlan/connector(_:sendBuffer:)``.
    private func dialOnce(_ config: BLEConnectConfiguration) async throws(BLETransportError) -> Link {
        let config = effective(config)
        let endpoint = endpoint(for: config.peer)
        let fd: Int32
        let linkMTUs: LinkMTUs
        do {
            fd = try SeqPacketSocket.open(for: endpoint)
        } catch {
            counterBox.update { $0.connectFailures += 1 }
            throw error
        }
        do {
            linkMTUs = try await Self.setUpConnector(fd, config, endpoint: endpoint, options: options)
        } catch {
            SeqPacketSocket.close(fd)
            counterBox.update { $0.connectFailures += 1 }
            throw error
        }
        // Check what the kernel gave us, not only what we asked for: a channel over an LE connection that was already
        // open unencrypted came up at `low` although BT_SECURITY asked for more (rig, Linux 6.1).
        let level = endpoint.isUnix ? nil : SeqPacketSocket.security(fd)
        if !endpoint.isUnix, config.security > .low, !Self.admits(linkLevel: level, required: config.security) {
            SeqPacketSocket.close(fd)
            counterBox.update { $0.connectFailures += 1 }
            throw .insufficientSecurity(peer: "\(config.peer)", link: level, required: config.security)
        }
        logger.debug("connected to \(config.peer) mtu=\(linkMTUs.send)/\(linkMTUs.receive) sdu=\(linkMTUs.sduLimit)")
        return try await attach(fd: fd, peer: config.peer, outgoing: true, mtus: linkMTUs, security: level)
    }

    /// Runs ``SocketSetupPlan/connector(_:sendBuffer:)`` on an open socket, connect included, and returns the link's
    /// MTUs. Shared with ``BLERawChannel`` so that the raw reference is set up exactly like a link.
    static func setUpConnector(
        _ fd: Int32, _ config: BLEConnectConfiguration, endpoint: SocketEndpoint, options: BLETransportOptions
    ) async throws(BLETransportError) -> LinkMTUs {
        var sendBuffer: Int?
        var mtus: (send: Int, receive: Int) = (BLEMTU.kernelDefault, BLEMTU.kernelDefault)
        for step in SocketSetupPlan.connector(config, sendBuffer: options.sendBufferSize) {
            switch (step, endpoint) {
            case (.open, _), (.listen, _): break
            case (.bind, .l2cap):
                let source = try BLEAdapters.address(of: config.adapter)
                try SeqPacketSocket.bind(fd, to: .l2cap(L2CAPSocketAddress(device: source, addressType: .public, psm: 0)))
            case (.setReceiveMTU(let mtu), .l2cap): try SeqPacketSocket.setReceiveMTU(fd, mtu)
            case (.setSecurity(let level), .l2cap): try SeqPacketSocket.setSecurity(fd, level)
            case (.raiseSendBuffer(let bytes), _): sendBuffer = SeqPacketSocket.raiseSendBuffer(fd, to: bytes)
            case (.connect, _):
                try await connectSocket(fd, to: endpoint, peer: config.peer, timeout: options.connectTimeout)
            case (.readMTUs, _): mtus = try SeqPacketSocket.readMTUs(fd, endpoint: endpoint)
            case (.bind, .unix), (.setReceiveMTU, .unix), (.setSecurity, .unix): break
            }
        }
        return makeMTUs(send: mtus.send, receive: mtus.receive, sendBuffer: sendBuffer, cap: options.maxSDUSize)
    }

    private static func connectSocket(
        _ fd: Int32, to endpoint: SocketEndpoint, peer: BLEPeerAddress, timeout: Duration
    ) async throws(BLETransportError) {
        if try SeqPacketSocket.startConnect(fd, to: endpoint) { return }
        switch try await FDWait.wait(fd: fd, events: Int16(POLLOUT), timeout: timeout) {
        case .timedOut:
            throw .connectTimeout(peer: "\(peer)", timeout)
        case .ready:
            let code = try SeqPacketSocket.socketError(fd)
            guard code == 0 else { throw .connectFailed(peer: "\(peer)", errno: code) }
        }
    }

    static func makeMTUs(send: Int, receive: Int, sendBuffer: Int?, cap: Int?) -> LinkMTUs {
        // A send MTU the kernel does not know yet reads as 0: fall back to the LE minimum, which always works.
        let send = send >= BLEMTU.minimum ? send : BLEMTU.minimum
        let receive = receive >= BLEMTU.minimum ? receive : BLEMTU.kernelDefault
        return LinkMTUs(
            send: send, receive: receive,
            sduLimit: LinkMTUs.sduLimit(sendMTU: send, sendBuffer: sendBuffer, cap: cap))
    }

    // MARK: Listening

    /// Binds and listens, then serves every accepted link until ``shutdown()``. If the listening socket fails
    /// (adapter removed, power cycled), it is re-bound with ``BLETransportOptions/listenerBackoff``.
    /// - Returns: the PSM listened on (the kernel's choice for ``L2CAPPSM/automatic``).
    /// - Throws: ``BLETransportError`` if the first bind/listen fails (e.g. ``BLETransportError/bluetoothUnsupported``).
    @discardableResult
    public func listen(_ config: BLEListenConfiguration) async throws -> L2CAPPSM {
        try await listen(config, endpoint: nil)
    }

    /// `endpoint` replaces the L2CAP address (tests listen on AF_UNIX).
    func listen(_ config: BLEListenConfiguration, endpoint: SocketEndpoint?) async throws(BLETransportError) -> L2CAPPSM {
        if isClosed { throw .shutDown }
        let (fd, psm, bound) = try Self.openListener(config, endpoint: endpoint)
        guard spawn({ await self.acceptLoop(config, fd: fd, endpoint: bound) }) != nil else {
            SeqPacketSocket.close(fd)
            throw .shutDown
        }
        emit(.listenerUp(config, psm: psm))
        return psm
    }

    /// Follows ``SocketSetupPlan/listener(_:)``. Returns the socket, the PSM, and the endpoint actually bound.
    static func openListener(
        _ config: BLEListenConfiguration, endpoint override: SocketEndpoint?
    ) throws(BLETransportError) -> (Int32, L2CAPPSM, SocketEndpoint) {
        var endpoint = override ?? .l2cap(L2CAPSocketAddress(device: .any, addressType: .public, psm: config.psm.rawValue))
        let fd = try SeqPacketSocket.open(for: endpoint)
        var psm = config.psm
        do {
            for step in SocketSetupPlan.listener(config) {
                switch (step, endpoint) {
                case (.bind, .l2cap(var address)):
                    address.device = try BLEAdapters.address(of: config.adapter)
                    try SeqPacketSocket.bind(fd, to: .l2cap(address))
                    if psm == .automatic, let local = try SeqPacketSocket.localAddress(fd) {
                        psm = L2CAPPSM(local.psm)
                        address.psm = local.psm  // a re-bind after a failure keeps the PSM the kernel chose
                    }
                    endpoint = .l2cap(address)
                case (.bind, .unix): try SeqPacketSocket.bind(fd, to: endpoint)
                case (.setReceiveMTU(let mtu), .l2cap): try SeqPacketSocket.setReceiveMTU(fd, mtu)
                case (.setSecurity(let level), .l2cap): try SeqPacketSocket.setSecurity(fd, level)
                case (.listen(let backlog), _): try SeqPacketSocket.listen(fd, backlog: backlog)
                default: break
                }
            }
        } catch {
            SeqPacketSocket.close(fd)
            throw error
        }
        return (fd, psm, endpoint)
    }

    private func acceptLoop(_ config: BLEListenConfiguration, fd initialFD: Int32, endpoint: SocketEndpoint) async {
        var fd = initialFD
        defer { if fd >= 0 { SeqPacketSocket.close(fd) } }
        let listenerPSM = endpoint.psm ?? config.psm
        while !Task.isCancelled && !isClosed {
            do {
                let outcome = try await FDWait.wait(fd: fd, events: Int16(POLLIN), timeout: nil)
                guard case .ready(let revents) = outcome else { continue }
                if revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 {
                    let code = (try? SeqPacketSocket.socketError(fd)) ?? 0
                    throw BLETransportError.system(call: "poll(listening socket)", errno: code == 0 ? EIO : code)
                }
                while let child = try SeqPacketSocket.accept(fd) {
                    await accepted(child, endpoint: endpoint, psm: listenerPSM)
                }
            } catch let error as BLETransportError {
                if error == .cancelled { break }
                if case .system(_, let code) = error, [ECONNABORTED, EPROTO, EPERM, EINTR].contains(code) {
                    logger.debug("transient accept error: \(error)")
                    continue
                }
                if case .system(_, let code) = error, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(code) {
                    // Out of resources: wait instead of spinning, keep the socket.
                    logger.warning("accept on psm \(listenerPSM) failed: \(error); retrying")
                    do { try await Task.sleep(for: options.listenerBackoff.maximum / 10) } catch { break }
                    continue
                }
                emit(.listenerDown(config, reason: "\(error)"))
                counterBox.update { $0.listenerRestarts += 1 }
                SeqPacketSocket.close(fd)
                fd = -1
                guard let reopened = await rebind(config, endpoint: endpoint) else { break }
                fd = reopened
                emit(.listenerUp(config, psm: listenerPSM))
            } catch {
                break
            }
        }
    }

    /// Re-binds a failed listener with backoff until it works or the transport shuts down.
    private func rebind(_ config: BLEListenConfiguration, endpoint: SocketEndpoint) async -> Int32? {
        var attempt = 0
        while !Task.isCancelled && !isClosed {
            let delay = options.listenerBackoff.delay(attempt: attempt)
            attempt += 1
            do { try await Task.sleep(for: delay) } catch { return nil }
            do {
                var fixed = config
                if let psm = endpoint.psm { fixed.psm = psm }  // keep the PSM the kernel chose first
                let (fd, _, _) = try Self.openListener(fixed, endpoint: endpoint.isUnix ? endpoint : nil)
                return fd
            } catch {
                logger.debug("re-binding listener psm \(config.psm) failed: \(error)")
            }
        }
        return nil
    }

    private func accepted(_ fd: Int32, endpoint: SocketEndpoint, psm: L2CAPPSM) async {
        let setup: (mtus: LinkMTUs, peer: BLEPeerAddress?)
        do {
            setup = try Self.setUpAccepted(fd, endpoint: endpoint, psm: psm, options: options)
        } catch {
            SeqPacketSocket.close(fd)
            logger.warning("could not set up accepted link: \(error)")
            return
        }
        let level = endpoint.isUnix ? nil : SeqPacketSocket.security(fd)
        if let peer = setup.peer, let required = requiredSecurity(of: peer.device) {
            guard Self.admits(linkLevel: level, required: required) else {
                SeqPacketSocket.close(fd)
                counterBox.update { $0.linksRefusedSecurity += 1 }
                logger.warning(
                    "refused a link from \(peer.device): the device needs security \(required), the link has \(level.map { "\($0)" } ?? "unknown")")
                return
            }
        }
        do {
            // attach owns (and on failure closes) the descriptor.
            _ = try await attach(fd: fd, peer: setup.peer, outgoing: false, mtus: setup.mtus, security: level)
        } catch {
            logger.warning("could not set up accepted link: \(error)")
        }
    }

    /// Runs ``SocketSetupPlan/accepted(sendBuffer:)`` on an accepted socket: its MTUs and the peer's address.
    static func setUpAccepted(
        _ fd: Int32, endpoint: SocketEndpoint, psm: L2CAPPSM, options: BLETransportOptions
    ) throws(BLETransportError) -> (mtus: LinkMTUs, peer: BLEPeerAddress?) {
        var sendBuffer: Int?
        var mtus: (send: Int, receive: Int) = (BLEMTU.kernelDefault, BLEMTU.kernelDefault)
        var peer: BLEPeerAddress?
        for step in SocketSetupPlan.accepted(sendBuffer: options.sendBufferSize) {
            switch step {
            case .raiseSendBuffer(let bytes): sendBuffer = SeqPacketSocket.raiseSendBuffer(fd, to: bytes)
            case .readMTUs:
                mtus = try SeqPacketSocket.readMTUs(fd, endpoint: endpoint)
                if case .l2cap = endpoint {
                    peer = SeqPacketSocket.peerAddress(fd).map {
                        BLEPeerAddress(device: $0.device, addressType: $0.addressType, psm: psm)
                    }
                }
            default: break
            }
        }
        return (makeMTUs(send: mtus.send, receive: mtus.receive, sendBuffer: sendBuffer, cap: options.maxSDUSize), peer)
    }

    // MARK: Links

    /// Starts a connected SEQPACKET descriptor's link: its receive side on a ``BLELinkReader``, its send side on a NIO
    /// channel over a `dup` of the descriptor (NIO's output path handles packet sockets; its input path does not, see
    /// ``BLELinkReader``), its sender worker and its receive loop.
    /// Takes ownership of `fd` (closed on failure).
    /// `security` is the link's `BT_SECURITY` level as the caller read it (nil for stand-in sockets).
    func attach(
        fd: Int32, peer: BLEPeerAddress?, outgoing: Bool, mtus: LinkMTUs, security: BLESecurityLevel? = nil
    ) async throws(BLETransportError) -> Link {
        if state.withLock({ $0.links.count }) >= options.maxLinks {
            SeqPacketSocket.close(fd)
            counterBox.update { $0.linksRefusedOverCap += 1 }
            logger.warning("refused a link \(outgoing ? "to" : "from") \(peer.map { "\($0)" } ?? "?"): \(BLETransportError.tooManyLinks(limit: options.maxLinks))")
            throw .tooManyLinks(limit: options.maxLinks)
        }
        let output = dup(fd)
        guard output >= 0 else {
            let code = errno
            SeqPacketSocket.close(fd)
            throw .system(call: "dup", errno: code)
        }
        let counters = counterBox
        let channel: any Channel
        // NIO hands the descriptor back if the channel cannot be created, but closes it itself once it exists (the
        // initializer ran): closing it again would close whatever reused the number.
        let handedOver = OnceFlag()
        do {
            // Options are set in the initializer (not with `.channelOption`) so that nothing can fail between NIO
            // creating the channel, which then owns the descriptor, and `handedOver.set()`.
            channel = try await NIOPipeBootstrap(group: group)
                .takingOwnershipOfDescriptor(output: output) { channel in
                    handedOver.set()
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.syncOptions!.setOption(.autoRead, value: false)
                        try channel.pipeline.syncOperations.addHandler(
                            BLESDUWriter(sduLimit: mtus.sduLimit) { size in
                                counters.update {
                                    $0.sdusOut += 1
                                    $0.bytesOut += UInt64(size)
                                }
                            })
                        return channel
                    }
                }
        } catch {
            if !handedOver.isSet { SeqPacketSocket.close(output) }
            SeqPacketSocket.close(fd)
            throw .system(call: "NIOPipeBootstrap(\(error))", errno: EIO)
        }
        let reader: BLELinkReader
        do {
            reader = try BLELinkReader.start(fd: fd, receiveMTU: mtus.receive)
        } catch {
            SeqPacketSocket.close(fd)
            channel.close(promise: nil)
            throw error
        }
        // A link closed from this side (shutdown, disconnect, a failed write) ends its reader too.
        channel.closeFuture.whenComplete { _ in reader.stop() }
        let sender = Address.random()
        let (id, closed) = state.withLock { state -> (Int, Bool) in
            let id = state.nextLinkID
            state.nextLinkID += 1
            return (id, state.closed)
        }
        let info = BLELinkInfo(
            id: id, peer: peer, senderAddress: sender, outgoing: outgoing, sendMTU: mtus.send,
            receiveMTU: mtus.receive, sduLimit: mtus.sduLimit, security: security)
        if closed {
            channel.close(promise: nil)
            throw .shutDown
        }
        let worker = BLESenderWorker(
            channel: channel, sduLimit: mtus.sduLimit, maxMessageSize: options.maxMessageSize,
            counters: counters)
        do {
            try node.startWorker(worker, at: sender, options: WorkerOptions(reach: .linkSender))
        } catch {
            channel.close(promise: nil)
            throw .shutDown
        }
        // The receive loop waits for registration so that a fast peer close cannot unregister before we register.
        let (registered, registeredContinuation) = AsyncStream.makeStream(of: Void.self)
        guard let taskID = spawn({
            for await _ in registered {}
            await self.receive(reader, channel: channel, info: info)
        }) else {
            node.stopWorkerNoWait(at: sender)
            channel.close(promise: nil)
            throw .shutDown
        }
        let link: Link? = state.withLock { state in
            guard !state.closed, let task = state.tasks[taskID] else { return nil }
            let link = Link(info: info, channel: channel, done: task)
            state.links[id] = link
            if outgoing, let peer { state.outgoing[peer] = id }
            return link
        }
        guard let link else {
            registeredContinuation.finish()
            channel.close(promise: nil)
            throw .shutDown
        }
        // Announced before the receive loop may run: a link its peer closes at once must still read up, then down.
        if let delay = options.announceDelay { try? await Task.sleep(for: delay) }
        counterBox.update { $0.linkUps += 1 }
        emit(.linkUp(info))
        registeredContinuation.finish()
        return link
    }

    private func receive(_ reader: BLELinkReader, channel: any Channel, info: BLELinkInfo) async {
        var reason = BLELinkEnd.closedByPeer.description
        let sender = info.senderAddress
        var decoder = BLESDUDecoder(maxMessageSize: options.maxMessageSize, routingLimits: options.routingLimits)
        // A device chooses how often it sends a bad message: one warning per 10 s per link, the rest at debug (all are
        // counted in `drops`).
        let dropLog = LogRateLimiter()
        func dropWarning(_ text: String) {
            if let suppressed = dropLog.admit() {
                logger.warning("\(text)\(LogRateLimiter.note(suppressed))")
            } else {
                logger.debug("\(text)")
            }
        }
        receiving: while true {
            switch await reader.next() {
            case .end(let end):
                reason = end.description
                switch end {
                case .oversizeSDU: counterBox.update { $0.drops[.oversizeSDU, default: 0] += 1 }
                case .emptySDU: counterBox.update { $0.drops[.framingViolation, default: 0] += 1 }
                case .closedByKernel: counterBox.update { $0.drops[.kernelClosed, default: 0] += 1 }
                case .closedByPeer, .failed, .stopped: break
                }
                break receiving
            case .sdu(let sdu):
                counterBox.update {
                    $0.sdusIn += 1
                    $0.bytesIn += UInt64(sdu.count)
                }
                let result: BLESDUDecoder.Result
                do {
                    result = try decoder.decode(sdu[...])
                } catch {
                    counterBox.update { $0.drops[.framingViolation, default: 0] += 1 }
                    reason = "\(error)"
                    break receiving
                }
                switch result {
                case .incomplete:
                    continue
                case .oversize(let declared):
                    counterBox.update { $0.drops[.oversizeMessage, default: 0] += 1 }
                    dropWarning(
                        "dropping \(declared)-byte message from \(info.peer.map { "\($0)" } ?? "?"): over \(options.maxMessageSize)")
                case .malformed(let error):
                    counterBox.update { $0.drops[.malformedMessage, default: 0] += 1 }
                    dropWarning("dropping malformed message from \(info.peer.map { "\($0)" } ?? "?"): \(error)")
                case .message(let decoded):
                    counterBox.update { $0.messagesIn += 1 }
                    var returnRoute = decoded.returnRoute
                    returnRoute.prepend(sender)
                    await node.deliverFromTransport(
                        LocalMessage(onwardRoute: decoded.onwardRoute, returnRoute: returnRoute, payload: decoded.payload),
                        link: sender)
                }
            }
        }
        if isClosed { reason = "transport shut down" }
        reader.stop()
        try? await channel.close()
        state.withLock { state in
            state.links[info.id] = nil
            if let peer = info.peer, state.outgoing[peer] == info.id { state.outgoing[peer] = nil }
        }
        await node.stopWorker(at: sender)
        counterBox.update { $0.linkDowns += 1 }
        emit(.linkDown(info, reason: reason))
    }

    // MARK: Shutdown

    /// Stops listeners and connectors, closes every link, waits for their tasks, and finishes event streams.
    public func shutdown() async {
        let (channels, tasks, dials): ([any Channel], [Task<Void, Never>], [Task<Link, any Error>]) =
            state.withLock { state in
                state.closed = true
                return (state.links.values.map(\.channel), Array(state.tasks.values), Array(state.dialing.values))
            }
        for dial in dials { dial.cancel() }  // wakes a connect waiting for writability
        for task in tasks { task.cancel() }
        for channel in channels { try? await channel.close() }
        for task in tasks { await task.value }
        let subscribers = state.withLock { state in
            defer { state.subscribers = [:] }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }

    @discardableResult
    private func spawn(_ body: @escaping @Sendable () async -> Void) -> Int? {
        state.withLock { state -> Int? in
            if state.closed { return nil }
            let id = state.nextTaskID
            state.nextTaskID += 1
            state.tasks[id] = Task {
                await body()
                _ = self.state.withLock { $0.tasks.removeValue(forKey: id) }
            }
            return id
        }
    }

    // MARK: Tests

    /// Background tasks still running (listeners, links, maintained connections).
    var taskCount: Int { state.withLock { $0.tasks.count } }

    /// Routes connections to `peer` to an AF_UNIX SEQPACKET endpoint (the L2CAP stand-in of the tests).
    func overrideEndpoint(for peer: BLEPeerAddress, with endpoint: SocketEndpoint) {
        state.withLock { $0.endpointOverrides[peer] = endpoint }
    }
}

extension SocketEndpoint {
    var psm: L2CAPPSM? {
        if case .l2cap(let address) = self, address.psm != 0 { return L2CAPPSM(address.psm) }
        return nil
    }

    var isUnix: Bool {
        if case .unix = self { return true }
        return false
    }
}

/// The counters, shared by the transport, its workers and handlers.
final class CounterBox: Sendable {
    private let storage = EdgeMutex(BLECounters())
    var snapshot: BLECounters { storage.withLock { $0 } }
    func update(_ body: (inout BLECounters) -> Void) { storage.withLock { body(&$0) } }
}

/// The per-link sender worker: pops itself from the onward route, fragments the message and writes its SDUs.
struct BLESenderWorker: Worker {
    let channel: any Channel
    let sduLimit: Int
    let maxMessageSize: Int
    let counters: CounterBox

    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        var onward = message.onwardRoute
        onward.popFront()
        let wire = RoutingMessage(onwardRoute: onward, returnRoute: message.returnRoute, payload: message.payload)
        let bytes = wire.encode()
        // Never send what the peer's decoder must drop (route length, address size; the size is checked below).
        do {
            try wire.checkLimits(RoutingLimits(maxMessageSize: Int.max), encodedSize: bytes.count)
        } catch {
            counters.update { $0.drops[.overLimit, default: 0] += 1 }
            throw error
        }
        let sdus: [[UInt8]]
        do {
            sdus = try BLEFraming.fragment(bytes, maxSDUSize: sduLimit, maxMessageSize: maxMessageSize)
        } catch {
            counters.update { $0.drops[.oversizeMessage, default: 0] += 1 }
            throw error
        }
        let buffers = sdus.map { channel.allocator.buffer(bytes: $0) }
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(BLEOutboundMessage(sdus: buffers), promise: promise)
        do {
            try await promise.futureResult.get()
            counters.update { $0.messagesOut += 1 }
        } catch {
            counters.update { $0.drops[.sendFailed, default: 0] += 1 }
            throw error
        }
    }

    func shutdown(context: WorkerContext) async {
        channel.close(promise: nil)
    }
}
