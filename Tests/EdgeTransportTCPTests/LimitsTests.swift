import EdgeSync
import EdgeNode
import EdgeRouting
import EdgeTestSupport
import EdgeWire
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import EdgeTransportTCP

#if canImport(Glibc)
import Glibc
#endif

/// The read deadlines as a pure machine (finding F2): what is armed when, for which bytes.
@Suite("TCP read deadlines")
struct ReadDeadlineTests {
    let limits = OckamTCPReadDeadline.Limits(versionTimeout: .seconds(10), frameTimeout: .seconds(30), frameMinimumRate: 10_000)
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func bytes(_ values: [UInt8]) -> ByteBufferView { ByteBuffer(bytes: values).readableBytesView }

    @Test func allowanceIsTheBasePlusTheLengthAtTheMinimumRate() {
        #expect(limits.allowance(forFrameOf: 1) == .seconds(30) + .microseconds(100))
        #expect(limits.allowance(forFrameOf: 65_536) == .seconds(30) + .milliseconds(6_553) + .microseconds(600))
        #expect(limits.allowance(forFrameOf: UInt32(ockamTCPMaxFrameSize)) == .seconds(30) + .microseconds(1_677_721_600))
    }

    @Test func versionThenIdleThenAFrameSplitAcrossReads() {
        var deadline = OckamTCPReadDeadline(limits: limits)
        #expect(deadline.start(now: t0) == .arm(t0 + .seconds(10)))
        #expect(deadline.timeoutError == .versionTimeout)
        #expect(deadline.received(bytes([0x01]), now: t0 + .seconds(1)) == .cancel)  // idle between frames: no deadline
        let t1 = t0 + .seconds(100)
        #expect(deadline.received(bytes([0, 0]), now: t1) == .arm(t1 + .seconds(30)))  // prefix incomplete: the base
        #expect(deadline.timeoutError == .frameTimeout(length: nil, allowed: .seconds(30)))
        // The length is known: measured from the frame's first byte, not from now.
        #expect(deadline.received(bytes([0x27, 0x10, 0xAA]), now: t1 + .seconds(5)) == .arm(t1 + .seconds(31)))
        #expect(deadline.timeoutError == .frameTimeout(length: 10_000, allowed: .seconds(31)))
        #expect(deadline.received(bytes([UInt8](repeating: 0, count: 9_998)), now: t1 + .seconds(6)) == .unchanged)
        #expect(deadline.received(bytes([0]), now: t1 + .seconds(7)) == .cancel)
    }

    @Test func severalFramesInOneReadEndWithTheLastFramesDeadline() {
        var deadline = OckamTCPReadDeadline(limits: limits)
        _ = deadline.start(now: t0)
        // version, a complete 1-byte frame, then the first 2 bytes of the next prefix
        #expect(deadline.received(bytes([0x01, 0, 0, 0, 1, 0x80, 0, 0]), now: t0) == .arm(t0 + .seconds(30)))
        // a complete frame only: nothing pending
        var other = OckamTCPReadDeadline(limits: limits)
        #expect(other.received(bytes([0x01, 0, 0, 0, 2, 0x80, 0x80]), now: t0) == .cancel)
    }
}

/// A sink that counts what it receives.
final class CountingWorker: Worker {
    let received = EdgeMutex(0)
    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws { received.withLock { $0 += 1 } }
}

// In the loopback suite: these tests block on raw sockets, and that suite runs one such test at a time (a blocked
// test holds one of the few cooperative threads the transport's tasks need).
extension LoopbackTests {
    func start(_ configure: (inout TCPTransportOptions) -> Void) async throws -> (Node, TCPTransport, Int) {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let node = Node(logger: logger, options: Node.Options(forwarding: .any))
        try node.startDefaultServices()
        var options = TCPTransportOptions()
        configure(&options)
        let tcp = TCPTransport(node: node, group: group, options: options)
        let port = try await tcp.listen(host: "127.0.0.1", port: 0).port!
        return (node, tcp, port)
    }

