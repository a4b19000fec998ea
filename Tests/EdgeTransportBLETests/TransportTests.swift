import EdgeSync
import CBlueZ
import EdgeNode
import EdgeTestSupport
import EdgeRouting
import EdgeWire
import Testing

@testable import EdgeTransportBLE

#if canImport(Glibc)
import Glibc
#endif

/// `socketpair(AF_UNIX, SOCK_SEQPACKET)`: the L2CAP stand-in (message boundaries, and NIO's two traps).
func seqpacketPair() throws -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &fds) == 0 else {
        throw BLETransportError.system(call: "socketpair", errno: errno)
    }
    return (fds[0], fds[1])
}

/// A raw SEQPACKET peer. Receiving waits for readability off the cooperative pool (a blocking recv there would
/// starve the transport's own tasks) and gives up after 10 s (a guard against hangs, not synchronisation).
final class RawPeer {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    func send(_ sdu: [UInt8]) -> Int { sdu.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }

    /// One packet (nil on EOF, error or timeout).
    func receive(capacity: Int = 1 << 17) async -> [UInt8]? {
        guard case .ready = try? await FDWait.wait(fd: fd, events: Int16(POLLIN), timeout: .seconds(10)) else {
            return nil
        }
        var buffer = [UInt8](repeating: 0, count: capacity)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        return n > 0 ? Array(buffer[..<n]) : nil
    }
}

extension AsyncStream<BLELinkEvent>.Iterator {
    mutating func next(where matches: (BLELinkEvent) -> Bool) async -> BLELinkEvent? {
        while let event = await next() {
            if matches(event) { return event }
        }
        return nil
    }
}

func isLinkUp(_ e: BLELinkEvent) -> Bool { if case .linkUp = e { true } else { false } }
func isLinkDown(_ e: BLELinkEvent) -> Bool { if case .linkDown = e { true } else { false } }
func isReconnect(_ e: BLELinkEvent) -> Bool { if case .reconnectScheduled = e { true } else { false } }

func mtus(_ send: Int, _ receive: Int, sdu: Int? = nil) -> LinkMTUs {
    LinkMTUs(send: send, receive: receive, sduLimit: sdu ?? send)
}

func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}

@Suite("BLE transport over SOCK_SEQPACKET stand-ins", .timeLimit(.minutes(2)))
struct TransportTests {
    @Test func twoNodesExchangeEchoAndUppercaseWithCorrectReturnRoutes() async throws {
        let seen = EdgeMutex<[LocalMessage]>([])
        let gatewayNode = Node(options: Node.Options(observer: { m in seen.withLock { $0.append(m) } }))
        try gatewayNode.startDefaultServices()
        let sensorNode = Node()
        let gateway = BLETransport(node: gatewayNode)
        let sensor = BLETransport(node: sensorNode)
        let (a, b) = try seqpacketPair()
        let sensorLink = try await sensor.attach(fd: a, peer: nil, outgoing: true, mtus: mtus(23, 23))
        let gatewayLink = try await gateway.attach(fd: b, peer: nil, outgoing: false, mtus: mtus(23, 23))

        // 900 payload bytes (a ~940-byte routing message, handshake-sized): 43 SDUs each way at MTU 23.
        let payload = randomBytes(900)
        let reply = try await sensorNode.request(
            to: [sensorLink.info.senderAddress, EchoService.defaultAddress], payload: payload, timeout: .seconds(20))
        #expect(reply.payload == payload)
        // The reply came back through the sensor's link: its sender address heads the return route.
        #expect(reply.returnRoute.first == sensorLink.info.senderAddress)
        #expect(reply.returnRoute.addresses.dropFirst().first == EchoService.defaultAddress)

        let echoed = try #require(seen.withLock { $0.first { $0.onwardRoute.first == EchoService.defaultAddress } })
        #expect(echoed.returnRoute.count == 2)
        #expect(echoed.returnRoute.first == gatewayLink.info.senderAddress)

        let upper = try await sensorNode.request(
            to: [sensorLink.info.senderAddress, UppercaseService.defaultAddress],
            payload: BARE.encodeString("hello over l2cap"), timeout: .seconds(20))
        #expect(try BARE.decodeString(upper.payload, limit: 100) == "HELLO OVER L2CAP")

        // Inbound counters are updated before delivery, so the replies imply them (outbound ones are updated
        // when the write completes, which may be after the peer already answered).
        #expect(gateway.counters.sdusIn >= 43)
        #expect(gateway.counters.messagesIn == 2)
        let counters = sensor.counters
        #expect(counters.messagesIn == 2)
        #expect(counters.linkUps == 1 && counters.drops.isEmpty)
        // SOCK_SEQPACKET stand-ins are not L2CAP sockets: no BT_SECURITY to report.
        #expect(sensorLink.info.security == nil && gatewayLink.info.security == nil)
        await sensor.shutdown()
        await gateway.shutdown()
        await sensorNode.shutdown()
        await gatewayNode.shutdown()
    }

