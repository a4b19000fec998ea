// TCP portals (spec §2.5): an inlet accepts local TCP clients and tunnels each through a route to an outlet,
// which connects to the target; bytes travel as Ockam PortalMessages (Ping/Pong/Disconnect/Payload).
import EdgeNIO
import EdgeNode
import EdgeRouting
import EdgeSync
import EdgeWire
import Logging
import NIOCore
import NIOPosix

/// Ockam's `PortalMessage`, hand-encoded as Ockam does: `00` Ping, `01` Pong, `02` Disconnect,
/// `03 <uleb128 len> <bytes> [01 <u16 LE counter>]` Payload.
public enum PortalMessage: Equatable, Sendable {
    case ping
    case pong
    case disconnect
    case payload([UInt8], counter: UInt16?)

    /// Ockam's `MAX_PAYLOAD_SIZE`: TCP reads are cut into chunks of at most 48 KiB.
    public static let maxPayloadSize = 49152

    public func encode() -> [UInt8] {
        switch self {
        case .ping: return [0]
        case .pong: return [1]
        case .disconnect: return [2]
        case .payload(let bytes, let counter):
            var out: [UInt8] = [3]
            out.reserveCapacity(bytes.count + 8)
            BARE.writeBytes(bytes, into: &out)
            if let counter { out += [1, UInt8(counter & 0xff), UInt8(counter >> 8)] }
            return out
        }
    }

    public init(decoding bytes: [UInt8]) throws(WireError) {
        guard let kind = bytes.first else { throw .truncated }
        switch kind {
        case 0: self = .ping
        case 1: self = .pong
        case 2: self = .disconnect
        case 3:
            let input = bytes[...]
            var position = 1
            let data = try BARE.readBytes(input, at: &position, limit: Self.maxPayloadSize * 2)
            var counter: UInt16?
            if bytes.count - position >= 3 && bytes[position] == 1 {
                counter = UInt16(bytes[position + 1]) | UInt16(bytes[position + 2]) << 8
            }
            self = .payload(Array(data), counter: counter)
        default:
            throw .unsupported("portal message type \(kind)")
        }
    }
}

/// Shared state of one portal connection half (inlet side or outlet side).
final class PortalConnection: Sendable {
    private struct State: ~Copyable {
        var peerRoute: Route?
        var channel: (any Channel)?
        var closed = false
        var expectedCounter: UInt16 = 0
        var pendingOutbound: [[UInt8]] = []
    }
    private let state = EdgeMutex(State())

    var peerRoute: Route? { state.withLock { $0.peerRoute } }
    var isClosed: Bool { state.withLock { $0.closed } }

    func setPeer(_ route: Route) { state.withLock { $0.peerRoute = route } }
    func setChannel(_ channel: any Channel) { state.withLock { $0.channel = channel } }
    var channel: (any Channel)? { state.withLock { $0.channel } }

    /// Marks closed once; returns true the first time.
    func markClosed() -> Bool {
        state.withLock { s in
            if s.closed { return false }
            s.closed = true
            return true
        }
    }

    /// Ockam's optional packet counter must run 0, 1, 2, … when present.
    func checkCounter(_ counter: UInt16?) -> Bool {
        guard let counter else { return true }
        return state.withLock { s in
            guard counter == s.expectedCounter else { return false }
            s.expectedCounter &+= 1
            return true
        }
    }
}

