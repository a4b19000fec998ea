// Two nodes over a pty null-modem: routing, large frames, noise, slow lines, unplug/replug, exclusivity, limits.
import EdgeSync
import EdgeNode
import EdgeRouting
import EdgeTestSupport
import EdgeTransportSerial
import EdgeWire
import Foundation
import SystemPackage
import Testing

/// A gateway node (listener on side A) and a device node (connector on side B) joined by a null modem.
struct LinkedPair {
    let modem: NullModem
    let gateway: SerialTestNode
    let device: SerialTestNode
    /// Port names: the gateway reaches the device at `64#dev`, the device reaches the gateway at `64#gw`.
    static let gatewayPort = "dev"
    static let devicePort = "gw"

    static func start(
        gatewayOptions: SerialTransportOptions = SerialTestNode.fastOptions(),
        deviceOptions: SerialTransportOptions = SerialTestNode.fastOptions(),
        gatewayMaxFrame: Int = SerialFraming.defaultMaxFrameSize,
        deviceMaxFrame: Int = SerialFraming.defaultMaxFrameSize,
        gatewayKeepalive: Duration? = nil,
        deviceKeepalive: Duration? = nil,
        waitForLink: Bool = true
    ) async throws -> LinkedPair {
        let modem = try NullModem()
        let gateway = try SerialTestNode.start("gateway", options: gatewayOptions)
        let device = try SerialTestNode.start("device", options: deviceOptions)
        try gateway.serial.open(
            SerialConfiguration(
                path: FilePath(modem.path(.a)), name: gatewayPort, baudRate: 921_600, role: .listener,
                maxFrameSize: gatewayMaxFrame, keepalive: gatewayKeepalive))
        try device.serial.open(
            SerialConfiguration(
                path: FilePath(modem.path(.b)), name: devicePort, baudRate: 921_600, role: .connector,
                maxFrameSize: deviceMaxFrame, keepalive: deviceKeepalive))
        let pair = LinkedPair(modem: modem, gateway: gateway, device: device)
        if waitForLink {
            try await eventually("link up on both sides") {
                gateway.serial.status(port: gatewayPort)?.phase == .linked
                    && device.serial.status(port: devicePort)?.phase == .linked
            }
        }
        return pair
    }

    func stop() async {
        await device.stop()
        await gateway.stop()
        modem.stop()
    }

    var gatewaySender: Address? { gateway.serial.status(port: Self.gatewayPort)?.senderAddress }
    var deviceSender: Address? { device.serial.status(port: Self.devicePort)?.senderAddress }
    var gatewayCounters: SerialCounters { gateway.serial.status(port: Self.gatewayPort)!.counters }
    var deviceCounters: SerialCounters { device.serial.status(port: Self.devicePort)!.counters }

    /// Gateway → device `uppercase` and device → gateway `echo`, checking payloads and return routes.
    func exchange(_ text: String) async throws {
        let reply = try await gateway.node.request(
            to: [.serial(Self.gatewayPort), .local("uppercase")], payload: BARE.encodeString(text),
            timeout: .seconds(30))
        #expect(try BARE.decodeString(reply.payload) == text.uppercased())
        let gatewaySender = try #require(self.gatewaySender)
        #expect(reply.returnRoute == [gatewaySender, .local("uppercase")])
        let echo = try await device.node.request(
            to: [.serial(Self.devicePort), .local("echo")], payload: Array(text.utf8), timeout: .seconds(30))
        #expect(echo.payload == Array(text.utf8))
        let deviceSender = try #require(self.deviceSender)
        #expect(echo.returnRoute == [deviceSender, .local("echo")])
    }
}