    /// SDUs of any size up to the MTU keep their boundaries (the link reader receives each into a buffer of the MTU).
    @Test func sdusLargerThan2048BytesKeepTheirBoundaries() async throws {
        let node = Node()
        try node.startDefaultServices()
        let transport = BLETransport(node: node)
        let (a, b) = try seqpacketPair()
        let link = try await transport.attach(fd: a, peer: nil, outgoing: false, mtus: mtus(3000, 65535))
        let raw = RawPeer(fd: b)

        let payload = randomBytes(5000)
        let request = RoutingMessage(
            onwardRoute: [EchoService.defaultAddress], returnRoute: [.local("raw-app")], payload: payload)
        let sdu = [BLEFragmentKind.complete.rawValue] + request.encode()
        #expect(sdu.count > 5000)
        #expect(raw.send(sdu) == sdu.count)

        // The echo reply comes back in SDUs of at most 3000 bytes (the raw side's MTU), each its own packet.
        var reassembler = BLEReassembler(maxMessageSize: 1 << 20)
        var packets: [Int] = []
        var message: [UInt8]?
        while message == nil, let packet = await raw.receive() {
            packets.append(packet.count)
            if case .message(let m) = try reassembler.push(packet[...]) { message = m }
        }
        #expect(packets.count == 2 && packets[0] == 3000 && packets.allSatisfy { $0 <= 3000 })
        let reply = try RoutingMessage(decoding: try #require(message))
        #expect(reply.payload == payload)
        #expect(reply.onwardRoute == [.local("raw-app")])
        #expect(reply.returnRoute.first == EchoService.defaultAddress)
        #expect(transport.counters.bytesIn == UInt64(sdu.count))
        _ = link
        await transport.shutdown()
        await node.shutdown()
    }

    @Test func oversizeSDUClosesTheLinkAndIsCounted() async throws {
        let node = Node()
        let transport = BLETransport(node: node)
        var events = transport.events().makeAsyncIterator()
        let (a, b) = try seqpacketPair()
        let link = try await transport.attach(fd: a, peer: nil, outgoing: false, mtus: mtus(1000, 1000))
        let raw = RawPeer(fd: b)
        #expect(raw.send([0x00] + [UInt8](repeating: 1, count: 1499)) == 1500)
        let down = await events.next(where: isLinkDown)
        guard case .linkDown(let info, let reason) = down else { Issue.record("no link down"); return }
        #expect(info.senderAddress == link.info.senderAddress)
        #expect(reason == "framing violation: an SDU of 1500 bytes, over our MTU 1000")
        #expect(transport.counters.dropped(.oversizeSDU) == 1)
        #expect(await raw.receive() == nil)  // the peer sees the close
        #expect(!node.hasWorker(at: link.info.senderAddress))
        await transport.shutdown()
        await node.shutdown()
    }

    /// A link whose peer has already gone (a gateway that refuses the link at once) is reported up, then down: never
    /// down before up, which left a consumer waiting for a "down" that had already passed.
    @Test func aLinkClosedAtOnceIsReportedUpThenDown() async throws {
        var options = BLETransportOptions()
        options.announceDelay = .milliseconds(50)  // time for a receive loop that started too early to end the link
        let node = Node()
        let transport = BLETransport(node: node, options: options)
        var events = transport.events().makeAsyncIterator()
        for _ in 0..<3 {
            let (a, b) = try seqpacketPair()
            close(b)
            _ = try await transport.attach(fd: a, peer: nil, outgoing: true, mtus: mtus(672, 672))
            guard case .linkUp(let up)? = await events.next() else {
                Issue.record("the first event is not the link up")
                break
            }
            guard case .linkDown(let down, _)? = await events.next() else {
                Issue.record("the second event is not the link down")
                break
            }
            #expect(down.id == up.id)
        }
        await transport.shutdown()
        await node.shutdown()
    }

    /// A device can open many channels over one LE connection: past `maxLinks` they are closed and counted.
    @Test func linksPastTheCapAreRefusedAndCounted() async throws {
        var options = BLETransportOptions()
        options.maxLinks = 2
        let node = Node()
        let transport = BLETransport(node: node, options: options)
        var peers: [RawPeer] = []
        for _ in 0..<2 {
            let (a, b) = try seqpacketPair()
            peers.append(RawPeer(fd: b))
            _ = try await transport.attach(fd: a, peer: nil, outgoing: false, mtus: mtus(672, 672))
        }
        let (a, b) = try seqpacketPair()
        let refused = RawPeer(fd: b)
        await #expect(throws: BLETransportError.tooManyLinks(limit: 2)) {
            _ = try await transport.attach(fd: a, peer: nil, outgoing: false, mtus: mtus(672, 672))
        }
        #expect(await refused.receive() == nil)  // closed
        #expect(transport.counters.linksRefusedOverCap == 1)
        #expect(transport.links.count == 2)
        await transport.shutdown()
        await node.shutdown()
    }