    @Test func tricklingPeerIsDisconnectedByTheFrameDeadlineAndCounted() async throws {
        let (node, tcp, port) = try await start {
            $0.frameTimeout = .milliseconds(300)
            $0.frameMinimumRate = 1_000_000  // 1,000 bytes: +1 ms
        }
        let client = try RawClient(port: port)
        client.send([0x01, 0, 0, 0, 4, 0x83, 0x80, 0x80, 0x40])  // version and a heartbeat: a complete frame
        #expect(await client.read(1) == [0x01])
        try await eventually("connection registered") { tcp.connections.count == 1 }
        // A frame of 1,000 bytes, one byte every 20 ms: it would take 20 s.
        client.send([0, 0, 0x03, 0xE8])
        var trickled = 0
        while tcp.counters.frameTimeouts == 0 && trickled < 1_000 {
            client.send([0x00])
            trickled += 1
            try await Task.sleep(for: .milliseconds(20))  // the trickle's pace, not a wait for the result
        }
        #expect(tcp.counters.frameTimeouts == 1)
        #expect(trickled < 1_000, "closed before the frame could complete")
        #expect(await client.readsEOF())
        try await eventually("connection removed") { tcp.connections.isEmpty }
        #expect(tcp.counters.versionTimeouts == 0)
        #expect(node.counters.droppedHeartbeat == 1)
        await tcp.shutdown()
        await node.shutdown()
    }

    @Test func silentPeerIsCountedAsAVersionTimeout() async throws {
        let (node, tcp, port) = try await start { $0.versionTimeout = .milliseconds(300) }
        let client = try RawClient(port: port)
        // Our version byte (unless the timeout beat the task that writes it), then EOF.
        if let first = await client.read(1) {
            #expect(first == [0x01])
            #expect(await client.readsEOF())
        }
        try await eventually("counted") { tcp.counters.versionTimeouts == 1 }
        #expect(tcp.counters.frameTimeouts == 0)
        await tcp.shutdown()
        await node.shutdown()
    }

    @Test func listenerRefusesConnectionsOverItsCapAndCountsThem() async throws {
        let (node, tcp, port) = try await start { $0.maxConnectionsPerListener = 2 }
        var first: RawClient? = try RawClient(port: port)
        let second = try RawClient(port: port)
        #expect(await first?.read(1) == [0x01])
        #expect(await second.read(1) == [0x01])
        let third = try RawClient(port: port)
        #expect(await third.readsEOF(), "closed at once, before our version byte")
        #expect(tcp.counters.connectionsRefusedOverCap == 1)
        #expect(tcp.counters.connectionsAccepted == 2)
        #expect(tcp.servedConnections == [2])
        first = nil  // hang up: a slot frees
        try await eventually("slot freed") { tcp.servedConnections == [1] }
        let fourth = try RawClient(port: port)
        #expect(await fourth.read(1) == [0x01])
        fourth.send([0x01] + RawClient.frame(RoutingMessage(onwardRoute: [.local("echo")], returnRoute: [.local("app")], payload: [5])))
        #expect(await fourth.readFrame()?.payload == [5])
        #expect(tcp.counters.connectionsAccepted == 3)
        #expect(tcp.counters.connectionsRefusedOverCap == 1)
        await tcp.shutdown()
        await node.shutdown()
    }

    @Test func oneHostIsRefusedOverThePerHostCapWhileTheListenerHasRoom() async throws {
        // Loopback is exempt by default; capLoopbackHosts lets the test play a remote host from 127.0.0.1.
        let (node, tcp, port) = try await start {
            $0.maxConnectionsPerListener = 10
            $0.maxConnectionsPerHost = 2
            $0.capLoopbackHosts = true
        }
        var first: RawClient? = try RawClient(port: port)
        let second = try RawClient(port: port)
        #expect(await first?.read(1) == [0x01])
        #expect(await second.read(1) == [0x01])
        let third = try RawClient(port: port)
        #expect(await third.readsEOF(), "closed at once, before our version byte")
        #expect(tcp.counters.connectionsRefusedOverHostCap == 1)
        #expect(tcp.counters.connectionsRefusedOverCap == 0)
        #expect(tcp.servedConnections == [2])
        first = nil  // hang up: the host's slot frees
        try await eventually("slot freed") { tcp.servedConnections == [1] }
        let fourth = try RawClient(port: port)
        #expect(await fourth.read(1) == [0x01])
        #expect(tcp.counters.connectionsAccepted == 3)
        await tcp.shutdown()
        await node.shutdown()
    }

