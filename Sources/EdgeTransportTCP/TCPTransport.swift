// The TCP transport: listeners, connectors, per-connection sender workers and receive loops.
// Long (~830 lines): listeners, connectors, caps and the connection registry share one lock-protected state; the
// registry, sender and receive loop are the parts the transports' shared link skeleton is to take over.
import EdgeNIO
import EdgeNode
import EdgeRouting
import EdgeSync
import EdgeWire
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Options of the TCP transport.
public struct TCPTransportOptions: Sendable {
    /// How long a peer may take to send its version byte.
    public var versionTimeout: Duration = .seconds(10)
    /// Time every inbound frame is allowed from its first byte; a frame of `n` bytes gets
    /// `frameTimeout + n / frameMinimumRate` (``OckamTCPReadDeadline``). Then the connection is closed.
    public var frameTimeout: Duration = .seconds(30)
    /// Bytes per second an inbound frame must at least average beyond ``frameTimeout``.
    public var frameMinimumRate: Int = 10_000
    /// Most connections each listener serves at once; further ones are closed at accept and counted.
    public var maxConnectionsPerListener: Int = 512
    /// Most connections each listener serves at once from one host (an IPv4 address, or an IPv6 /64, since one
    /// IPv6 host has a whole /64 to pick from); nil: no per-host cap. Loopback peers are exempt unless
    /// ``capLoopbackHosts`` (local processes are already on the machine; tests open many connections from there).
    public var maxConnectionsPerHost: Int? = 64
    /// Whether the per-host cap applies to loopback peers too.
    public var capLoopbackHosts = false
    /// Most bytes of unfinished inbound frames (what has arrived of frames still in progress) each listener's
    /// connections hold together; past it the connection holding the most is closed (counted).
    public var maxUnfinishedBytesPerListener: Int = 64 << 20
    /// The same per host (IPv4 address or IPv6 /64, loopback included); nil: no per-host cap. At least one
    /// maximum-size frame (16 MiB) plus its prefix, or a peer could never send one.
    public var maxUnfinishedBytesPerHost: Int? = 24 << 20
    /// How long ``TCPTransport/shutdown()`` lets each connection write what is queued before closing it, and then
    /// waits for the peer to close its side (a graceful close).
    public var shutdownFlushTimeout: Duration = .seconds(2)
    /// How long an outgoing connect may take.
    public var connectTimeout: Duration = .seconds(10)
    /// Most outgoing connections open or being opened at once (one per destination); a route to one more fails and
    /// is counted. With the listeners' 512 this stays within the usual 1024 descriptors.
    public var maxOutgoingConnections: Int = 256
    /// An outgoing connection on which nothing was read or written for this long is closed (its destination's next
    /// message opens a new one), unless its destination is pinned (``TCPTransport/pin(_:)``: a configured uplink).
    /// nil: never.
    public var outgoingIdleTimeout: Duration? = .seconds(900)
    /// Largest frame accepted and sent.
    public var maxFrameSize: Int = ockamTCPMaxFrameSize
    /// Limits for decoding routing messages.
    public var routingLimits: RoutingLimits = .default
    /// TCP keepalive (idle, interval, probes), as Ockam sets on outgoing sockets; also applied to accepted ones.
    public var keepalive: (idle: Int32, interval: Int32, probes: Int32)? = (300, 75, 2)

    public init() {}
}

/// Counters of the TCP transport, for `status` and metrics.
public struct TCPTransportCounters: Sendable, Equatable {
    /// Connections accepted by listeners and served.
    public var connectionsAccepted: UInt64 = 0
    /// Connections closed at accept because their listener was at ``TCPTransportOptions/maxConnectionsPerListener``.
    public var connectionsRefusedOverCap: UInt64 = 0
    /// Connections closed at accept because their host was at ``TCPTransportOptions/maxConnectionsPerHost``.
    public var connectionsRefusedOverHostCap: UInt64 = 0
    /// Connections closed because the peer sent no version byte in time.
    public var versionTimeouts: UInt64 = 0
    /// Connections closed because the peer did not complete a frame in time.
    public var frameTimeouts: UInt64 = 0
    /// Well-framed messages whose body is not a valid routing message (or breaks a limit): dropped, and the connection
    /// and everything else on it live on. Only a broken framing closes a connection.
    public var messagesDroppedMalformed: UInt64 = 0
    /// Messages not sent because the next hop would have to reject them (a route or address over its limit once
    /// this node added its hop, or an encoding over the frame limit).
    public var messagesDroppedOverLimit: UInt64 = 0
    /// Connections closed because the peer did not read what was written to it in time (a slow reader).
    public var connectionsClosedSlowReader: UInt64 = 0
    /// Inbound connections closed because their listener's or host's unfinished frames held more than the cap (the
    /// connection holding the most is cut first).
    public var connectionsCutUnfinishedFrames: UInt64 = 0
    /// Outgoing connections closed because nothing went over them for ``TCPTransportOptions/outgoingIdleTimeout``.
    public var outgoingClosedIdle: UInt64 = 0
    /// Outgoing connections not opened because ``TCPTransportOptions/maxOutgoingConnections`` were open or opening.
    public var outgoingRefusedOverCap: UInt64 = 0
}