@Suite("Serial transport over ptys", .serialized)
struct LinkTests {
    @Test func twoNodesExchangeRoutingMessages() async throws {
        let pair = try await LinkedPair.start()
        try await pair.exchange("hello over serial")
        for i in 0..<50 { try await pair.exchange("message \(i)") }

        // Status and counters.
        let status = try #require(pair.gateway.serial.ports.first)
        #expect(status.name == "dev" && status.phase == .linked)
        #expect(status.configuration.role == .listener)
        #expect(status.peer?.maxFrameSize == SerialFraming.defaultMaxFrameSize)
        let counters = pair.gatewayCounters
        #expect(counters.linkUps == 1 && counters.linkDowns == 0)
        #expect(counters.messagesIn == 102 && counters.messagesOut == 102)
        #expect(counters.framesIn >= 103 && counters.framesOut >= 103)
        #expect(counters.bytesIn > 0 && counters.bytesOut > 0)
        #expect(counters.droppedTotal == 0, "\(counters.dropped)")
        #expect(counters.opens == 1)
        #expect(pair.deviceCounters.messagesIn == 102)
        // The stable route and the per-session sender address both work.
        let sender = try #require(pair.gatewaySender)
        let direct = try await pair.gateway.node.request(
            to: [sender, .local("echo")], payload: [1, 2, 3], timeout: .seconds(30))
        #expect(direct.payload == [1, 2, 3])
        await pair.stop()
    }

    /// As TCP does: a message the peer's decoder must drop (a return route of 65 addresses) is not sent; it is counted
    /// and the link carries on.
    @Test func aMessageThePeerMustDropIsNotSent() async throws {
        let pair = try await LinkedPair.start()
        let sender = try #require(pair.gatewaySender)
        let full = Route((0..<65).map { _ in Address.local("r") })
        try await pair.gateway.node.send(LocalMessage(onwardRoute: [sender, .local("echo")], returnRoute: full, payload: [1]))
        try await eventually("refused and counted") { pair.gatewayCounters.rejectedOverLimit == 1 }
        try await pair.exchange("after the refusal")
        #expect(pair.deviceCounters.dropped(.badMessage) == 0, "nothing reached the device's decoder")
        await pair.stop()
    }

    @Test func connectorRetriesHelloUntilTheListenerAppears() async throws {
        let modem = try NullModem()
        let device = try SerialTestNode.start("device")
        try device.serial.open(SerialConfiguration(path: FilePath(modem.path(.b)), name: "gw", role: .connector))
        try await eventually("three unanswered hellos") {
            (device.serial.status(port: "gw")?.counters.helloRetries ?? 0) >= 3
        }
        #expect(device.serial.status(port: "gw")?.phase == .open)
        let gateway = try SerialTestNode.start("gateway")
        try gateway.serial.open(SerialConfiguration(path: FilePath(modem.path(.a)), name: "dev", role: .listener))
        try await eventually("link up") { device.recorder.ups("gw") == 1 && gateway.recorder.ups("dev") == 1 }
        let reply = try await device.node.request(
            to: [.serial("gw"), .local("echo")], payload: [42], timeout: .seconds(30))
        #expect(reply.payload == [42])
        await device.stop()
        await gateway.stop()
        modem.stop()
    }