    @Test func loopbackPeersAreExemptFromThePerHostCapByDefault() async throws {
        let (node, tcp, port) = try await start { $0.maxConnectionsPerHost = 1 }
        let clients = try (0..<3).map { _ in try RawClient(port: port) }
        for client in clients { #expect(await client.read(1) == [0x01]) }
        #expect(tcp.counters.connectionsRefusedOverHostCap == 0)
        #expect(tcp.servedConnections == [3])
        await tcp.shutdown()
        await node.shutdown()
    }

    /// A well-framed message that is not a valid routing message (garbage, a route over the limit, a float where the
    /// tracing context goes) is dropped and counted; the connection, and what else travels on it, lives on.
    @Test func aMalformedMessageIsDroppedAndTheConnectionLivesOn() async throws {
        let (node, tcp, port) = try await start { _ in }
        let client = try RawClient(port: port)
        let echo = RoutingMessage(onwardRoute: [.local("echo")], returnRoute: [.local("app")], payload: [7])
        let tooLong = RoutingMessage(
            onwardRoute: [.local("echo")], returnRoute: Route((0..<65).map { _ in .local("r") }), payload: [1])
        // [onward, return, payload, 1.5 as a half float]: the fourth item is the tracing context, a text string.
        var withFloat = RoutingMessage(onwardRoute: [.local("echo")], returnRoute: [.local("app")], payload: [8]).encode()
        withFloat[0] = 0x84
        withFloat += [0xf9, 0x3e, 0x00]
        client.send([0x01] + RawClient.frame(bytes: [0xff, 0x00, 0x13]) + RawClient.frame(tooLong) + RawClient.frame(echo))
        #expect(await client.read(1) == [0x01])
        #expect(await client.readFrame()?.payload == [7])
        client.send(RawClient.frame(bytes: withFloat) + RawClient.frame(echo))
        #expect(await client.readFrame()?.payload == [7])
        #expect(tcp.counters.messagesDroppedMalformed == 3)
        #expect(tcp.connections.count == 1)
        await tcp.shutdown()
        await node.shutdown()
    }

    /// The gateway case: a peer's return route is at the limit, this node adds its own hop, and the next hop would
    /// have to refuse the result. It is not sent (counted), and the connection to the next hop stays up for others.
    @Test func aMessageTheNextHopMustRefuseIsNotForwarded() async throws {
        let (cloud, cloudTCP, cloudPort) = try await start { _ in }
        let (gateway, gatewayTCP, gatewayPort) = try await start { _ in }
        let device = try RawClient(port: gatewayPort)
        #expect(await device.read(1) == [0x01])
        let full = Route((0..<64).map { _ in .local("r") })
        let viaCloud: Route = [.tcp("127.0.0.1:\(cloudPort)"), .local("echo")]
        device.send([0x01] + RawClient.frame(RoutingMessage(onwardRoute: viaCloud, returnRoute: full, payload: [1])))
        try await eventually("dropped before the cloud") { gatewayTCP.counters.messagesDroppedOverLimit == 1 }
        #expect(cloudTCP.counters.messagesDroppedMalformed == 0)
        // The same path with a shorter return route works, over the same connections.
        device.send(RawClient.frame(RoutingMessage(onwardRoute: viaCloud, returnRoute: [.local("app")], payload: [2])))
        #expect(await device.readFrame()?.payload == [2])
        #expect(gatewayTCP.connections.count == 2 && cloudTCP.connections.count == 1)
        await gatewayTCP.shutdown()
        await gateway.shutdown()
        await cloudTCP.shutdown()
        await cloud.shutdown()
    }

    /// A peer that sends requests to `echo` and never reads the replies: echo drops the replies its connection cannot
    /// take instead of waiting (others keep being served), and the connection is closed as a slow reader.
    @Test func aPeerThatNeverReadsStallsNobodyAndIsClosed() async throws {
        let (node, tcp, port) = try await start {
            $0.frameTimeout = .seconds(1)
            $0.frameMinimumRate = 10_000_000
        }
        let slow = try RawClient(port: port)
        #expect(await slow.read(1) == [0x01])
        let request = RawClient.frame(
            RoutingMessage(onwardRoute: [.local("echo")], returnRoute: [.local("app")], payload: [UInt8](repeating: 7, count: 64 << 10)))
        var burst: [UInt8] = [0x01]
        for _ in 0..<320 { burst += request }  // 20 MiB of replies: more than the socket buffers, NIO's window and the mailbox
        let bytes = burst
        try await blocking { slow.send(bytes) }
        // Meanwhile another client is served by the same echo.
        let other = try RawClient(port: port)
        #expect(await other.read(1) == [0x01])
        for i in 0..<5 {
            other.send((i == 0 ? [0x01] : []) + RawClient.frame(
                RoutingMessage(onwardRoute: [.local("echo")], returnRoute: [.local("me")], payload: [UInt8(i)])))
            #expect(await other.readFrame()?.payload == [UInt8(i)])
        }
        try await eventually("the slow reader's connection was closed", within: .seconds(30)) {
            tcp.counters.connectionsClosedSlowReader == 1
        }
        #expect(node.counters.droppedMailboxFull > 0, "echo dropped replies rather than wait")
        try await eventually("only the other client is left") { tcp.connections.count == 1 }
        await tcp.shutdown()
        await node.shutdown()
    }

    /// Frames that announce 1 MiB and stall hold what has arrived; past the listener's cap the connection holding the
    /// most is cut, then past the host's cap the host's biggest; the others live on.
    @Test func stalledFramesAreCutBiggestFirstPastTheListenerAndHostCaps() async throws {
        let (node, tcp, port) = try await start {
            $0.maxUnfinishedBytesPerListener = 300 << 10
            $0.maxUnfinishedBytesPerHost = nil
        }
        func stall(_ bytes: Int) async throws -> RawClient {
            let client = try RawClient(port: port)
            #expect(await client.read(1) == [0x01])
            client.send([0x01, 0x00, 0x10, 0x00, 0x00] + [UInt8](repeating: 0xa0, count: bytes))  // announces 1 MiB
            return client
        }
        let small = try await stall(60 << 10)
        let middle = try await stall(100 << 10)
        try await eventually("both partial frames are accounted for") { tcp.unfinishedBytes(listener: 0) >= 160 << 10 }
        let big = try await stall(150 << 10)  // 310 KiB in all: over 300 KiB
        try await eventually("one connection cut") { tcp.counters.connectionsCutUnfinishedFrames == 1 }
        #expect(await big.readsEOF(), "the biggest is cut")
        try await eventually("the cut connection is gone, the other two stay") { tcp.connections.count == 2 }
        #expect(tcp.unfinishedBytes(listener: 0) <= 300 << 10)
        // The others still work: complete `small`'s frame is not needed; a fresh client is served.
        let fresh = try RawClient(port: port)
        #expect(await fresh.read(1) == [0x01])
        fresh.send([0x01] + RawClient.frame(RoutingMessage(onwardRoute: [.local("echo")], returnRoute: [.local("me")], payload: [5])))
        #expect(await fresh.readFrame()?.payload == [5])
        _ = (small, middle)
        await tcp.shutdown()
        await node.shutdown()

        let (hostNode, hostTCP, hostPort) = try await start {
            $0.maxUnfinishedBytesPerListener = 64 << 20
            $0.maxUnfinishedBytesPerHost = 200 << 10
        }
        let first = try RawClient(port: hostPort)
        #expect(await first.read(1) == [0x01])
        first.send([0x01, 0x00, 0x10, 0x00, 0x00] + [UInt8](repeating: 1, count: 120 << 10))
        try await eventually("the first partial frame is accounted for") { hostTCP.unfinishedBytes(listener: 0) >= 120 << 10 }
        let second = try RawClient(port: hostPort)
        #expect(await second.read(1) == [0x01])
        second.send([0x01, 0x00, 0x10, 0x00, 0x00] + [UInt8](repeating: 2, count: 100 << 10))
        try await eventually("the host's biggest was cut") { hostTCP.counters.connectionsCutUnfinishedFrames == 1 }
        #expect(await first.readsEOF())
        try await eventually("only the second is left") { hostTCP.connections.count == 1 }
        _ = second
        await hostTCP.shutdown()
        await hostNode.shutdown()
    }

    /// Outgoing connections close when nothing went over them for the idle timeout, except to pinned destinations
    /// (configured uplinks); the next message to a closed one opens a new connection.
    @Test func idleOutgoingConnectionsCloseUnlessPinned() async throws {
        let (first, firstTCP, firstPort) = try await start { _ in }
        let (second, secondTCP, secondPort) = try await start { _ in }
        // Long enough that a loaded machine (a sanitizer stage) answers an echo within it, so only real idleness counts.
        let (client, clientTCP, _) = try await start { $0.outgoingIdleTimeout = .seconds(2) }
        clientTCP.pin(["127.0.0.1:0\(secondPort)"])  // any spelling
        for port in [firstPort, secondPort] {
            let reply = try await client.request(to: [.tcp("127.0.0.1:\(port)"), .local("echo")], payload: [1], timeout: .seconds(30))
            #expect(reply.payload == [1])
        }
        try await eventually("the unpinned connection closed") {
            clientTCP.counters.outgoingClosedIdle == 1 && clientTCP.connections.count == 1
        }
        #expect(clientTCP.connections.map(\.peer) == ["127.0.0.1:\(secondPort)"], "the pinned one, as idle, stays")
        let again = try await client.request(to: [.tcp("127.0.0.1:\(firstPort)"), .local("echo")], payload: [2], timeout: .seconds(30))
        #expect(again.payload == [2])
        for (node, tcp) in [(client, clientTCP), (first, firstTCP), (second, secondTCP)] {
            await tcp.shutdown()
            await node.shutdown()
        }
    }

    @Test func messagesQueuedBeforeShutdownAreWrittenBeforeTheConnectionCloses() async throws {
        let (b, btcp, port) = try await start { _ in }
        let sink = CountingWorker()
        try b.startWorker(sink, at: .local("sink"), options: WorkerOptions(reach: .links))
        let (a, atcp, _) = try await start { $0.shutdownFlushTimeout = .seconds(20) }  // (not the bound under test)
        for i in 0..<200 {
            try await a.send(LocalMessage(onwardRoute: [.tcp("127.0.0.1:\(port)"), .local("sink")], returnRoute: [], payload: [UInt8(i % 256)]))
        }
        await atcp.shutdown()  // at once, as a short-lived CLI node does after closing its channels (F4)
        try await eventually("all 200 delivered", within: .seconds(30)) {
            sink.received.withLock { $0 } == 200
        }
        await a.shutdown()
        await btcp.shutdown()
        await b.shutdown()
    }
}

@Suite("TCP per-host key")
struct TCPHostKeyTests {
    func key(_ ip: String) throws -> TCPHostKey {
        try #require(TCPHostKey(listener: 0, address: try SocketAddress(ipAddress: ip, port: 4000)))
    }