/// Writes received Payloads to the socket and reacts to Disconnect. Runs at a portal connection's address.
struct PortalSocketWorker: Worker {
    let connection: PortalConnection
    /// The inlet waits for Pong before it knows its peer; the outlet knows it from the Ping.
    let isInlet: Bool
    let onPong: @Sendable (Route) -> Void

    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        let portal = try PortalMessage(decoding: message.payload)
        switch portal {
        case .pong where isInlet:
            connection.setPeer(message.returnRoute)
            onPong(message.returnRoute)
        case .payload(let bytes, let counter):
            guard connection.checkCounter(counter), let channel = connection.channel else {
                await teardown(context: context, notifyPeer: true)
                return
            }
            let promise = channel.eventLoop.makePromise(of: Void.self)
            channel.writeAndFlush(ByteBuffer(bytes: bytes), promise: promise)
            if !channel.isWritable { try? await promise.futureResult.get() }
        case .disconnect:
            await teardown(context: context, notifyPeer: false)
        case .ping, .pong:
            context.logger.debug("unexpected portal message \(portal)")
        }
    }

    func teardown(context: WorkerContext, notifyPeer: Bool) async {
        guard connection.markClosed() else { return }
        if notifyPeer, let peer = connection.peerRoute {
            try? await context.send(to: peer, payload: PortalMessage.disconnect.encode())
        }
        try? await connection.channel?.close()
        context.node.stopWorkerNoWait(at: context.address)
    }

    func shutdown(context: WorkerContext) async {
        if connection.markClosed() {
            if let peer = connection.peerRoute {
                try? await context.send(to: peer, payload: PortalMessage.disconnect.encode())
            }
            try? await connection.channel?.close()
        }
    }
}

/// Reads a portal's TCP socket and sends Payload messages to the peer; EOF sends Disconnect.
func pumpSocket(
    _ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, connection: PortalConnection, node: Node, address: Address,
    logger: Logger
) async {
    do {
        try await channel.executeThenClose { inbound, _ in
            for try await var buffer in inbound {
                guard let peer = connection.peerRoute, !connection.isClosed else { break }
                while buffer.readableBytes > 0 {
                    let chunk = buffer.readBytes(length: min(buffer.readableBytes, PortalMessage.maxPayloadSize)) ?? []
                    try await node.send(
                        LocalMessage(
                            onwardRoute: peer, returnRoute: [address],
                            payload: PortalMessage.payload(chunk, counter: nil).encode()))
                }
            }
        }
    } catch {
        logger.debug("portal socket at \(address) ended: \(error)")
    }
    if connection.markClosed(), let peer = connection.peerRoute {
        try? await node.send(LocalMessage(onwardRoute: peer, returnRoute: [address], payload: PortalMessage.disconnect.encode()))
    }
    node.stopWorkerNoWait(at: address)
}

/// The outlet: a worker (default `outlet`) that accepts Pings, connects to `target` and answers Pong.
public struct OutletListener: Worker {
    public static let defaultAddress = Address.local("outlet")
    let host: String
    let port: Int
    let group: any EventLoopGroup

    public init(target: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        (host, port) = try TCPTransport.splitHostPort(target)
        self.group = group
    }

    public func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        guard case .ping = try PortalMessage(decoding: message.payload) else {
            context.logger.debug("outlet accepts only Ping")
            return
        }
        let peer = message.returnRoute
        let address = Address.random()
        let connection = PortalConnection()
        connection.setPeer(peer)
        let node = context.node
        let logger = context.logger
        let (host, port, group) = (self.host, self.port, self.group)
        // Connect first, then Pong (as Ockam); a failed connect answers Disconnect.
        Task {
            let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
            do {
                channel = try await ClientBootstrap(group: group)
                    .connect(host: host, port: port) { ch in
                        ch.eventLoop.makeCompletedFuture {
                            try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch)
                        }
                    }
            } catch {
                logger.warning("outlet cannot connect to \(host):\(port): \(error)")
                try? await node.send(
                    LocalMessage(onwardRoute: peer, returnRoute: [address], payload: PortalMessage.disconnect.encode()))
                return
            }
            do {
                connection.setChannel(channel.channel)
                try node.startWorker(
                    PortalSocketWorker(connection: connection, isInlet: false, onPong: { _ in }), at: address)
                try await node.send(LocalMessage(onwardRoute: peer, returnRoute: [address], payload: PortalMessage.pong.encode()))
            } catch {
                // The Ping's return route is the peer's: the Pong may well not be deliverable (the peer closed its
                // connection or channel right after the Ping). Close the target connection; dropping the channel
                // without finishing its writer would trap.
                logger.warning("outlet cannot answer \(peer): \(error)")
                node.stopWorkerNoWait(at: address)
                try? await channel.executeThenClose { _, _ in }
                return
            }
            await pumpSocket(channel, connection: connection, node: node, address: address, logger: logger)
        }
    }
}