    @Test func largeFramesUpToThePeerMaximum() async throws {
        let pair = try await LinkedPair.start(deviceMaxFrame: 65536)
        #expect(pair.gateway.serial.status(port: "dev")?.peer?.maxFrameSize == 65536)
        // Find the payload size whose routing message on the wire fills a 64 KiB frame exactly.
        let limit = 65536 - SerialFraming.overhead
        func wireSize(_ payloadSize: Int) -> Int {
            RoutingMessage(
                onwardRoute: [.local("collector")], returnRoute: [.local("app")],
                payload: [UInt8](repeating: 0, count: payloadSize)
            ).encode().count
        }
        var size = limit - wireSize(0)
        while wireSize(size) > limit { size -= 1 }
        #expect(wireSize(size) == limit)
        var generator = SeededGenerator(seed: 3)
        let payload = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
        // The device's frames to the gateway are limited by the gateway's 16 KiB, so use a one-way collector.
        let collector = Collector()
        try pair.device.node.startWorker(collector, at: .local("collector"), options: WorkerOptions(reach: .links))
        try await pair.gateway.node.send(
            LocalMessage(
                onwardRoute: [.serial("dev"), .local("collector")], returnRoute: [.local("app")], payload: payload))
        try await eventually("the 64 KiB frame arrived") { collector.count == 1 }
        #expect(collector.messages.first?.payload == payload)
        // One byte more is refused by the sender with a clear error, counted, and the link stays up.
        try await pair.gateway.node.send(
            LocalMessage(
                onwardRoute: [.serial("dev"), .local("collector")], returnRoute: [.local("app")], payload: payload + [0]
            ))
        try await eventually("oversize message rejected") { pair.gatewayCounters.rejectedTooLarge == 1 }
        #expect(pair.gateway.node.counters.workerErrors == 1)
        // A request sent that way learns why at once (not after its timeout).
        do {
            _ = try await pair.gateway.node.request(
                to: [.serial("dev"), .local("echo")], payload: payload + [0], timeout: .seconds(120))
            Issue.record("an over-size request was answered")
        } catch NodeError.workerFailed(_, let reason) {
            #expect(reason.contains("exceeds the limit"), "\(reason)")
        }
        #expect(pair.gatewayCounters.rejectedTooLarge == 2)
        // In the other direction the gateway's 16 KiB limit applies; a 16 KiB echo round trip works.
        let echoPayload = [UInt8](repeating: 0x7E, count: 16 * 1024 - 200)
        let reply = try await pair.gateway.node.request(
            to: [.serial("dev"), .local("echo")], payload: echoPayload, timeout: .seconds(30))
        #expect(reply.payload == echoPayload)
        #expect(pair.deviceCounters.droppedTotal == 0 && pair.gatewayCounters.droppedTotal == 0)
        await pair.stop()
    }

    @Test func linkSurvivesNoiseOnTheLine() async throws {
        let pair = try await LinkedPair.start()
        var generator = SeededGenerator(seed: 1234)
        let good = RoutingMessage(
            onwardRoute: [.local("echo")], returnRoute: [.local("app")], payload: Array("hi".utf8))
        let collector = Collector()
        try pair.gateway.node.startWorker(collector, at: .local("app"), options: WorkerOptions(reach: .links))
        for round in 0..<20 {
            // Garbage toward both nodes, including zeros and things that look like frames.
            for side in NullModem.Side.allCases {
                let noise = (0..<Int.random(in: 1...300, using: &generator)).map { _ in
                    UInt8.random(in: 0...255, using: &generator)
                }
                pair.modem.inject(noise, toward: side)
            }
            // A valid frame with a flipped bit (dropped), then the same frame intact (delivered).
            var corrupted = SerialFrameEncoder.encode(.data(good.encode()), leadingDelimiter: true)
            corrupted[5] ^= 0x04
            pair.modem.inject(corrupted, toward: .b)
            pair.modem.inject(SerialFrameEncoder.encode(.data(good.encode()), leadingDelimiter: true), toward: .b)
            try await eventually("echo of injected frame \(round)") { collector.count == round + 1 }
            try await pair.exchange("round \(round)")
        }
        // The injected frame's reply came back over the line with the device's sender in its return route.
        #expect(collector.messages.allSatisfy { $0.payload == Array("hi".utf8) })
        let gatewaySender = try #require(pair.gatewaySender)
        #expect(collector.messages.first?.returnRoute == [gatewaySender, .local("echo")])
        let device = pair.deviceCounters
        #expect(device.droppedTotal > 0)
        #expect(device.dropped(.crcMismatch) + device.dropped(.badEncoding) >= 1, "\(device.dropped)")
        #expect(device.linkDowns == 0 && pair.gatewayCounters.linkDowns == 0, "noise never takes the link down")
        await pair.stop()
    }