/// A live TCP connection as seen by `status`.
public struct TCPConnectionInfo: Sendable, Hashable {
    public var peer: String
    public var senderAddress: Address
    public var outgoing: Bool
}

/// Ockam's TCP transport (spec §2): resolves `1#host:port` route hops into connections.
///
/// Per connection, a sender worker at a random local address pops itself from the onward route and
/// writes the frame; the receive loop decodes frames, drops heartbeats, prepends the sender address to
/// the return route and hands the message to the node.
public final class TCPTransport: TransportResolver, Sendable {
    public var transportType: TransportType { .tcp }

    public let node: Node
    public let group: any EventLoopGroup
    public let options: TCPTransportOptions
    let logger: Logger

    private struct State: ~Copyable {
        /// Live connections by their sender worker address.
        var connections: [Address: Connection] = [:]
        /// Outgoing connections by the `host:port` they were opened for (reused by `resolve`).
        var outgoing: [String: Address] = [:]
        var connecting: [String: Task<Address, any Error>] = [:]
        var listeners: [any Channel] = []
        /// Inbound connections being served, per listener (index into the order of ``listen(host:port:)`` calls).
        var served: [Int: Int] = [:]
        /// Inbound connections being served per listener and host (``TCPHostKey``), for the per-host cap.
        var servedByHost: [TCPHostKey: Int] = [:]
        /// Per listener: refusal log lines, at most one per 10 s with the number refused since.
        var refusalLogs: [Int: LogRateLimiter] = [:]
        var counters = TCPTransportCounters()
        /// Why the last outgoing connections closed, by `host:port` (the newest 64), so a caller whose request got
        /// no reply can say what happened to the connection.
        var closeReasons: [String: String] = [:]
        var closeOrder: [String] = []
        /// Destinations (canonical) whose outgoing connections are never closed for being idle.
        var pinned: Set<String> = []
        var tasks: [Int: Task<Void, Never>] = [:]
        var nextTaskID = 0
        var closed = false
    }

    struct Connection: Sendable {
        let channel: any Channel
        let info: TCPConnectionInfo
    }

    private let state = EdgeMutex(State())
    private let unfinished: UnfinishedFrames
    private let unfinishedLog = LogRateLimiter()
    private let outgoingCapLog = LogRateLimiter()
    private let slowReaderLog = LogRateLimiter()
    /// Malformed messages, from every connection of this transport: a peer chooses how many it sends and over how
    /// many connections.
    let malformedLog = LogRateLimiter()

    public init(
        node: Node, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        options: TCPTransportOptions = TCPTransportOptions(), logger: Logger? = nil
    ) {
        self.node = node
        self.group = group
        self.options = options
        unfinished = UnfinishedFrames(
            limits: .init(perListener: options.maxUnfinishedBytesPerListener, perHost: options.maxUnfinishedBytesPerHost))
        var logger = logger ?? node.logger
        logger[metadataKey: "transport"] = "tcp"
        self.logger = logger
        node.registerTransport(self)
    }

    public var counters: TCPTransportCounters { state.withLock { $0.counters } }

    /// Bytes of unfinished inbound frames the connections of listener `listener` (in order of ``listen(host:port:)``)
    /// hold now.
    public func unfinishedBytes(listener: Int) -> Int { unfinished.held(listener: listener) }

    /// Inbound connections being served by each listener, in the order the listeners were started.
    public var servedConnections: [Int] {
        state.withLock { state in state.listeners.indices.map { state.served[$0, default: 0] } }
    }

    public var connections: [TCPConnectionInfo] {
        state.withLock { $0.connections.values.map(\.info) }.sorted { $0.peer < $1.peer }
    }

    // MARK: Listening