/// The inlet: a local TCP listener; each client is tunnelled to the outlet at `outletRoute`.
public final class Inlet: Sendable {
    public let node: Node
    private let route: EdgeMutex<Route>
    private let server: any Channel
    public let boundAddress: SocketAddress

    private init(node: Node, outletRoute: Route, server: any Channel, bound: SocketAddress) {
        self.node = node
        route = EdgeMutex(outletRoute)
        self.server = server
        boundAddress = bound
    }

    /// Where new connections are tunnelled (a session replaces it when the channel is re-created).
    public var outletRoute: Route { route.withLock { $0 } }
    public func updateOutletRoute(_ newRoute: Route) { route.withLock { $0 = newRoute } }

    /// Listens on `host:port` and tunnels every accepted connection to `outletRoute` (e.g. `[encryptor, 0#outlet]`).
    public static func start(
        node: Node, listen host: String, port: Int, outletRoute: Route, pongTimeout: Duration = .seconds(10),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> Inlet {
        let accepted = AcceptedChannels<ByteBuffer, ByteBuffer>()
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)  // read nothing until the outlet answered
            .bind(host: host, port: port) { child in
                child.eventLoop.makeCompletedFuture { try accepted.wrap(child) }
            }
        guard let bound = server.channel.localAddress else { throw TCPTransportError.connectionClosed }
        let inlet = Inlet(node: node, outletRoute: outletRoute, server: server.channel, bound: bound)
        let logger = node.logger
        Task {
            try? await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { clients in
                    for try await client in clients {
                        accepted.claim(client)
                        group.addTask {
                            await inlet.serve(client, pongTimeout: pongTimeout, logger: logger)
                        }
                    }
                }
            }
            await accepted.closeUnclaimed()
        }
        return inlet
    }

    private func serve(_ client: NIOAsyncChannel<ByteBuffer, ByteBuffer>, pongTimeout: Duration, logger: Logger) async {
        let address = Address.random()
        let connection = PortalConnection()
        connection.setChannel(client.channel)
        let outletRoute = self.outletRoute
        let (pongs, pongContinuation) = AsyncStream<Route>.makeStream()
        do {
            try node.startWorker(
                PortalSocketWorker(connection: connection, isInlet: true, onPong: { pongContinuation.yield($0) }),
                at: address)
            try await node.send(LocalMessage(onwardRoute: outletRoute, returnRoute: [address], payload: PortalMessage.ping.encode()))
        } catch {
            logger.warning("inlet cannot reach the outlet at \(outletRoute): \(error)")
            try? await client.executeThenClose { _, _ in }  // finishes the writer: dropping it unfinished traps
            return
        }
        let answered: Bool = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                var iterator = pongs.makeAsyncIterator()
                return await iterator.next() != nil
            }
            group.addTask {
                try? await Task.sleep(for: pongTimeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            pongContinuation.finish()
            return first
        }
        guard answered else {
            logger.warning("outlet at \(outletRoute) did not answer within \(pongTimeout)")
            node.stopWorkerNoWait(at: address)
            try? await client.executeThenClose { _, _ in }  // finishes the writer: dropping it unfinished traps
            return
        }
        client.channel.setOption(.autoRead, value: true).whenComplete { _ in }
        client.channel.read()
        await pumpSocket(client, connection: connection, node: node, address: address, logger: logger)
    }

    public func stop() async {
        try? await server.close()
    }
}
