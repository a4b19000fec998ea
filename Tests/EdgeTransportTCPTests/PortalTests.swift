import EdgeNode
import EdgeRouting
import EdgeSync
import EdgeTestSupport
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import EdgeTransportTCP

/// Counts the connections a plain NIO listener accepted and saw closed (a portal outlet's target).
final class ConnectionCounter: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let counts = EdgeMutex((opened: 0, closed: 0))
    var opened: Int { counts.withLock { $0.opened } }
    var closed: Int { counts.withLock { $0.closed } }
    func channelActive(context: ChannelHandlerContext) {
        counts.withLock { $0.opened += 1 }
        context.fireChannelActive()
    }
    func channelInactive(context: ChannelHandlerContext) {
        counts.withLock { $0.closed += 1 }
        context.fireChannelInactive()
    }
}

@Suite("TCP portals")
struct PortalTests {
    @Test func outletWhosePongCannotBeDeliveredClosesTheTargetConnection() async throws {
        // The Ping's return route is the peer's: here its first hop does not exist (as when the peer's connection or
        // channel closed right after the Ping). The outlet has connected to the target by then and must close that
        // channel: dropping it with its writer unfinished traps ("Deinited NIOAsyncWriter without calling finish()").
        let counter = ConnectionCounter()
        let target = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(counter) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        var logger = Logger(label: "test.outlet")
        logger.logLevel = .critical
        let node = Node(logger: logger)
        try node.startWorker(
            try OutletListener(target: "127.0.0.1:\(target.localAddress!.port!)"), at: OutletListener.defaultAddress)
        for _ in 0..<3 {
            try await node.send(
                LocalMessage(
                    onwardRoute: [OutletListener.defaultAddress], returnRoute: [.local("gone")],
                    payload: PortalMessage.ping.encode()))
        }
        try await eventually("the outlet closed its three target connections") { counter.closed == 3 }
        #expect(counter.opened == 3)
        // Only the outlet is left: no portal worker stays behind for a Pong that was never delivered.
        try await eventually("the portal workers stopped") { node.workerAddresses == [OutletListener.defaultAddress] }
        await node.shutdown()
        try await target.close()
    }
}