    /// Every SDU carries at least its header byte: an empty one is a framing violation, not the peer closing.
    @Test func anEmptySDUIsAFramingViolationNotAPeerClose() async throws {
        let node = Node()
        let transport = BLETransport(node: node)
        var events = transport.events().makeAsyncIterator()
        let (a, b) = try seqpacketPair()
        let link = try await transport.attach(fd: a, peer: nil, outgoing: false, mtus: mtus(672, 672))
        let raw = RawPeer(fd: b)
        #expect(raw.send([]) == 0)
        guard case .linkDown(let info, let reason) = await events.next(where: isLinkDown) else {
            Issue.record("no link down")
            return
        }
        #expect(info.senderAddress == link.info.senderAddress)
        #expect(reason == "framing violation: empty SDU")
        #expect(transport.counters.dropped(.framingViolation) == 1)
        #expect(await raw.receive() == nil)
        await transport.shutdown()
        await node.shutdown()
    }

    @Test func aDeviceSecurityRequirementRaisesConnectsAndGuardsAcceptedLinks() async throws {
        let node = Node()
        let transport = BLETransport(node: node)
        let device = try BluetoothDeviceAddress(parsing: "00:AA:01:00:00:07")
        let plain = try BLEConnectConfiguration(parsing: "00:AA:01:00:00:07,psm=0x81")
        let strict = try BLEConnectConfiguration(parsing: "00:AA:01:00:00:07,psm=0x81,security=high")
        #expect(transport.effective(plain).security == .low)
        transport.requireSecurity(.medium, of: device)
        #expect(transport.requiredSecurity(of: device) == .medium)
        // Connects to the device ask the kernel for the required level, never for less than they asked themselves.
        #expect(transport.effective(plain).security == .medium)
        #expect(transport.effective(strict).security == .high)
        #expect(SocketSetupPlan.connector(transport.effective(plain), sendBuffer: 1 << 16).contains(.setSecurity(.medium)))
        let other = try BLEConnectConfiguration(parsing: "00:AA:01:00:00:08,psm=0x81")
        #expect(transport.effective(other).security == .low)
        // Accepted links below the requirement are refused; an unreadable level counts as below.
        #expect(BLETransport.admits(linkLevel: .low, required: .medium) == false)
        #expect(BLETransport.admits(linkLevel: nil, required: .medium) == false)
        #expect(BLETransport.admits(linkLevel: .medium, required: .medium))
        #expect(BLETransport.admits(linkLevel: .fips, required: .high))
        #expect(BLETransport.admits(linkLevel: .low, required: nil))
        // Unpairing lifts the requirement; `low` is no requirement.
        transport.requireSecurity(nil, of: device)
        #expect(transport.effective(plain).security == .low)
        transport.requireSecurity(.low, of: device)
        #expect(transport.requiredSecurity(of: device) == nil)
        await transport.shutdown()
        await node.shutdown()
    }