    @Test func ipv4CountsPerAddressAndIPv6PerSlash64() throws {
        #expect(try key("10.0.0.5") == key("10.0.0.5"))
        #expect(try key("10.0.0.5") != key("10.0.0.6"))
        #expect(try key("10.0.0.5").prefix == [10, 0, 0, 5])
        // One IPv6 host picks any address of its /64: they all count as one.
        #expect(try key("2001:db8:1:2::1") == key("2001:db8:1:2:ffff:1234:5678:9abc"))
        #expect(try key("2001:db8:1:2::1") != key("2001:db8:1:3::1"))
        #expect(try key("2001:db8:1:2::1").prefix.count == 8)
        // An IPv4-mapped address is the IPv4 host.
        #expect(try key("::ffff:10.0.0.5").prefix == [10, 0, 0, 5])
        // Per listener.
        #expect(TCPHostKey(listener: 1, address: try SocketAddress(ipAddress: "10.0.0.5", port: 1)) != (try key("10.0.0.5")))
    }

    @Test func loopbackIsRecognised() throws {
        #expect(try key("127.0.0.1").loopback)
        #expect(try key("127.3.4.5").loopback)
        #expect(try key("::1").loopback)
        #expect(try key("::ffff:127.0.0.1").loopback)
        #expect(try !key("10.0.0.1").loopback)
        #expect(try !key("::2").loopback)
        #expect(try !key("2001:db8::1").loopback)
    }
}


@Suite("TCP close reasons")
struct TCPCloseReasonTests {
    /// What a user reads when a connection ends: the cause, not the system call NIO saw it in.
    @Test func socketErrorsAreNamedByCause() {
        #expect(TCPTransport.closeReason(IOError(errnoCode: ECONNRESET, reason: "read(descriptor:pointer:size:)")) == "reset by peer")
        #expect(TCPTransport.closeReason(IOError(errnoCode: EPIPE, reason: "write")) == "closed by peer")
        #expect(TCPTransport.closeReason(IOError(errnoCode: ETIMEDOUT, reason: "read")).hasPrefix("timed out"))
        // Anything else keeps NIO's full description, errno included.
        #expect(TCPTransport.closeReason(IOError(errnoCode: EBADF, reason: "read")).contains("errno: \(EBADF)"))
    }
}
