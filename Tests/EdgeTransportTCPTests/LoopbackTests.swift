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

/// A raw TCP client for feeding a listener hostile bytes. Reads block (on a GCD thread, never on the concurrency pool,
/// which the transport under test needs) and time out after 10 s (a guard against hangs, not a synchronisation device).
final class RawClient: @unchecked Sendable {  // used by one test at a time
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TCPTransportError.connectionClosed }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        // No close here: a class whose init throws after every property is set still runs deinit, which closes.
        guard result == 0 else { throw TCPTransportError.connectionClosed }
    }

    deinit { if fd >= 0 { close(fd) } }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }

    /// Reads exactly `count` bytes, or nil on EOF/error/timeout.
    func read(_ count: Int) async -> [UInt8]? { (try? await blocking { self.readBlocking(count) }) ?? nil }

    /// True when the peer closed the connection (EOF or reset) before sending anything more.
    func readsEOF() async -> Bool { (try? await blocking { self.readsEOFBlocking() }) ?? false }

    /// Reads one routing-message frame (after the version byte has been consumed).
    func readFrame() async -> RoutingMessage? { (try? await blocking { self.readFrameBlocking() }) ?? nil }

    private func readBlocking(_ count: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let n = out[offset...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            offset += n
        }
        return out
    }

    private func readsEOFBlocking() -> Bool {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, 0)
        return n == 0 || (n < 0 && errno == ECONNRESET)
    }

    private func readFrameBlocking() -> RoutingMessage? {
        guard let header = readBlocking(4) else { return nil }
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        guard let body = readBlocking(length) else { return nil }
        return try? RoutingMessage(decoding: body)
    }

    static func frame(_ message: RoutingMessage) -> [UInt8] { frame(bytes: message.encode()) }

    static func frame(bytes body: [UInt8]) -> [UInt8] {
        let n = UInt32(body.count)
        return [UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)] + body
    }
}

/// A node with default services and a TCP listener on an ephemeral loopback port.
struct TestNode {
    let node: Node
    let tcp: TCPTransport
    let port: Int
    let address: String

    static func start(
        name: String, group: any EventLoopGroup, forwarding: ForwardingPolicy = .any, logger: Logger? = nil
    ) async throws -> TestNode {
        var quiet = Logger(label: "test.\(name)")
        quiet.logLevel = .critical
        let node = Node(logger: logger ?? quiet, options: Node.Options(forwarding: forwarding))
        try node.startDefaultServices()
        let tcp = TCPTransport(node: node, group: group)
        let bound = try await tcp.listen(host: "127.0.0.1", port: 0)
        let port = bound.port!
        return TestNode(node: node, tcp: tcp, port: port, address: "127.0.0.1:\(port)")
    }

    func stop() async {
        await tcp.shutdown()
        await node.shutdown()
    }
}

@Suite("TCP transport over loopback", .serialized)
struct LoopbackTests {
    let group = MultiThreadedEventLoopGroup.singleton

    @Test func roundTripBetweenTwoNodesWithCorrectReturnRoutes() async throws {
        let b = try await TestNode.start(name: "b", group: group)
        let a = try await TestNode.start(name: "a", group: group)
        let reply = try await a.node.request(
            to: [.tcp(b.address), .local("uppercase")], payload: BARE.encodeString("hello"), timeout: .seconds(30))
        #expect(try BARE.decodeString(reply.payload) == "HELLO")
        let connection = try #require(a.tcp.connections.first)
        #expect(connection.outgoing)
        #expect(reply.returnRoute == [connection.senderAddress, .local("uppercase")])
        // A second message reuses the connection.
        _ = try await a.node.request(to: [.tcp(b.address), .local("echo")], payload: [1], timeout: .seconds(30))
        #expect(a.tcp.connections.count == 1)
        await a.stop()
        await b.stop()
    }

    @Test func connectingWhileTheNodeShutsDownFailsCleanly() async throws {
        // The connection is established, but the node refuses its sender worker: the transport must close the
        // connection and finish its writer (dropping an unfinished NIOAsyncChannel writer traps), then throw.
        let b = try await TestNode.start(name: "b", group: group)
        let a = try await TestNode.start(name: "a", group: group)
        await a.node.shutdown()
        await #expect(throws: NodeError.shuttingDown) { _ = try await a.tcp.connect(peer: b.address) }
        #expect(a.tcp.connections.isEmpty)
        await a.stop()
        await b.stop()
    }

