import EdgeNIO
import EdgeNode
import EdgeTestSupport
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

@testable import EdgeTransportTCP

#if canImport(Glibc)
import Glibc
#endif

/// Connections accepted while a listener closes must be closed, never dropped with their writer unfinished (which
/// traps the process: swift-nio issues 2637 and 2813).
@Suite("Accepting while shutting down")
struct AcceptRaceTests {
    @Test func anAcceptedChannelNoLoopTookIsClosedNotDropped() async throws {
        let accepted = AcceptedChannels<ByteBuffer, ByteBuffer>()
        let child = NIOAsyncTestingChannel()
        try await child.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1))
        // Wrapped and then dropped, as NIO drops a child buffered in a listener that closed.
        try await child.eventLoop.submit { _ = try accepted.wrap(child) }.get()
        #expect(accepted.unclaimedCount == 1)
        await accepted.closeUnclaimed()
        #expect(accepted.unclaimedCount == 0)
        #expect(!child.isActive)

        // One wrapped after the loop ended (its setup ran on another event loop while the listener closed) is closed
        // too, without anyone calling closeUnclaimed again.
        let late = NIOAsyncTestingChannel()
        try await late.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1))
        try await late.eventLoop.submit { _ = try accepted.wrap(late) }.get()
        try await eventually("the late channel is closed") { !late.isActive }

        // A claimed one is the loop's: closeUnclaimed leaves it alone.
        let serving = AcceptedChannels<ByteBuffer, ByteBuffer>()
        let other = NIOAsyncTestingChannel()
        try await other.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1))
        let wrapped = try await other.eventLoop.submit { try serving.wrap(other) }.get()
        serving.claim(wrapped)
        await serving.closeUnclaimed()
        #expect(other.isActive)
        try await wrapped.executeThenClose { _, _ in }
        #expect(!other.isActive)
    }

    /// Bursts of connections land on a node that shuts down at once: the process survives, and every connection the
    /// node accepted is closed (the client reads EOF or a reset), none left open.
    @Test func aBurstOfConnectionsDuringShutdownClosesEveryOne() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        for round in 0..<10 {
            let node = try await TestNode.start(name: "burst\(round)", group: group)
            var clients: [Int32] = []
            for _ in 0..<64 {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = in_port_t(UInt16(node.port).bigEndian)
                address.sin_addr.s_addr = inet_addr("127.0.0.1")
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                if connected == 0 { clients.append(fd) } else { close(fd) }
            }
            await node.stop()
            #expect(!clients.isEmpty, "round \(round): no connection got in")
            for fd in clients {
                // The server side wrote its version byte (if it registered the connection) and closed.
                var pollFD = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                var buffer = [UInt8](repeating: 0, count: 16)
                var ended = false
                let deadline = ContinuousClock.now + .seconds(10)
                while !ended && ContinuousClock.now < deadline {
                    guard poll(&pollFD, 1, 100) > 0 else { continue }
                    let n = read(fd, &buffer, buffer.count)
                    ended = n <= 0
                }
                #expect(ended, "round \(round): a connection the node accepted is still open after its shutdown")
                close(fd)
            }
        }
    }
}