    @Test func helloFloodFromAHostileDeviceIsSurvived() async throws {
        let pair = try await LinkedPair.start()
        // Nothing the gateway writes is read for a while, and the "device" floods it with hellos, each a new session.
        pair.modem.setReadRate(from: .a, bytesPerMillisecond: 1)
        var flood: [UInt8] = []
        for nonce in 1...2000 {
            let hello = SerialHello(maxFrameSize: 64, nonce: UInt32(nonce), keepaliveMilliseconds: 0)
            SerialFrameEncoder.encode(.hello(hello), leadingDelimiter: true, into: &flood)
        }
        pair.modem.inject(flood, toward: .a)
        // One session per nonce (plus the real device's first one); the async side lags the handler a little.
        try await eventually("the flood was consumed") { pair.gatewayCounters.linkUps == 2001 }
        // Each new nonce replaced the previous session; only the current sender worker is left.
        let senders = pair.gateway.node.workerAddresses.filter { $0.valueString.count == 32 }
        #expect(senders.count <= 2, "\(senders.count) sender workers left")
        pair.modem.setReadRate(from: .a, bytesPerMillisecond: nil)
        // The real device re-handshakes once its port is reopened; the link works again.
        pair.modem.unplug(.b)
        try pair.modem.replug(.b)
        try await eventually("device linked again") {
            pair.device.serial.status(port: "gw")?.phase == .linked
                && pair.gateway.serial.status(port: "dev")?.peer?.maxFrameSize == SerialFraming.defaultMaxFrameSize
        }
        try await pair.exchange("after the flood")
        await pair.stop()
    }