    @Test func threeNodesWhereTheMiddleOneOnlyForwards() async throws {
        let c = try await TestNode.start(name: "c", group: group)
        let b = try await TestNode.start(name: "b", group: group)
        let a = try await TestNode.start(name: "a", group: group)
        for i in 0..<20 {
            let reply = try await a.node.request(
                to: [.tcp(b.address), .tcp(c.address), .local("uppercase")],
                payload: BARE.encodeString("message \(i)"), timeout: .seconds(30))
            #expect(try BARE.decodeString(reply.payload) == "MESSAGE \(i)")
            let aToB = try #require(a.tcp.connections.first { $0.outgoing })
            let bToC = try #require(b.tcp.connections.first { $0.outgoing })
            // Return route: A's connection to B, B's connection to C, then the service on C.
            #expect(reply.returnRoute == [aToB.senderAddress, bToC.senderAddress, .local("uppercase")])
        }
        // B forwarded 20 requests to C and 20 replies back to A; none reached B's services.
        #expect(b.tcp.connections.count == 2)
        #expect(b.node.counters.workerErrors == 0)
        await a.stop()
        await b.stop()
        await c.stop()
    }

    @Test func nodeWithForwardingDisabledDropsRemoteHops() async throws {
        let c = try await TestNode.start(name: "c", group: group)
        let b = try await TestNode.start(name: "b", group: group, forwarding: .none)
        let a = try await TestNode.start(name: "a", group: group)
        await #expect(throws: NodeError.timeout(.milliseconds(500))) {
            _ = try await a.node.request(
                to: [.tcp(b.address), .tcp(c.address), .local("echo")], payload: [1], timeout: .milliseconds(500))
        }
        try await eventually("B counted the refused hop") { b.node.counters.droppedForwardingDisabled == 1 }
        await a.stop()
        await b.stop()
        await c.stop()
    }

    @Test func rawClientSpeaksTheWireFormat() async throws {
        let b = try await TestNode.start(name: "b", group: group)
        let client = try RawClient(port: b.port)
        client.send([0x01])
        #expect(await client.read(1) == [0x01])
        // A heartbeat is dropped silently and the connection stays usable.
        client.send([0, 0, 0, 4, 0x83, 0x80, 0x80, 0x40])
        let request = RoutingMessage(
            onwardRoute: [.local("uppercase")], returnRoute: [.local("app")], payload: BARE.encodeString("raw"),
            tracingContext: "{\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\"}")
        client.send(RawClient.frame(request))
        let reply = try #require(await client.readFrame())
        #expect(reply.onwardRoute == [.local("app")])
        #expect(reply.returnRoute == [.local("uppercase")])
        #expect(try BARE.decodeString(reply.payload) == "RAW")
        #expect(b.node.counters.droppedHeartbeat == 1)
        await b.stop()
    }

    /// Broken framing closes the connection (there is no resynchronisation); the node serves everyone else.
    @Test(arguments: [
        ("wrong version", [0x02, 0, 0, 0, 1, 0x80] as [UInt8]),
        ("http garbage", Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)),
        ("oversize length", [0x01, 0xff, 0xff, 0xff, 0xff]),
        ("zero length", [0x01, 0, 0, 0, 0]),
    ])
    func hostilePeerIsDisconnectedAndOthersAreServed(name: String, bytes: [UInt8]) async throws {
        let b = try await TestNode.start(name: "b", group: group)
        let bad = try RawClient(port: b.port)
        bad.send(bytes)
        #expect(await bad.read(1) == [0x01], "\(name): version byte first")
        #expect(await bad.readsEOF(), "\(name): connection closed")
        // The node keeps serving everyone else.
        let a = try await TestNode.start(name: "a", group: group)
        let reply = try await a.node.request(to: [.tcp(b.address), .local("echo")], payload: [7], timeout: .seconds(30))
        #expect(reply.payload == [7])
        try await eventually("\(name): bad connection removed") { b.tcp.connections.count == 1 }
        await a.stop()
        await b.stop()
    }

    /// A well-framed body that is not a routing message is dropped and counted: the next frame is found all the same,
    /// so the connection stays and its next message is answered.
    @Test(arguments: [
        ("bad cbor", [0, 0, 0, 3, 0x61, 0x62, 0x63] as [UInt8]),
        ("cbor bomb", [0, 0, 0, 9, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    ])
    func wellFramedGarbageIsDroppedAndTheConnectionStays(name: String, bytes: [UInt8]) async throws {
        let b = try await TestNode.start(name: "b", group: group)
        let peer = try RawClient(port: b.port)
        let echo = RoutingMessage(onwardRoute: [.local("echo")], returnRoute: [.local("app")], payload: [9])
        peer.send([0x01] + bytes + RawClient.frame(echo))
        #expect(await peer.read(1) == [0x01], "\(name): version byte first")
        #expect(await peer.readFrame()?.payload == [9], "\(name): the next message is answered")
        #expect(b.tcp.counters.messagesDroppedMalformed == 1)
        #expect(b.tcp.connections.count == 1)
        await b.stop()
    }

    /// A peer chooses how many malformed messages it sends and over how many connections: the transport logs one
    /// warning per interval for all its connections together, counts the rest as suppressed (the next warning says
    /// how many) and logs them at debug.
    @Test func malformedMessageWarningsAreRateLimitedAcrossConnections() async throws {
        let records = LogRecords()
        let b = try await TestNode.start(name: "b", group: group, logger: records.logger())
        let echo = RoutingMessage(onwardRoute: [.local("echo")], returnRoute: [.local("app")], payload: [9])
        var peers: [RawClient] = []
        for _ in 0..<10 {
            let peer = try RawClient(port: b.port)
            peers.append(peer)
            peer.send([0x01] + [0, 0, 0, 1, 0xff] + [0, 0, 0, 1, 0xff] + RawClient.frame(echo))
            #expect(await peer.read(1) == [0x01])
            #expect(await peer.readFrame()?.payload == [9], "the connection lives on")
        }
        #expect(b.tcp.counters.messagesDroppedMalformed == 20)
        let prefix = "dropped a malformed message from"
        #expect(records.messages(.warning, startingWith: prefix).count == 1)
        #expect(records.messages(.debug, startingWith: prefix).count == 19)
        #expect(b.tcp.malformedLog.admit(now: .now + .seconds(10)) == 19, "the next warning reports 19 suppressed")
        await b.stop()
    }

    @Test func peerDisappearingMidFrameIsCleanedUp() async throws {
        let b = try await TestNode.start(name: "b", group: group)
        do {
            let client = try RawClient(port: b.port)
            client.send([0x01, 0, 0, 0, 100, 0x83, 0x81])
            #expect(await client.read(1) == [0x01])
            try await eventually("connection registered") { b.tcp.connections.count == 1 }
        }  // RawClient closes its socket here, mid-frame.
        try await eventually("connection removed") { b.tcp.connections.isEmpty }
        let a = try await TestNode.start(name: "a", group: group)
        let reply = try await a.node.request(to: [.tcp(b.address), .local("echo")], payload: [9], timeout: .seconds(30))
        #expect(reply.payload == [9])
        await a.stop()
        await b.stop()
    }

    @Test func silentPeerIsDisconnectedAfterTheVersionTimeout() async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let node = Node(logger: logger)
        var options = TCPTransportOptions()
        options.versionTimeout = .milliseconds(200)
        let tcp = TCPTransport(node: node, group: group, options: options)
        let port = try await tcp.listen(host: "127.0.0.1", port: 0).port!
        let client = try RawClient(port: port)
        #expect(await client.read(1) == [0x01])
        #expect(await client.readsEOF())
        await tcp.shutdown()
    }

    @Test func connectionRefusedIsAnError() async throws {
        let a = try await TestNode.start(name: "a", group: group)
        // Bind and close a listener to get a port nobody listens on.
        let probe = try await TestNode.start(name: "probe", group: group)
        let deadPort = probe.port
        await probe.stop()
        await #expect(throws: (any Error).self) {
            _ = try await a.node.request(
                to: [.tcp("127.0.0.1:\(deadPort)"), .local("echo")], payload: [1], timeout: .seconds(5))
        }
        await a.stop()
    }

    @Test func largeMessagesRoundTrip() async throws {
        let b = try await TestNode.start(name: "b", group: group)
        let a = try await TestNode.start(name: "a", group: group)
        var generator = SystemRandomNumberGenerator()
        let payload = (0..<(4 * 1024 * 1024)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let reply = try await a.node.request(to: [.tcp(b.address), .local("echo")], payload: payload, timeout: .seconds(30))
        #expect(reply.payload == payload)
        await a.stop()
        await b.stop()
    }
}