    /// Binds a listener and serves every accepted connection until ``shutdown()``.
    /// - Returns: the bound address (useful with port 0).
    @discardableResult
    public func listen(host: String, port: Int) async throws -> SocketAddress {
        let accepted = AcceptedChannels<ByteBuffer, OckamTCPOutbound>()
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.so_keepalive), value: options.keepalive == nil ? 0 : 1)
            .bind(host: host, port: port) { child in
                child.eventLoop.makeCompletedFuture {
                    try self.configurePipeline(child)
                    return try accepted.wrap(child)
                }
            }
        guard let local = server.channel.localAddress else { throw TCPTransportError.connectionClosed }
        let listener = state.withLock { state in
            state.listeners.append(server.channel)
            return state.listeners.count - 1
        }
        logger.info("listening on \(Self.describe(local))")
        spawn {
            do {
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        accepted.claim(connection)
                        let remote = connection.channel.remoteAddress
                        let peer = remote.map(Self.describe) ?? "unknown"
                        let host = remote.flatMap { TCPHostKey(listener: listener, address: $0) }
                        guard self.admit(listener: listener, local: local, peer: peer, host: host) else {
                            try? await connection.executeThenClose { _, _ in }  // before our version byte: EOF
                            continue
                        }
                        self.unfinished.register(connection.channel, listener: listener, host: host)
                        self.spawn {
                            await self.serve(connection, peer: peer, outgoing: false)
                            self.unfinished.remove(connection.channel)
                            self.release(listener: listener, host: host)
                        }
                    }
                }
            } catch {
                self.logger.warning("listener on \(Self.describe(local)) stopped: \(error)")
            }
            await accepted.closeUnclaimed()
        }
        return local
    }

    /// Counts an accepted connection against its listener's cap and its host's, or refuses it (counted; logged at
    /// most every 10 s per listener, with the number refused since the last log line).
    private func admit(listener: Int, local: SocketAddress, peer: String, host: TCPHostKey?) -> Bool {
        let cap = options.maxConnectionsPerListener
        let hostCap = host.flatMap { !$0.loopback || options.capLoopbackHosts ? options.maxConnectionsPerHost : nil }
        let (refusalLog, overHost): (LogRateLimiter?, Bool) = state.withLock { state in
            let served = state.served[listener, default: 0]
            let fromHost = host.map { state.servedByHost[$0, default: 0] } ?? 0
            let overHost = hostCap.map { fromHost >= $0 } ?? false
            if served < cap && !overHost {
                state.served[listener] = served + 1
                if let host, hostCap != nil { state.servedByHost[host] = fromHost + 1 }
                state.counters.connectionsAccepted += 1
                return (nil, false)
            }
            if overHost { state.counters.connectionsRefusedOverHostCap += 1 } else { state.counters.connectionsRefusedOverCap += 1 }
            if let log = state.refusalLogs[listener] { return (log, overHost) }
            let log = LogRateLimiter()
            state.refusalLogs[listener] = log
            return (log, overHost)
        }
        guard let refusalLog else { return true }
        if let suppressed = refusalLog.admit() {
            let refusedSinceLog = suppressed + 1
            let why =
                overHost
                ? "it serves \(hostCap ?? 0) connections from that host, the per-host cap (--tcp-max-connections-per-host / transports.tcp.max_connections_per_host)"
                : "it serves \(cap) connections, its cap (--tcp-max-connections / transports.tcp.max_connections)"
            logger.warning(
                "listener \(Self.describe(local)) refused a connection from \(peer): \(why); \(refusedSinceLog) refused since the last such message")
        }
        return false
    }

    /// Gives back what ``admit(listener:local:peer:host:)`` counted for a connection that has ended.
    private func release(listener: Int, host: TCPHostKey?) {
        state.withLock { state in
            state.served[listener, default: 1] -= 1
            if let host, let n = state.servedByHost[host] {
                if n <= 1 { state.servedByHost[host] = nil } else { state.servedByHost[host] = n - 1 }
            }
        }
    }

    // MARK: Connecting

    /// Keeps outgoing connections to these destinations (`host:port`, canonicalised; unparsable ones are ignored)
    /// open however long they are idle: the uplinks a configuration names. Replaces the previous set.
    public func pin(_ destinations: [String]) {
        let canonical = Set(destinations.compactMap { try? TCPDestination(parsing: $0).description })
        state.withLock { $0.pinned = canonical }
    }

    /// Why the last outgoing connection to `peer` (`host:port`, any spelling of it) closed, if one did.
    public func closeReason(peer: String) -> String? {
        let key = (try? TCPDestination(parsing: peer))?.description ?? peer
        return state.withLock { $0.closeReasons[key] }
    }

    /// Resolves `1#host:port` to the local sender address of a (new or existing) connection. Every spelling of one
    /// destination (``TCPDestination``) shares one connection; at most ``TCPTransportOptions/maxOutgoingConnections``
    /// are open or being opened at once.
    public func resolve(_ address: Address) async throws -> Address {
        let destination = try TCPDestination(parsing: address.valueString)
        let peer = destination.description
        enum Step {
            case existing(Address)
            case wait(Task<Address, any Error>)
            case refused
        }
        let step: Step = state.withLock { state in
            if let existing = state.outgoing[peer] { return .existing(existing) }
            if let pending = state.connecting[peer] { return .wait(pending) }
            guard state.outgoing.count + state.connecting.count < options.maxOutgoingConnections else {
                state.counters.outgoingRefusedOverCap += 1
                return .refused
            }
            let task = Task { try await self.connect(peer: peer) }
            state.connecting[peer] = task
            return .wait(task)
        }
        switch step {
        case .existing(let sender): return sender
        case .refused:
            if let suppressed = outgoingCapLog.admit() {
                logger.warning(
                    "not connecting to \(peer): \(TCPTransportError.tooManyOutgoingConnections(limit: options.maxOutgoingConnections))\(LogRateLimiter.note(suppressed))")
            }
            throw TCPTransportError.tooManyOutgoingConnections(limit: options.maxOutgoingConnections)
        case .wait(let task):
            let result = await task.result
            finishConnecting(peer)
            return try result.get()
        }
    }

    /// Forgets a finished connect: a synchronous step after the suspension, not a lock in a `defer` of the async
    /// function (the shape Swift 6.3.1 miscompiled with an inlined mutex; see EdgeMutex.withLock).
    private func finishConnecting(_ peer: String) {
        _ = state.withLock { $0.connecting.removeValue(forKey: peer) }
    }

    /// Opens a connection to `host:port` and returns its sender address (``resolve(_:)`` reuses connections).
    public func connect(peer: String) async throws -> Address {
        let destination = try TCPDestination(parsing: peer)
        let peer = destination.description
        let (host, port) = (destination.hostText, Int(destination.port))
        var bootstrap = ClientBootstrap(group: group)
            .connectTimeout(TimeAmount(options.connectTimeout))
        if let keepalive = options.keepalive {
            bootstrap = bootstrap
                .channelOption(.socketOption(.so_keepalive), value: 1)
                .channelOption(Self.tcpOption(TCP_KEEPIDLE), value: SocketOptionValue(keepalive.idle))
                .channelOption(Self.tcpOption(TCP_KEEPINTVL), value: SocketOptionValue(keepalive.interval))
                .channelOption(Self.tcpOption(TCP_KEEPCNT), value: SocketOptionValue(keepalive.probes))
        }
        let channel = try await bootstrap.connect(host: host, port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try self.configurePipeline(channel)
                if let idle = self.options.outgoingIdleTimeout {
                    try channel.pipeline.syncOperations.addHandlers([
                        IdleStateHandler(allTimeout: TimeAmount(idle)),
                        OutgoingIdleCloser { [weak self] in self?.closeIfIdle(peer: peer, after: idle) ?? true },
                    ])
                }
                return try NIOAsyncChannel<ByteBuffer, OckamTCPOutbound>(wrappingChannelSynchronously: channel)
            }
        }
        logger.info("connected to \(peer)")
        let sender: Address
        do {
            sender = try register(channel, peer: peer, outgoing: true)
        } catch {
            // (The node is shutting down.) Dropping the channel without finishing its writer would trap.
            try? await channel.executeThenClose { _, _ in }
            throw error
        }
        spawn { await self.receive(channel, peer: peer, sender: sender) }
        return sender
    }

    /// Whether an idle outgoing connection to `peer` should close now (not pinned); counts and logs it if so.
    private func closeIfIdle(peer: String, after idle: Duration) -> Bool {
        let close = state.withLock { state -> Bool in
            guard !state.pinned.contains(peer) else { return false }
            state.counters.outgoingClosedIdle += 1
            return true
        }
        if close { logger.info("closing the connection to \(peer): nothing went over it for \(idle)") }
        return close
    }

    // MARK: Connection lifecycle

    private func configurePipeline(_ channel: any Channel) throws {
        let sync = channel.pipeline.syncOperations
        let limits = OckamTCPReadDeadline.Limits(
            versionTimeout: options.versionTimeout, frameTimeout: options.frameTimeout,
            frameMinimumRate: options.frameMinimumRate)
        try sync.addHandler(
            ReadDeadlineHandler(
                limits: limits,
                onTimeout: { [weak self] error in
                    self?.state.withLock { state in
                        if case .versionTimeout = error { state.counters.versionTimeouts += 1 } else { state.counters.frameTimeouts += 1 }
                    }
                },
                onProgress: { [weak self, weak channel] unfinishedBytes in
                    guard let channel else { return }
                    self?.frameProgress(channel, unfinishedBytes)
                }))
        try sync.addHandler(ByteToMessageHandler(OckamTCPFrameDecoder(maxFrameSize: options.maxFrameSize)))
        try sync.addHandler(MessageToByteHandler(OckamTCPFrameEncoder()))
    }

    /// A connection's unfinished frame now holds `bytes`: cuts the connections that put their listener or host over
    /// its cap (``UnfinishedFrames``).
    private func frameProgress(_ channel: any Channel, _ bytes: Int) {
        let cuts = unfinished.update(channel, bytes: bytes)
        guard !cuts.isEmpty else { return }
        state.withLock { $0.counters.connectionsCutUnfinishedFrames += UInt64(cuts.count) }
        for (victim, held) in cuts {
            victim.close(promise: nil)
            if let suppressed = unfinishedLog.admit() {
                let peer = victim.remoteAddress.map(Self.describe) ?? "?"
                logger.warning(
                    "closed the connection from \(peer): it held \(held) bytes of an unfinished frame, the most while its host or listener was over its cap (max_unfinished_bytes…)\(LogRateLimiter.note(suppressed))")
            }
        }
    }

    private func serve(_ channel: NIOAsyncChannel<ByteBuffer, OckamTCPOutbound>, peer: String, outgoing: Bool) async {
        logger.info("accepted connection from \(peer)")
        let sender: Address
        do {
            sender = try register(channel, peer: peer, outgoing: outgoing)
        } catch {
            logger.warning("could not register connection from \(peer): \(error)")
            try? await channel.executeThenClose { _, _ in }  // finishes the writer: dropping it unfinished traps
            return
        }
        await receive(channel, peer: peer, sender: sender)
    }

    /// Writes our version byte and starts the connection's sender worker.
    private func register(
        _ channel: NIOAsyncChannel<ByteBuffer, OckamTCPOutbound>, peer: String, outgoing: Bool
    ) throws -> Address {
        let sender = Address.random()
        channel.channel.writeAndFlush(OckamTCPOutbound.version, promise: nil)
        var worker = TCPSenderWorker(channel: channel.channel, peer: peer, routingLimits: options.routingLimits) {
            [weak self] in self?.state.withLock { $0.counters.messagesDroppedOverLimit += 1 }
        }
        worker.closeTimeout = options.shutdownFlushTimeout
        worker.drainTimeout = options.frameTimeout
        worker.drainMinimumRate = options.frameMinimumRate
        worker.closedSlowReader = { [weak self, peer] allowed in
            guard let self else { return }
            state.withLock { $0.counters.connectionsClosedSlowReader += 1 }
            if let suppressed = slowReaderLog.admit() {
                logger.warning(
                    "closing the connection to \(peer): it read nothing of a write for \(allowed) (a slow reader; frame_timeout + bytes in flight / frame_min_rate)\(LogRateLimiter.note(suppressed))")
            }
        }
        try node.startWorker(worker, at: sender, options: WorkerOptions(reach: .linkSender))
        let info = TCPConnectionInfo(peer: peer, senderAddress: sender, outgoing: outgoing)
        let accepted = state.withLock { state -> Bool in
            if state.closed { return false }
            state.connections[sender] = Connection(channel: channel.channel, info: info)
            if outgoing { state.outgoing[peer] = sender }
            return true
        }
        if !accepted {
            node.stopWorkerNoWait(at: sender)
            channel.channel.close(promise: nil)
            throw NodeError.shuttingDown
        }
        return sender
    }

    /// Why a connection's reads ended, in the words a user needs: a peer that closed while our bytes were still unread
    /// (a port that is not an Ockam node) resets the connection, which NIO reports as a failed `read` system call.
    static func closeReason(_ error: any Error) -> String {
        guard let io = error as? IOError else { return "\(error)" }
        switch io.errnoCode {
        case ECONNRESET: return "reset by peer"
        case EPIPE: return "closed by peer"
        case ETIMEDOUT: return "timed out (the peer stopped answering)"
        case EHOSTUNREACH, ENETUNREACH: return "the peer became unreachable"
        default: return "\(error)"
        }
    }

    private func receive(
        _ channel: NIOAsyncChannel<ByteBuffer, OckamTCPOutbound>, peer: String, sender: Address
    ) async {
        var reason = "closed by peer"
        do {
            try await channel.executeThenClose { inbound, _ in
                for try await frame in inbound {
                    let bytes = Array(frame.readableBytesView)
                    let decoded: RoutingMessage
                    do {
                        decoded = try RoutingMessage(decoding: bytes, limits: options.routingLimits)
                    } catch {
                        // The frame was well delimited, so the next one will be too: drop this message only.
                        state.withLock { $0.counters.messagesDroppedMalformed += 1 }
                        malformedLog.log("dropped a malformed message from \(peer): \(error)", to: logger)
                        continue
                    }
                    // Heartbeats (empty onward route) are dropped and counted by the node.
                    var returnRoute = decoded.returnRoute
                    returnRoute.prepend(sender)
                    await node.deliverFromTransport(
                        LocalMessage(onwardRoute: decoded.onwardRoute, returnRoute: returnRoute, payload: decoded.payload),
                        link: sender)
                }
            }
        } catch {
            reason = Self.closeReason(error)
        }
        state.withLock { state in
            state.connections[sender] = nil
            if state.outgoing[peer] == sender {
                state.outgoing[peer] = nil
                if state.closeReasons.updateValue(reason, forKey: peer) == nil {
                    state.closeOrder.append(peer)
                    if state.closeOrder.count > 64 { state.closeReasons[state.closeOrder.removeFirst()] = nil }
                }
            }
        }
        await node.stopWorker(at: sender)
        logger.info("connection \(peer) closed: \(reason)")
    }

    // MARK: Shutdown

    /// Closes listeners, lets every connection write what is already queued for it (e.g. secure channel Close
    /// messages sent just before; at most ``TCPTransportOptions/shutdownFlushTimeout``), closes the connections and
    /// waits for their tasks.
    public func shutdown() async {
        let (listeners, connections): ([any Channel], [Address: Connection]) = state.withLock { state in
            state.closed = true
            return (state.listeners, state.connections)
        }
        for channel in listeners { try? await channel.close() }
        // Stopping a sender worker drains its mailbox, then waits for its writes (TCPSenderWorker.shutdown). A peer
        // that reads nothing would hold that forever: past the flush timeout its connection is closed regardless.
        let channels = connections.values.map(\.channel)
        let deadline = Task { [timeout = options.shutdownFlushTimeout] in
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            for channel in channels { channel.close(promise: nil) }
        }
        await withTaskGroup(of: Void.self) { group in
            for sender in connections.keys { group.addTask { await self.node.stopWorker(at: sender) } }
        }
        deadline.cancel()
        for channel in channels { try? await channel.close() }
        let tasks = state.withLock { Array($0.tasks.values) }
        for task in tasks { await task.value }
    }

    private func spawn(_ body: @escaping @Sendable () async -> Void) {
        state.withLock { state in
            let id = state.nextTaskID
            state.nextTaskID += 1
            state.tasks[id] = Task {
                await body()
                _ = self.state.withLock { $0.tasks.removeValue(forKey: id) }
            }
        }
    }

    // MARK: Helpers

    static func tcpOption(_ name: Int32) -> ChannelOptions.Types.SocketOption {
        ChannelOptions.Types.SocketOption(level: .tcp, name: NIOBSDSocket.Option(rawValue: name))
    }

    static func describe(_ address: SocketAddress) -> String {
        switch address {
        case .v4: return "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        case .v6: return "[\(address.ipAddress ?? "?")]:\(address.port ?? 0)"
        default: return "\(address)"
        }
    }

    /// Splits `host:port` or `[v6]:port` (``TCPDestination``'s syntax, without its checks of the host); port 0 (any
    /// free port) only with `allowingPortZero`, for listeners.
    public static func splitHostPort(_ text: String, allowingPortZero: Bool = false) throws(TCPTransportError) -> (String, Int) {
        guard let (host, _, port) = TCPDestination.split(text, allowingZero: allowingPortZero), let port, !host.isEmpty else {
            throw .invalidPeerAddress(text)
        }
        return (host, Int(port))
    }
}

