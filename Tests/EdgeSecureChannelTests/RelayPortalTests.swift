import EdgeNode
import EdgeRouting
import EdgeTransportTCP
import EdgeWire
import NIOCore
import NIOPosix
import Testing

@testable import EdgeSecureChannel

#if canImport(Glibc)
import Glibc
#endif

/// A TCP echo server on loopback for portal tests (plain NIO, no Ockam).
final class EchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
}

func startEchoServer() async throws -> (any NIOCore.Channel, Int) {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .childChannelInitializer { $0.pipeline.addHandler(EchoHandler()) }
        .bind(host: "127.0.0.1", port: 0).get()
    return (channel, channel.localAddress!.port!)
}

/// A blocking loopback client for pushing bytes through an inlet.
func roundTrip(port: Int, bytes: [UInt8]) async throws -> [UInt8] {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port) { ch in
            ch.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch) }
        }
    return try await channel.executeThenClose { inbound, outbound in
        try await outbound.write(ByteBuffer(bytes: bytes))
        var received: [UInt8] = []
        for try await buffer in inbound {
            received += Array(buffer.readableBytesView)
            if received.count >= bytes.count { break }
        }
        return received
    }
}

@Suite("Relays and portals", .serialized)
struct RelayPortalTests {
    @Test func portalMessageEncodingMatchesOckam() throws {
        #expect(PortalMessage.ping.encode() == [0])
        #expect(PortalMessage.pong.encode() == [1])
        #expect(PortalMessage.disconnect.encode() == [2])
        #expect(PortalMessage.payload([0x61, 0x62], counter: nil).encode() == [3, 2, 0x61, 0x62])
        #expect(PortalMessage.payload([0x61], counter: 0x0102).encode() == [3, 1, 0x61, 1, 0x02, 0x01])
        #expect(try PortalMessage(decoding: [3, 1, 0x61, 1, 0x02, 0x01]) == .payload([0x61], counter: 0x0102))
        #expect(try PortalMessage(decoding: [3, 2, 0x61, 0x62]) == .payload([0x61, 0x62], counter: nil))
        for bad: [UInt8] in [[], [4], [3], [3, 5, 1]] {
            #expect(throws: WireError.self) { _ = try PortalMessage(decoding: bad) }
        }
    }

    @Test func relayMakesANodeBehindNATReachableEvenThroughASecureChannel() async throws {
        let hub = try await Peer.start("hub", listener: nil)
        try hub.node.startRelayService()
        // "blue" dials out to the hub and registers forward_to_blue; it runs a secure channel listener.
        let blue = try await Peer.start("blue")
        let registration = try await blue.node.registerRelay(name: "blue", hubRoute: [.tcp(hub.address)])
        #expect(registration.relayName == "forward_to_blue")
        #expect(registration.relayRoute.addresses.last == .local("forward_to_blue"))
        // A client that only knows the hub reaches blue's services through the relay…
        let client = try await Peer.start("client", listener: nil)
        let reply = try await client.node.request(
            to: [.tcp(hub.address), .local("forward_to_blue"), .local("uppercase")], payload: BARE.encodeString("via relay"),
            timeout: .seconds(30))
        #expect(try BARE.decodeString(reply.payload) == "VIA RELAY")
        // …and opens an end-to-end channel through it (the hub sees only ciphertext).
        let channel = try await client.channels.createChannel(to: [.tcp(hub.address), .local("forward_to_blue"), .local("api")])
        #expect(channel.peer == blue.identifier)
        let secret = Array("relay cannot read this".utf8)
        let echoed = try await client.node.request(to: [channel.encryptor, .local("echo")], payload: secret, timeout: .seconds(30))
        #expect(echoed.payload == secret)
        #expect(!hub.capture.contains(secret))
        // Re-registration (blue reconnecting) replaces the route rather than failing.
        _ = try await blue.node.registerRelay(name: "blue", hubRoute: [.tcp(hub.address)])
        let again = try await client.node.request(
            to: [.tcp(hub.address), .local("forward_to_blue"), .local("echo")], payload: [7], timeout: .seconds(30))
        #expect(again.payload == [7])
        await client.stop()
        await blue.stop()
        await hub.stop()
    }

    @Test func relayAuthorisationCanRefuseNames() async throws {
        let hub = try await Peer.start("hub", listener: nil)
        try hub.node.startRelayService(authorize: { _, name in name == "allowed" })
        let blue = try await Peer.start("blue", listener: nil)
        await #expect(throws: NodeError.self) {
            _ = try await blue.node.registerRelay(name: "other", hubRoute: [.tcp(hub.address)], timeout: .milliseconds(300))
        }
        #expect(!hub.node.hasWorker(at: .local("forward_to_other")))
        _ = try await blue.node.registerRelay(name: "allowed", hubRoute: [.tcp(hub.address)])
        await blue.stop()
        await hub.stop()
    }

    @Test func portalCarriesTCPThroughASecureChannel() async throws {
        let (echoServer, echoPort) = try await startEchoServer()
        let outletNode = try await Peer.start("outlet")
        try outletNode.node.startWorker(
            try OutletListener(target: "127.0.0.1:\(echoPort)"), at: OutletListener.defaultAddress,
            options: WorkerOptions(accessControl: outletNode.channels.accessControl(.everyone)))
        let inletNode = try await Peer.start("inlet", listener: nil)
        let channel = try await inletNode.channels.createChannel(to: [.tcp(outletNode.address), .local("api")])
        let inlet = try await Inlet.start(
            node: inletNode.node, listen: "127.0.0.1", port: 0, outletRoute: [channel.encryptor, OutletListener.defaultAddress])
        let port = inlet.boundAddress.port!
        let small = Array("hello through the portal".utf8)
        #expect(try await roundTrip(port: port, bytes: small) == small)
        var generator = SystemRandomNumberGenerator()
        let large = (0..<(512 * 1024)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        #expect(try await roundTrip(port: port, bytes: large) == large)
        // The outlet refuses plain TCP Pings (no channel identity).
        let plainInlet = try await Inlet.start(
            node: inletNode.node, listen: "127.0.0.1", port: 0,
            outletRoute: [.tcp(outletNode.address), OutletListener.defaultAddress], pongTimeout: .milliseconds(300))
        let refused = try? await roundTrip(port: plainInlet.boundAddress.port!, bytes: [1])
        #expect(refused == nil || refused == [])
        await inlet.stop()
        await plainInlet.stop()
        await inletNode.stop()
        await outletNode.stop()
        try await echoServer.close()
    }
}