    @Test func pairedDeviceRecordsSayWhichLinkSecurityTheyNeed() throws {
        let requirement = BLETransport.pairedDeviceRequirement(
            transport: "ble:00:AA:01:00:00:07/random,psm=0x81", linkSecurity: "high")
        #expect(requirement?.0 == (try BluetoothDeviceAddress(parsing: "00:AA:01:00:00:07")))
        #expect(requirement?.1 == .high)
        #expect(BLETransport.pairedDeviceRequirement(transport: "serial:sensor1", linkSecurity: "high") == nil)
        #expect(BLETransport.pairedDeviceRequirement(transport: "ble:00:AA:01:00:00:07/public,psm=0x81", linkSecurity: nil) == nil)
        #expect(BLETransport.pairedDeviceRequirement(transport: "ble:00:AA:01:00:00:07/public,psm=0x81", linkSecurity: "low") == nil)
        #expect(BLETransport.pairedDeviceRequirement(transport: "ble:not-an-address", linkSecurity: "high") == nil)
    }

    @Test func peerCloseReportsLinkDownWithTheSenderAddress() async throws {
        let node = Node()
        let transport = BLETransport(node: node)
        var events = transport.events().makeAsyncIterator()
        let (a, b) = try seqpacketPair()
        let link = try await transport.attach(fd: a, peer: nil, outgoing: true, mtus: mtus(672, 672))
        guard case .linkUp(let up) = await events.next(where: isLinkUp) else { Issue.record("no link up"); return }
        #expect(up.senderAddress == link.info.senderAddress)
        #expect(node.hasWorker(at: link.info.senderAddress))
        close(b)
        guard case .linkDown(let info, _) = await events.next(where: isLinkDown) else {
            Issue.record("no link down")
            return
        }
        #expect(info.senderAddress == link.info.senderAddress)
        #expect(!node.hasWorker(at: link.info.senderAddress))
        #expect(transport.links.isEmpty)
        #expect(transport.counters.linkDowns == 1)
        await transport.shutdown()
        await node.shutdown()
    }

    @Test func framingViolationClosesTheLink() async throws {
        let node = Node()
        let transport = BLETransport(node: node)
        var events = transport.events().makeAsyncIterator()
        let (a, b) = try seqpacketPair()
        _ = try await transport.attach(fd: a, peer: nil, outgoing: false, mtus: mtus(672, 672))
        let raw = RawPeer(fd: b)
        _ = raw.send([0x02, 1, 2, 3])  // a continuation with nothing in progress
        guard case .linkDown(_, let reason) = await events.next(where: isLinkDown) else {
            Issue.record("no link down")
            return
        }
        #expect(reason.contains("continuation fragment with no message in progress"))
        #expect(transport.counters.dropped(.framingViolation) == 1)
        await transport.shutdown()
        await node.shutdown()
    }