/// Bytes handed to NIO but not yet written to the socket, per connection.
final class WriteWindow: Sendable {
    /// Above this, the sender waits for its write to complete before taking the next message.
    static let limit = 1 << 20
    private let outstanding = EdgeMutex<(bytes: Int, last: EventLoopFuture<Void>?)>((0, nil))
    /// Adds a write of `n` bytes (the newest; writes complete in order) and returns the bytes in flight.
    func add(_ n: Int, completion: EventLoopFuture<Void>) -> Int {
        outstanding.withLock {
            $0.bytes += n
            $0.last = completion
            return $0.bytes
        }
    }
    func remove(_ n: Int) { outstanding.withLock { $0.bytes -= n } }
    /// Completes when every write added so far has completed (or failed).
    var lastWrite: EventLoopFuture<Void>? { outstanding.withLock { $0.last } }
}

/// The per-connection sender worker: pops itself from onward and writes one frame per message.
///
/// Writes are pipelined, but at most ``WriteWindow/limit`` bytes may be in flight: past that the worker awaits
/// its write, so a slow peer slows the worker (and, through its mailbox, the senders that wait for it) instead of
/// growing NIO's queue without bound. A peer that does not read at all would hold them forever: a write that does
/// not complete within `drainTimeout + bytes in flight / drainMinimumRate` closes the connection (a slow reader,
/// counted). (`channel.isWritable` is not used: read off the event loop it lags behind writes that are still being
/// submitted, which let a fast producer queue everything.)
struct TCPSenderWorker: Worker {
    let channel: any Channel
    let peer: String
    let routingLimits: RoutingLimits
    /// Counts a message not sent because the peer would have to reject it.
    let droppedOverLimit: @Sendable () -> Void
    /// How long a graceful close waits for the peer to close its side.
    var closeTimeout: Duration = .seconds(2)
    /// A write the worker waits for must complete within `drainTimeout + in flight / drainMinimumRate`.
    var drainTimeout: Duration = .seconds(30)
    var drainMinimumRate = 10_000
    /// Called (on the event loop) when the connection is closed because its peer stopped reading.
    var closedSlowReader: @Sendable (_ allowed: Duration) -> Void = { _ in }
    let window = WriteWindow()