    @Test func slowLineBackpressureLosesNothing() async throws {
        let pair = try await LinkedPair.start()
        let collector = Collector()
        try pair.device.node.startWorker(collector, at: .local("collector"), options: WorkerOptions(reach: .links))
        // The line from the gateway now carries about 200 KB/s in 200-byte pieces: the gateway writes far faster.
        pair.modem.setReadRate(from: .a, bytesPerMillisecond: 200)
        let count = 120
        let payloadSize = 4000
        let sender = try #require(pair.gatewaySender)
        let maxDepth = EdgeMutex(0)
        let watcher = Task {
            while !Task.isCancelled {
                let depth = pair.gateway.node.mailboxDepth(at: sender) ?? 0
                maxDepth.withLock { $0 = max($0, depth) }
                try? await Task.sleep(for: .milliseconds(1))
            }
        }
        let start = ContinuousClock.now
        for i in 0..<count {
            var payload = [UInt8](repeating: UInt8(i & 0xff), count: payloadSize)
            payload[0] = UInt8(i >> 8)
            try await pair.gateway.node.send(
                LocalMessage(
                    onwardRoute: [.serial("dev"), .local("collector")], returnRoute: [.local("app")], payload: payload))
        }
        let queued = ContinuousClock.now - start
        try await eventually("all \(count) messages arrived", within: .seconds(30)) { collector.count == count }
        watcher.cancel()
        // In order, intact, nothing dropped; and the writer really was held back by the line.
        for (i, message) in collector.messages.enumerated() {
            #expect(
                message.payload.count == payloadSize && message.payload[0] == UInt8(i >> 8)
                    && message.payload[1] == UInt8(i & 0xff))
        }
        #expect(pair.deviceCounters.droppedTotal == 0)
        #expect(maxDepth.withLock { $0 } > 10, "the sender worker's mailbox filled while the line was slow")
        _ = queued
        pair.modem.setReadRate(from: .a, bytesPerMillisecond: nil)
        try await pair.exchange("after the slow part")
        await pair.stop()
    }

    @Test func unplugAndReplugRecoversTheRoute() async throws {
        let pair = try await LinkedPair.start()
        try await pair.exchange("before")
        let firstSender = try #require(pair.gatewaySender)

        pair.modem.unplug(.a)
        try await eventually("gateway link down") { pair.gateway.recorder.downs("dev") == 1 }
        let down = try #require(pair.gateway.recorder.all.last { !$0.isUp })
        #expect(down.senderAddress == firstSender)
        guard case .down(.portClosed(let why)) = down.kind else {
            Issue.record("unexpected \(down)")
            return
        }
        #expect(why.contains("disappeared"))
        try await eventually("gateway waiting for the device") {
            pair.gateway.serial.status(port: "dev")?.phase == .waitingForDevice
        }
        #expect(!pair.gateway.node.hasWorker(at: firstSender))

        // A request while unplugged waits for the link (resolve timeout) and succeeds after the replug.
        let pending = Task {
            try await pair.gateway.node.request(
                to: [.serial("dev"), .local("echo")], payload: [5], timeout: .seconds(30))
        }
        try pair.modem.replug(.a)
        try await eventually("both links up again") {
            pair.gateway.recorder.ups("dev") == 2 && pair.device.recorder.ups("gw") == 2
        }
        #expect(try await pending.value.payload == [5])
        let secondSender = try #require(pair.gatewaySender)
        #expect(secondSender != firstSender)
        #expect(pair.gateway.recorder.all.last?.senderAddress == secondSender)
        // The device saw the gateway's new session as a restart.
        #expect(
            pair.device.recorder.all.contains { event in
                if case .down(.peerRestarted) = event.kind { return true }
                return false
            })
        try await pair.exchange("after")
        #expect(pair.gatewayCounters.opens == 2)
        await pair.stop()
    }

    /// Unplug/replug either side over and over; OCKAM_EDGE_SERIAL_SOAK=N for a longer soak (default 100).
    @Test func unplugReplugLoop() async throws {
        let iterations = ProcessInfo.processInfo.environment["OCKAM_EDGE_SERIAL_SOAK"].flatMap(Int.init) ?? 100
        let pair = try await LinkedPair.start()
        let start = ContinuousClock.now
        for i in 0..<iterations {
            let side: NullModem.Side = i % 2 == 0 ? .a : .b
            let gatewayUps = pair.gateway.recorder.ups("dev")
            let deviceUps = pair.device.recorder.ups("gw")
            let (node, port) = side == .a ? (pair.gateway, "dev") : (pair.device, "gw")
            let downs = node.recorder.downs(port)
            pair.modem.unplug(side)
            try await eventually("iteration \(i): link down on the unplugged side") {
                node.recorder.downs(port) == downs + 1
            }
            try pair.modem.replug(side)
            try await eventually("iteration \(i): links up again") {
                pair.gateway.recorder.ups("dev") > gatewayUps && pair.device.recorder.ups("gw") > deviceUps
                    && pair.gateway.serial.status(port: "dev")?.phase == .linked
                    && pair.device.serial.status(port: "gw")?.phase == .linked
            }
            let reply = try await pair.gateway.node.request(
                to: [.serial("dev"), .local("echo")], payload: Array("ping \(i)".utf8), timeout: .seconds(30))
            #expect(reply.payload == Array("ping \(i)".utf8))
        }
        let elapsed = ContinuousClock.now - start
        print("unplug/replug: \(iterations) iterations in \(elapsed)")
        try await pair.exchange("after the loop")
        #expect(pair.gatewayCounters.opens == UInt64(1 + (iterations + 1) / 2))
        #expect(pair.deviceCounters.opens == UInt64(1 + iterations / 2))
        await pair.stop()
    }

    @Test func secondTransportCannotOpenTheSamePort() async throws {
        let pair = try await LinkedPair.start()
        let intruder = try SerialTestNode.start("intruder")
        #expect(throws: SerialTransportError.portBusy(path: pair.modem.path(.a))) {
            try intruder.serial.open(
                SerialConfiguration(path: FilePath(pair.modem.path(.a)), name: "dev"), requireDevice: true)
        }
        // Without requireDevice it keeps trying (busy is like absent) and reports it.
        try intruder.serial.open(SerialConfiguration(path: FilePath(pair.modem.path(.a)), name: "dev"))
        try await eventually("busy reported") {
            (intruder.serial.status(port: "dev")?.counters.openFailures ?? 0) >= 2
        }
        #expect(intruder.serial.status(port: "dev")?.lastError?.contains("in use") == true)
        #expect(intruder.serial.status(port: "dev")?.phase == .waitingForDevice)
        // The original link is unaffected.
        try await pair.exchange("still mine")
        // Same name twice on one transport is refused.
        #expect(throws: SerialTransportError.duplicatePort("dev")) {
            try pair.gateway.serial.open(SerialConfiguration(path: "/dev/null", name: "dev"))
        }
        await intruder.stop()
        await pair.stop()
    }

    @Test func resolveErrors() async throws {
        let node = try SerialTestNode.start("lonely")
        await #expect(throws: SerialTransportError.unknownPort("nope")) {
            _ = try await node.serial.resolve(.serial("nope"))
        }
        var options = SerialTestNode.fastOptions()
        options.resolveTimeout = .milliseconds(100)
        let impatient = try SerialTestNode.start("impatient", options: options)
        try impatient.serial.open(SerialConfiguration(path: "/nonexistent/ttyUSB9", name: "usb9"))
        await #expect(throws: SerialTransportError.linkDown(port: "usb9")) {
            _ = try await impatient.serial.resolve(.serial("usb9"))
        }
        // Resolving by configured path works too.
        await #expect(throws: SerialTransportError.linkDown(port: "usb9")) {
            _ = try await impatient.serial.resolve(Address(.serial, "/nonexistent/ttyUSB9"))
        }
        #expect(impatient.serial.status(port: "usb9")?.phase == .waitingForDevice)
        #expect(throws: SerialTransportError.deviceNotFound(path: "/nonexistent/ttyUSB8")) {
            try impatient.serial.open(
                SerialConfiguration(path: "/nonexistent/ttyUSB8", name: "usb8"), requireDevice: true)
        }
        await impatient.serial.close(port: "usb9")
        #expect(impatient.serial.status(port: "usb9") == nil)
        await node.stop()
        await impatient.stop()
    }

    /// A port's `keepalive=` overrides the transport's default, and is what its hello announces.
    @Test func aPortsKeepaliveIsAnnouncedInItsHello() async throws {
        let pair = try await LinkedPair.start(gatewayKeepalive: .zero, deviceKeepalive: .milliseconds(300))
        #expect(pair.device.serial.status(port: "gw")?.peer?.keepaliveInterval == nil, "the gateway's is off")
        #expect(pair.gateway.serial.status(port: "dev")?.peer?.keepaliveInterval == .milliseconds(300))
        await pair.stop()
    }

    @Test func keepaliveDetectsASilentPeerAndTheLinkComesBack() async throws {
        var options = SerialTestNode.fastOptions()
        options.keepaliveInterval = .milliseconds(50)
        let pair = try await LinkedPair.start(gatewayOptions: options, deviceOptions: options)
        #expect(pair.gateway.serial.status(port: "dev")?.peer?.keepaliveInterval == .milliseconds(50))
        // Cut the device → gateway direction: the gateway hears nothing for 3 × 50 ms.
        pair.modem.setFilter(from: .b) { _ in [] }
        try await eventually("gateway notices the silence") {
            pair.gateway.recorder.all.contains {
                if case .down(.peerSilent) = $0.kind { return true } else { return false }
            }
        }
        pair.modem.setFilter(from: .b, nil)
        try await eventually("link back") {
            pair.gateway.serial.status(port: "dev")?.phase == .linked
                && pair.device.serial.status(port: "gw")?.phase == .linked
        }
        try await pair.exchange("after silence")
        #expect(pair.gatewayCounters.framesIn > 3)
        await pair.stop()
    }
}