    @Test func malformedMessagesAreDroppedButTheLinkStays() async throws {
        let node = Node()
        try node.startDefaultServices()
        let transport = BLETransport(node: node)
        let (a, b) = try seqpacketPair()
        _ = try await transport.attach(fd: a, peer: nil, outgoing: false, mtus: mtus(672, 672))
        let raw = RawPeer(fd: b)
        _ = raw.send([0x00, 0xff, 0xff])
        let request = RoutingMessage(onwardRoute: [EchoService.defaultAddress], returnRoute: [.local("x")], payload: [7])
        _ = raw.send([0x00] + request.encode())
        let reply = try RoutingMessage(decoding: try #require(await raw.receive()).dropFirst())
        #expect(reply.payload == [7])
        #expect(transport.counters.dropped(.malformedMessage) == 1)
        await transport.shutdown()
        await node.shutdown()
    }

    @Test func outboundMessagesOverTheLimitAreRefused() async throws {
        var options = BLETransportOptions()
        options.maxMessageSize = 1000
        let node = Node()
        let transport = BLETransport(node: node, options: options)
        let (a, b) = try seqpacketPair()
        let link = try await transport.attach(fd: a, peer: nil, outgoing: true, mtus: mtus(672, 672))
        let raw = RawPeer(fd: b)
        try await node.send(
            LocalMessage(onwardRoute: [link.info.senderAddress, .local("far")], returnRoute: [], payload: randomBytes(2000)))
        // A return route the peer's decoder must drop (65 addresses once it arrives): not sent either.
        let full = Route((0..<65).map { _ in Address.local("r") })
        try await node.send(
            LocalMessage(onwardRoute: [link.info.senderAddress, .local("far")], returnRoute: full, payload: [3]))
        try await node.send(
            LocalMessage(onwardRoute: [link.info.senderAddress, .local("far")], returnRoute: [], payload: [1, 2]))
        // The worker handles messages in order: once the small one arrives, the others were refused.
        let small = try RoutingMessage(decoding: try #require(await raw.receive()).dropFirst())
        #expect(small.payload == [1, 2])
        #expect(transport.counters.dropped(.oversizeMessage) == 1)
        #expect(transport.counters.dropped(.overLimit) == 1)
        await transport.shutdown()
        await node.shutdown()
    }

    /// Listener, resolver (`4#…` hops reuse the live link), connector, link loss and reconnection with backoff,
    /// over AF_UNIX SOCK_SEQPACKET listen/accept.
    /// `reconnect=off` (`--ble-connect …,reconnect=off`): one link, not re-established when it drops.
    @Test func maintainWithReconnectOffConnectsOnceAndDoesNotRetry() async throws {
        let name = "ockam-edge-ble-test-\(UInt64.random(in: 0...UInt64.max))"
        let endpoint = SocketEndpoint.unix(name: name, sendMTU: 672, receiveMTU: 672)
        let peer = try BLEPeerAddress(parsing: "00:AA:01:00:00:00/public,psm=0x81")
        let gatewayNode = Node()
        let gateway = BLETransport(node: gatewayNode)
        _ = try await gateway.listen(try BLEListenConfiguration(parsing: "psm=0x81"), endpoint: endpoint)
        var options = BLETransportOptions()
        options.reconnectBackoff = Backoff(initial: .milliseconds(5), maximum: .milliseconds(10))
        let sensorNode = Node()
        let sensor = BLETransport(node: sensorNode, options: options)
        sensor.overrideEndpoint(for: peer, with: endpoint)
        var events = sensor.events().makeAsyncIterator()
        sensor.maintain(try BLEConnectConfiguration(parsing: "00:AA:01:00:00:00,psm=0x81,reconnect=off"))
        #expect(await events.next(where: isLinkUp) != nil)
        await gateway.shutdown()
        await gatewayNode.shutdown()
        #expect(await events.next(where: isLinkDown) != nil)
        // Once the maintenance task has ended, nothing will retry: the transport has no task left.
        try await eventually("the maintenance task ended") { sensor.taskCount == 0 }
        #expect(sensor.counters.reconnectAttempts == 0)
        #expect(sensor.links.isEmpty)
        await sensor.shutdown()
        await sensorNode.shutdown()
    }

    @Test func listenResolveReconnect() async throws {
        let name = "ockam-edge-ble-test-\(UInt64.random(in: 0...UInt64.max))"
        let endpoint = SocketEndpoint.unix(name: name, sendMTU: 672, receiveMTU: 672)
        let peer = try BLEPeerAddress(parsing: "00:AA:01:00:00:00/public,psm=0x81")
        let listen = try BLEListenConfiguration(parsing: "psm=0x81")

        let gatewayNode = Node()
        try gatewayNode.startDefaultServices()
        let gateway = BLETransport(node: gatewayNode)
        #expect(try await gateway.listen(listen, endpoint: endpoint) == L2CAPPSM(0x81))

        var options = BLETransportOptions()
        options.reconnectBackoff = Backoff(initial: .milliseconds(5), maximum: .milliseconds(40))
        let sensorNode = Node()
        let sensor = BLETransport(node: sensorNode, options: options)
        sensor.overrideEndpoint(for: peer, with: endpoint)
        var events = sensor.events().makeAsyncIterator()

        // The resolver connects for a `4#` hop, and later hops reuse the link.
        for size in [10, 700, 5000] {
            let payload = randomBytes(size)
            let reply = try await sensorNode.request(
                to: [peer.address, EchoService.defaultAddress], payload: payload, timeout: .seconds(20))
            #expect(reply.payload == payload)
        }
        #expect(sensor.links.count == 1)
        #expect(sensor.counters.linkUps == 1)
        let first = try #require(sensor.links.first)
        #expect(first.peer == peer && first.outgoing)

        // Keep it up from now on: connect returns the live link.
        var config = BLEConnectConfiguration(peer: peer)
        config.reconnect = true
        #expect(try await sensor.connect(config).senderAddress == first.senderAddress)

        // The gateway goes away: link down, then reconnect attempts that fail with backoff.
        await gateway.shutdown()
        await gatewayNode.shutdown()
        guard case .linkDown(let down, _) = await events.next(where: isLinkDown) else {
            Issue.record("no link down")
            return
        }
        #expect(down.senderAddress == first.senderAddress)
        var attempts: [Int] = []
        while attempts.count < 3, case .reconnectScheduled(_, let attempt, let delay, _) = await events.next(where: isReconnect) {
            attempts.append(attempt)
            #expect(delay <= .milliseconds(40))
        }
        #expect(attempts == [1, 2, 3])

        // A new gateway on the same endpoint: the sensor reconnects at a new sender address.
        let gatewayNode2 = Node()
        try gatewayNode2.startDefaultServices()
        let gateway2 = BLETransport(node: gatewayNode2)
        _ = try await gateway2.listen(listen, endpoint: endpoint)
        guard case .linkUp(let up) = await events.next(where: isLinkUp) else {
            Issue.record("no reconnect")
            return
        }
        #expect(up.senderAddress != first.senderAddress)
        let payload = randomBytes(3000)
        let reply = try await sensorNode.request(
            to: [peer.address, EchoService.defaultAddress], payload: payload, timeout: .seconds(20))
        #expect(reply.payload == payload)
        #expect(sensor.counters.reconnectAttempts >= 3)
        #expect(sensor.counters.connectFailures >= 2)

        await sensor.shutdown()
        await gateway2.shutdown()
        await sensorNode.shutdown()
        await gatewayNode2.shutdown()
    }

    @Test func resolverRejectsBadBLEAddresses() async throws {
        let node = Node()
        let transport = BLETransport(node: node)
        await #expect(throws: BLETransportError.invalidAddress(.invalidDeviceAddress("nope"))) {
            try await transport.resolve(Address(.ble, "nope,psm=0x81"))
        }
        await transport.shutdown()
        await node.shutdown()
    }

    @Test func shutdownFinishesEventStreamsAndRefusesWork() async throws {
        let node = Node()
        let transport = BLETransport(node: node)
        var events = transport.events().makeAsyncIterator()
        await transport.shutdown()
        #expect(await events.next() == nil)
        await #expect(throws: BLETransportError.shutDown) {
            try await transport.listen(try BLEListenConfiguration(parsing: "psm=0x81"))
        }
        await node.shutdown()
    }
}