    init(channel: any Channel, peer: String, routingLimits: RoutingLimits, droppedOverLimit: @escaping @Sendable () -> Void = {}) {
        self.channel = channel
        self.peer = peer
        self.routingLimits = routingLimits
        self.droppedOverLimit = droppedOverLimit
    }

    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        var onward = message.onwardRoute
        onward.popFront()
        let wire = RoutingMessage(onwardRoute: onward, returnRoute: message.returnRoute, payload: message.payload)
        let bytes = wire.encode()
        guard bytes.count <= ockamTCPMaxFrameSize else {
            droppedOverLimit()
            throw TCPTransportError.frameTooLarge(UInt32(clamping: bytes.count), limit: ockamTCPMaxFrameSize)
        }
        // Never send what the peer must reject (it would drop it; an older peer would close the whole connection).
        do {
            try wire.checkLimits(routingLimits, encodedSize: bytes.count)
        } catch {
            droppedOverLimit()
            throw error
        }
        let buffer = channel.allocator.buffer(bytes: bytes)
        let promise = channel.eventLoop.makePromise(of: Void.self)
        let inFlight = window.add(bytes.count, completion: promise.futureResult)
        let window = self.window
        let size = bytes.count
        promise.futureResult.whenComplete { [logger = context.logger, peer] result in
            window.remove(size)
            if case .failure(let error) = result { logger.debug("write to \(peer) failed: \(error)") }
        }
        channel.writeAndFlush(OckamTCPOutbound.frame(buffer), promise: promise)
        if inFlight > WriteWindow.limit {
            let allowed = drainTimeout + .seconds(Double(inFlight) / Double(max(1, drainMinimumRate)))
            let channel = self.channel
            let closedSlowReader = self.closedSlowReader
            let deadline = channel.eventLoop.scheduleTask(in: TimeAmount(allowed)) {
                closedSlowReader(allowed)
                channel.close(promise: nil)
            }
            do {
                try await promise.futureResult.get()
            } catch {
                deadline.cancel()
                throw error
            }
            deadline.cancel()
        }
    }

    /// Writes what the mailbox held (it is drained before this runs) before closing: a Close sent on a secure
    /// channel just before the node stops must reach the peer (finding F4).
    ///
    /// The close is graceful: our side's FIN first, then the connection ends when the peer closes its side (at most
    /// `closeTimeout` later). Closing both directions at once would make our kernel answer anything the peer still
    /// sends (its version byte, a reply) with a reset, and a reset makes the peer's kernel drop what it has received
    /// but not yet read: the very frames just flushed.
    func shutdown(context: WorkerContext) async {
        try? await window.lastWrite?.get()
        let channel = self.channel
        let fallback = channel.eventLoop.scheduleTask(in: TimeAmount(closeTimeout)) { channel.close(promise: nil) }
        do {
            try await channel.close(mode: .output).get()
        } catch {
            channel.close(promise: nil)
        }
        try? await channel.closeFuture.get()
        fallback.cancel()
    }
}

/// Closes a connection whose peer does not send its version byte in time, or starts a frame and does not finish it
/// in time (``OckamTCPReadDeadline``; finding F2). It stays first in the pipeline and passes every read on.
final class ReadDeadlineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var deadline: OckamTCPReadDeadline
    private let onTimeout: @Sendable (TCPTransportError) -> Void
    private let onProgress: @Sendable (Int) -> Void
    private var timer: Scheduled<Void>?
    private var started = false
    private var reportedUnfinished = 0

    /// `onProgress` is called after a read that changed how many bytes of an unfinished frame the connection holds.
    init(
        limits: OckamTCPReadDeadline.Limits, onTimeout: @escaping @Sendable (TCPTransportError) -> Void,
        onProgress: @escaping @Sendable (Int) -> Void = { _ in }
    ) {
        deadline = OckamTCPReadDeadline(limits: limits)
        self.onTimeout = onTimeout
        self.onProgress = onProgress
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        apply(deadline.start(now: .now()), context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        apply(deadline.received(buffer.readableBytesView, now: .now()), context)
        let unfinished = deadline.unfinishedBytes
        if unfinished != reportedUnfinished {
            reportedUnfinished = unfinished
            onProgress(unfinished)
        }
        context.fireChannelRead(data)
    }

    private func apply(_ change: OckamTCPReadDeadline.Change, _ context: ChannelHandlerContext) {
        switch change {
        case .unchanged:
            return
        case .cancel:
            timer?.cancel()
            timer = nil
        case .arm(let when):
            timer?.cancel()
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleTask(deadline: when) {
                let (handler, context) = loopBound.value
                let error = handler.deadline.timeoutError
                handler.timer = nil
                handler.onTimeout(error)
                context.fireErrorCaught(error)
                context.close(promise: nil)
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }
}

/// Which host an inbound connection counts against for ``TCPTransportOptions/maxConnectionsPerHost``: its IPv4
/// address, or the /64 prefix of its IPv6 address (one IPv6 host can use any address of its /64); IPv4-mapped IPv6
/// addresses count as the IPv4 address. Per listener.
struct TCPHostKey: Hashable, Sendable {
    let listener: Int
    /// 4 bytes (IPv4) or 8 bytes (the IPv6 /64).
    let prefix: [UInt8]
    let loopback: Bool

    init?(listener: Int, address: SocketAddress) {
        self.listener = listener
        // The raw sockaddr: sockaddr_in has the address at bytes 4..<8, sockaddr_in6 at 8..<24 (network order).
        let raw: [UInt8] = address.withSockAddr { pointer, size in
            Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(pointer), count: size))
        }
        switch address {
        case .v4 where raw.count >= 8:
            prefix = Array(raw[4..<8])
            loopback = prefix[0] == 127
        case .v6 where raw.count >= 24:
            let bytes = Array(raw[8..<24])
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
                prefix = Array(bytes[12..<16])
                loopback = prefix[0] == 127
            } else {
                prefix = Array(bytes[0..<8])
                loopback = bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1
            }
        default:
            return nil
        }
    }
}

/// Closes an outgoing connection when ``IdleStateHandler`` reports that nothing was read or written for its timeout,
/// unless `shouldClose` says no (a pinned uplink).
final class OutgoingIdleCloser: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let shouldClose: @Sendable () -> Bool

    init(shouldClose: @escaping @Sendable () -> Bool) { self.shouldClose = shouldClose }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? IdleStateHandler.IdleStateEvent, event == .all {
            if shouldClose() { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
