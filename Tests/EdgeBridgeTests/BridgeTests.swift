import EdgeSync
import EdgeIdentity
import EdgeNode
import EdgeRouting
import EdgeSecureChannel
import EdgeTestSupport
import EdgeTransportTCP
import EdgeWire
import Foundation
import Logging
import NIOPosix
import Synchronization
import SystemPackage
import Testing

@testable import EdgeBridge

/// A bounded in-memory store: the bridge's logic without the disk (EdgeQueue has its own tests).
final class MemoryStore: BridgeStore {
    private let state: EdgeMutex<(next: UInt64, records: [(UInt64, [UInt8])])> = EdgeMutex((1, []))
    let capacity: Int
    init(capacity: Int = 10_000) { self.capacity = capacity }
    func store(_ record: [UInt8]) throws -> (sequence: UInt64, droppedOldest: Int) {
        state.withLock { s in
            var dropped = 0
            while s.records.count >= capacity {
                s.records.removeFirst()
                dropped += 1
            }
            defer { s.next += 1 }
            s.records.append((s.next, record))
            return (s.next, dropped)
        }
    }
    func oldest(max: Int) throws -> [(sequence: UInt64, bytes: [UInt8])] {
        state.withLock { s in s.records.prefix(max).map { (sequence: $0.0, bytes: $0.1) } }
    }
    func acknowledge(through sequence: UInt64) throws -> Int {
        state.withLock { s in
            let before = s.records.count
            s.records.removeAll { $0.0 <= sequence }
            return before - s.records.count
        }
    }
    var pending: Int { state.withLock { $0.records.count } }
}

/// Collects ingest lines in memory; fails once for each payload text in `failOnce` (a store that was briefly down).
final class MemorySink: IngestSink {
    struct Refused: Error {}
    let lines = EdgeMutex<[String]>([])
    let failOnce = EdgeMutex<Set<String>>([])
    func store(_ reading: IngestReading) async throws -> IngestOutcome {
        let text = String(decoding: reading.envelope.record.payload, as: UTF8.self)
        if failOnce.withLock({ $0.remove(text) != nil }) { throw Refused() }
        lines.withLock { $0.append(IngestService.line(reading.envelope, from: reading.gateway)) }
        return .stored
    }
    var all: [String] { lines.withLock { $0 } }
}

/// A local hop that drops everything while closed: the gateway's uplink, cut and restored on demand.
final class Gate: Worker {
    let open = Atomic<Bool>(true)
    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        guard open.load(ordering: .acquiring) else { return }
        var message = message
        message.onwardRoute.popFront()
        message.returnRoute.prepend(context.address)
        try await context.forward(message)
    }
}

func quietLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = .critical
    return logger
}

/// A cloud node (TCP listener, secure channel listener, ingest service) and a gateway node with a bridge whose
/// uplink runs through a gate.
struct Rig {
    let cloud: Node
    let cloudTCP: TCPTransport
    let cloudChannels: SecureChannels
    let gateway: Node
    let gatewayTCP: TCPTransport
    let gatewayChannels: SecureChannels
    let gate = Gate()
    let sink = MemorySink()
    let ingest: IngestService
    let bridge: Bridge

    init(
        store: any BridgeStore = MemoryStore(), options: Bridge.Options = Rig.fastOptions,
        bridgeLogger: Logger = quietLogger("bridge")
    ) async throws {
        cloud = Node(logger: quietLogger("cloud"))
        cloudTCP = TCPTransport(node: cloud, group: MultiThreadedEventLoopGroup.singleton)
        let port = try await cloudTCP.listen(host: "127.0.0.1", port: 0).port!
        cloudChannels = SecureChannels(node: cloud, local: try SecureChannelCredentials.ephemeral())
        try cloudChannels.startListener(options: SecureChannelOptions())
        ingest = IngestService(sink: sink, logger: quietLogger("ingest"))
        try cloud.startWorker(ingest, at: .local("ingest"))

        gateway = Node(logger: quietLogger("gateway"))
        gatewayTCP = TCPTransport(node: gateway, group: MultiThreadedEventLoopGroup.singleton)
        gatewayChannels = SecureChannels(node: gateway, local: try SecureChannelCredentials.ephemeral())
        try gateway.startWorker(gate, at: .local("gate"))
        let channels = gatewayChannels
        let uplink = Route([.local("gate"), .tcp("127.0.0.1:\(port)"), .local("api")])
        bridge = Bridge(
            name: "sensors", store: store, node: gateway, logger: bridgeLogger, options: options,
            describeLink: { $0 == .local("link-7") ? "serial:bench" : nil },
            resolve: {
                let channel = try await channels.createChannel(
                    to: uplink, options: SecureChannelOptions(handshakeTimeout: .seconds(3)))
                return Route([channel.encryptor, .local("ingest")])
            },
            discard: { route in if let first = route.addresses.first { await channels.close(first) } })
        try gateway.startWorker(bridge.worker, at: .local("sensors"))
        try bridge.start()
    }

    static var fastOptions: Bridge.Options {
        var options = Bridge.Options()
        options.ackTimeout = .seconds(2)  // generous: a loaded CI machine must not look like a broken uplink
        options.retryInitial = .milliseconds(20)
        options.retryMax = .milliseconds(200)
        options.replyToDevices = false
        return options
    }

    /// A device message as the serial transport would hand it over (sender link address first in the return route).
    func deviceSends(_ text: String) async throws {
        try await gateway.send(
            LocalMessage(onwardRoute: [.local("sensors")], returnRoute: [.local("link-7")], payload: Array(text.utf8)))
    }

    func stop() async {
        await bridge.stop()
        await gatewayChannels.closeAll()
        await cloudChannels.closeAll()
        await gatewayTCP.shutdown()
        await cloudTCP.shutdown()
        await gateway.shutdown()
        await cloud.shutdown()
    }

    /// The `text` field of every ingested line, in order.
    var ingestedTexts: [String] {
        sink.all.compactMap { line in
            guard let field = line.split(separator: "\"text\":\"", maxSplits: 1).dropFirst().first,
                let end = field.firstIndex(of: "\"")
            else { return nil }
            return String(field[..<end])
        }
    }
}

@Suite("Bridge envelopes")
struct EnvelopeTests {
    @Test func recordEnvelopeAndAckRoundTrip() throws {
        let record = BridgeRecord(device: "serial:bench", receivedAt: 1_764_000_000_123, payload: Array("t=21.5".utf8))
        #expect(try BridgeRecord(decoding: record.encoded()) == record)
        let envelope = BridgeEnvelope(sequence: 42, bridge: "sensors", record: record)
        #expect(try BridgeEnvelope(decoding: envelope.encoded()) == envelope)
        #expect(try BridgeAck(decoding: BridgeAck(sequence: 42).encoded()) == BridgeAck(sequence: 42))
    }

    /// The worked example in docs/bridge.md.
    @Test func envelopeBytesMatchTheDocumentation() throws {
        let envelope = BridgeEnvelope(
            sequence: 7, bridge: "s", record: BridgeRecord(device: "serial:a", receivedAt: 1000, payload: [0x68, 0x69]))
        #expect(Hex.encode(envelope.encoded()) == "8601076173687365726961" + "6c3a61" + "1903e8" + "426869")
        #expect(Hex.encode(BridgeAck(sequence: 7).encoded()) == "820107")
    }

    @Test func malformedInputIsRejectedWithATypedError() {
        #expect(throws: BridgeError.self) { try BridgeEnvelope(decoding: []) }
        #expect(throws: BridgeError.unsupportedVersion(2)) { try BridgeEnvelope(decoding: [0x86, 0x02, 0, 0x60, 0x60, 0, 0x40]) }
        #expect(throws: BridgeError.self) { try BridgeEnvelope(decoding: [0x85, 0x01, 0, 0x60, 0x60, 0]) }  // 5 fields
        #expect(throws: BridgeError.self) { try BridgeAck(decoding: [0x82, 0x01]) }  // truncated
        #expect(throws: BridgeError.self) { try BridgeEnvelope(decoding: BridgeAck(sequence: 1).encoded() + [0]) }
        let huge = [UInt8](repeating: 0, count: BridgeLimits.maxEncoded + 1)
        #expect(throws: BridgeError.tooLarge(size: huge.count, limit: BridgeLimits.maxEncoded)) { try BridgeEnvelope(decoding: huge) }
    }

    @Test func theEpochIsAnOptionalSeventhField() throws {
        let record = BridgeRecord(device: "serial:a", receivedAt: 1000, payload: [0x68, 0x69])
        let old = BridgeEnvelope(sequence: 7, bridge: "s", record: record)
        let epoch: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
        let new = BridgeEnvelope(sequence: 7, bridge: "s", record: record, epoch: epoch)
        // The documented example with the epoch appended: array(7), ..., bytes(8).
        #expect(Hex.encode(new.encoded()) == "8701076173687365726961" + "6c3a61" + "1903e8" + "426869" + "480102030405060708")
        #expect(try BridgeEnvelope(decoding: new.encoded()) == new)
        // Without one it decodes with the epoch absent, and still encodes as the 6-element form.
        #expect(try BridgeEnvelope(decoding: old.encoded()).epoch == nil)
        #expect(old.encoded().first == 0x86)
        // A decoder that knows only the first six fields (the pre-epoch one) reads the new form unchanged.
        #expect(try sixFieldDecode(new.encoded()) == old)
        // Null in the epoch's place, and fields after the epoch, are accepted; an empty or oversized epoch is not.
        var withNull = old.encoded()
        withNull[0] = 0x87
        withNull.append(0xf6)
        #expect(try BridgeEnvelope(decoding: withNull) == old)
        var nine = new.encoded()  // the eighth field is `after`; a ninth is skipped
        nine[0] = 0x89
        nine.append(contentsOf: [0x01, 0x02])
        var withAfter = new
        withAfter.after = 1
        #expect(try BridgeEnvelope(decoding: nine) == withAfter)
        var empty = old.encoded()
        empty[0] = 0x87
        empty.append(0x40)
        #expect(throws: BridgeError.self) { try BridgeEnvelope(decoding: empty) }
        let long = BridgeEnvelope(sequence: 7, bridge: "s", record: record, epoch: Array(repeating: 9, count: BridgeLimits.maxEpoch + 1))
        #expect(throws: BridgeError.self) { try BridgeEnvelope(decoding: long.encoded()) }
    }

    /// The envelope decoder as it was before epochs: six fields, the rest skipped.
    func sixFieldDecode(_ bytes: [UInt8]) throws -> BridgeEnvelope {
        var r = CBORReader(bytes)
        let count = try r.readArrayHeader(limit: 64)
        #expect(try r.readUnsigned() == 1)
        let sequence = try r.readUnsigned()
        let bridge = try r.readText(limit: BridgeLimits.maxText)
        let device = try r.readText(limit: BridgeLimits.maxText)
        let receivedAt = try r.readUnsigned()
        let payload = Array(try r.readBytes(limit: BridgeLimits.maxPayload))
        try r.skipValues(count - 6)
        try r.expectEnd()
        return BridgeEnvelope(sequence: sequence, bridge: bridge, record: BridgeRecord(device: device, receivedAt: receivedAt, payload: payload))
    }

    @Test func laterVersionsMayAppendFields() throws {
        var bytes = BridgeEnvelope(sequence: 1, bridge: "b", record: BridgeRecord(device: "d", receivedAt: 0, payload: [])).encoded()
        bytes[0] = 0x87  // 7 elements
        bytes.append(0xf6)  // null
        #expect(try BridgeEnvelope(decoding: bytes).sequence == 1)
    }
}

@Suite("Bridge delivery")
struct BridgeDeliveryTests {
    @Test func messagesArriveOnceInOrderTaggedWithTheirLink() async throws {
        let rig = try await Rig()
        for i in 0..<50 { try await rig.deviceSends("m\(i)") }
        try await eventually("50 ingested", within: .seconds(120)) { rig.sink.all.count == 50 }
        #expect(rig.ingestedTexts == (0..<50).map { "m\($0)" })
        #expect(rig.sink.all.allSatisfy { $0.contains("\"device\":\"serial:bench\"") && $0.contains("\"bridge\":\"sensors\"") })
        #expect(rig.sink.all.first?.contains("\"from\":\"\(rig.gatewayChannels.local.identity.identifier)\"") == true)
        // (The ingest writes before it acknowledges: the bridge counts a delivery when the acknowledgement is back.)
        try await eventually("50 acknowledged", within: .seconds(120)) { rig.bridge.counters.delivered == 50 }
        #expect(rig.bridge.pending == 0)
        await rig.stop()
    }

    @Test func uplinkCutQueuesAndRecoveryDeliversEverythingOnceInOrder() async throws {
        let rig = try await Rig()
        try await rig.deviceSends("before")
        try await eventually("first delivered") { rig.sink.all.count == 1 }
        rig.gate.open.store(false, ordering: .releasing)
        for i in 0..<100 { try await rig.deviceSends("m\(i)") }
        // While the uplink is down nothing more arrives, everything waits, and the bridge notices.
        try await eventually("all accepted") { rig.bridge.counters.accepted == 101 }
        try await eventually("uplink reported down") { !rig.bridge.uplinkUp }
        #expect(rig.sink.all.count == 1)
        #expect(rig.bridge.pending >= 100)  // (101 if the gate also swallowed the acknowledgement of "before")
        rig.gate.open.store(true, ordering: .releasing)
        // Delivery is one acknowledged round trip per message: under ThreadSanitizer with the whole suite running, 100
        // of them took over 30 s (92 of 101 delivered at the 30 s mark, still moving), hence the longer guard.
        try await eventually(
            "all delivered after recovery (\(rig.sink.all.count) of 101, \(rig.bridge.counters.deliveryFailures) delivery failures)",
            within: .seconds(120)
        ) { rig.sink.all.count == 101 }
        #expect(rig.ingestedTexts == ["before"] + (0..<100).map { "m\($0)" })
        #expect(rig.ingest.counters.skipped == 0)
        #expect(rig.bridge.counters.deliveryFailures >= 1)
        #expect(rig.bridge.counters.routeBuilds >= 2)
        await rig.stop()
    }

    @Test func aFullStoreDropsTheOldestAndCountsThem() async throws {
        let store = MemoryStore(capacity: 10)
        let rig = try await Rig(store: store)
        rig.gate.open.store(false, ordering: .releasing)
        try await rig.deviceSends("first")
        try await eventually("uplink reported down") { !rig.bridge.uplinkUp && rig.bridge.lastError != nil }
        for i in 0..<30 { try await rig.deviceSends("m\(i)") }
        try await eventually("31 accepted") { rig.bridge.counters.accepted == 31 }
        #expect(rig.bridge.counters.droppedOldest == 21)
        rig.gate.open.store(true, ordering: .releasing)
        try await eventually("the newest 10 delivered") { rig.sink.all.count == 10 }
        #expect(rig.ingestedTexts == (20..<30).map { "m\($0)" })
        #expect(rig.ingest.counters.skipped == 0)  // nothing acknowledged before the gap was ever seen by ingest
        await rig.stop()
    }

    /// A device decides how many oversized messages it sends, and how many it sends while the store is full: one
    /// warning per interval for each (the next one says how many were suppressed), the rest at debug, all counted.
    @Test func refusalAndQueueFullWarningsAreRateLimited() async throws {
        let records = LogRecords()
        let rig = try await Rig(store: MemoryStore(capacity: 2), bridgeLogger: records.logger())
        rig.gate.open.store(false, ordering: .releasing)
        let oversized = String(repeating: "x", count: BridgeLimits.maxPayload + 1)
        for _ in 0..<10 { try await rig.deviceSends(oversized) }
        for i in 0..<12 { try await rig.deviceSends("m\(i)") }
        try await eventually("10 refused, 12 accepted") { rig.bridge.counters.refused == 10 && rig.bridge.counters.accepted == 12 }
        #expect(rig.bridge.counters.droppedOldest == 10)
        let refusedLine = "refused a \(BridgeLimits.maxPayload + 1)-byte message"
        #expect(records.messages(.warning, startingWith: refusedLine).count == 1)
        #expect(records.messages(.debug, startingWith: refusedLine).count == 9)
        #expect(rig.bridge.oversizeLog.admit(now: .now + .seconds(10)) == 9)
        #expect(records.messages(.warning, startingWith: "queue full: ").count == 1)
        #expect(records.messages(.debug, startingWith: "queue full: ").count == 9)
        #expect(rig.bridge.queueFullLog.admit(now: .now + .seconds(10)) == 9)
        await rig.stop()
    }

    @Test func devicesGetAnAcknowledgementWithTheSequence() async throws {
        var options = Rig.fastOptions
        options.replyToDevices = true
        let rig = try await Rig(options: options)
        let reply = try await rig.gateway.request(to: [.local("sensors")], payload: Array("x".utf8), timeout: .seconds(30))
        #expect(try BARE.decodeString(reply.payload) == "ok 1")
        await rig.stop()
    }
}

@Suite("Ingest service")
struct IngestTests {
    @Test func redeliveryIsAcknowledgedButWrittenOnceAndGapsAreCounted() async throws {
        let node = Node(logger: quietLogger("ingest-node"))
        let sink = MemorySink()
        let ingest = IngestService(sink: sink, logger: quietLogger("ingest"))
        try node.startWorker(ingest, at: .local("ingest"))
        func send(_ sequence: UInt64) async throws -> BridgeAck {
            let envelope = BridgeEnvelope(
                sequence: sequence, bridge: "b", record: BridgeRecord(device: "d", receivedAt: 1, payload: Array("p\(sequence)".utf8)))
            let reply = try await node.request(to: [.local("ingest")], payload: envelope.encoded(), timeout: .seconds(30))
            return try BridgeAck(decoding: reply.payload)
        }
        #expect(try await send(1).sequence == 1)
        #expect(try await send(2).sequence == 2)
        #expect(try await send(2).sequence == 2)  // the ack was lost: redelivered, acked again
        #expect(try await send(5).sequence == 5)  // 3 and 4 were dropped at the gateway
        #expect(sink.all.count == 3)
        #expect(ingest.counters == IngestService.Counters(accepted: 3, duplicates: 1, skipped: 2, malformed: 0, sinkFailures: 0))
        // Garbage is dropped without an answer and counted.
        await #expect(throws: NodeError.self) {
            _ = try await node.request(to: [.local("ingest")], payload: [0xff, 0x00], timeout: .milliseconds(200))
        }
        #expect(ingest.counters.malformed == 1)
        await node.shutdown()
    }

    @Test func aNewQueueEpochIsNotTakenForDuplicates() async throws {
        let node = Node(logger: quietLogger("ingest-node"))
        let sink = MemorySink()
        let ingest = IngestService(sink: sink, logger: quietLogger("ingest"))
        try node.startWorker(ingest, at: .local("ingest"))
        func send(_ sequence: UInt64, epoch: [UInt8]?) async throws {
            let envelope = BridgeEnvelope(
                sequence: sequence, bridge: "b", record: BridgeRecord(device: "d", receivedAt: 1, payload: [1]), epoch: epoch)
            let reply = try await node.request(to: [.local("ingest")], payload: envelope.encoded(), timeout: .seconds(30))
            #expect(try BridgeAck(decoding: reply.payload).sequence == sequence)
        }
        let first: [UInt8] = [1, 1, 1, 1, 1, 1, 1, 1]
        let second: [UInt8] = [2, 2, 2, 2, 2, 2, 2, 2]
        try await send(0, epoch: first)
        try await send(1, epoch: first)
        try await send(1, epoch: first)  // duplicate
        try await send(0, epoch: second)  // the queue was wiped: numbering starts again, in a new epoch
        try await send(1, epoch: second)
        try await send(1, epoch: nil)  // a gateway from before epochs is a key of its own
        #expect(ingest.counters == IngestService.Counters(accepted: 5, duplicates: 1, skipped: 0, malformed: 0, sinkFailures: 0))
        #expect(sink.all.filter { $0.contains(#""epoch":"0202020202020202""#) }.count == 2)
        await node.shutdown()
    }

    /// A sink that already holds a reading says so: acknowledged, counted as a duplicate, remembered.
    @Test func aSinkThatAlreadyHoldsAReadingCountsADuplicate() async throws {
        final class Held: IngestSink {
            let calls = EdgeMutex(0)
            func store(_ reading: IngestReading) async throws -> IngestOutcome {
                calls.withLock { $0 += 1 }
                return .alreadyStored
            }
        }
        let node = Node(logger: quietLogger("ingest-node"))
        let sink = Held()
        let ingest = IngestService(sink: sink, logger: quietLogger("ingest"))
        try node.startWorker(ingest, at: .local("ingest"))
        let envelope = BridgeEnvelope(sequence: 4, bridge: "b", record: BridgeRecord(device: "d", receivedAt: 1, payload: [1]))
        for _ in 0..<2 {
            let reply = try await node.request(to: [.local("ingest")], payload: envelope.encoded(), timeout: .seconds(30))
            #expect(try BridgeAck(decoding: reply.payload).sequence == 4)
        }
        #expect(sink.calls.withLock { $0 } == 1)
        #expect(ingest.counters.duplicates == 2 && ingest.counters.accepted == 0)
        await node.shutdown()
    }

    /// A sink that fails leaves the reading unacknowledged, and the gateway is told so at once (a refusal, which a
    /// gateway that knows only acknowledgements cannot take for one).
    @Test func aFailingSinkLeavesTheReadingUnacknowledgedAndSaysSo() async throws {
        struct Broken: IngestSink, Error {
            func store(_ reading: IngestReading) async throws -> IngestOutcome { throw self }
        }
        let node = Node(logger: quietLogger("ingest-node"))
        let ingest = IngestService(sink: Broken(), logger: quietLogger("ingest"))
        try node.startWorker(ingest, at: .local("ingest"))
        let envelope = BridgeEnvelope(sequence: 1, bridge: "b", record: BridgeRecord(device: "d", receivedAt: 1, payload: [1]))
        let reply = try await node.request(to: [.local("ingest")], payload: envelope.encoded(), timeout: .seconds(30))
        #expect(try BridgeReply(decoding: reply.payload) == .refused(BridgeRefusal(sequence: 1)))
        #expect(throws: BridgeError.unsupportedVersion(2)) { try BridgeAck(decoding: reply.payload) }
        #expect(ingest.counters.sinkFailures == 1 && ingest.counters.accepted == 0)
        await node.shutdown()
    }

    @Test func sequenceGapsThatAddUpPastTheCounterSaturateIt() async throws {
        // Sequence numbers are the sender's: gaps of two bridges adding up past UInt64.max trapped `skipped += gap`.
        let node = Node(logger: quietLogger("ingest-node"))
        let ingest = IngestService(sink: MemorySink(), logger: quietLogger("ingest"))
        try node.startWorker(ingest, at: .local("ingest"))
        func send(_ sequence: UInt64, bridge: String) async throws -> BridgeAck {
            let envelope = BridgeEnvelope(
                sequence: sequence, bridge: bridge, record: BridgeRecord(device: "d", receivedAt: 1, payload: [1]))
            let reply = try await node.request(to: [.local("ingest")], payload: envelope.encoded(), timeout: .seconds(30))
            return try BridgeAck(decoding: reply.payload)
        }
        #expect(try await send(0, bridge: "a").sequence == 0)
        #expect(try await send(.max, bridge: "a").sequence == .max)  // skipped: 2⁶⁴ − 2
        #expect(try await send(0, bridge: "b").sequence == 0)
        #expect(try await send(3, bridge: "b").sequence == 3)  // skipped: 2 more
        #expect(ingest.counters == IngestService.Counters(accepted: 4, duplicates: 0, skipped: .max, malformed: 0, sinkFailures: 0))
        await node.shutdown()
    }

    @Test func linesAreJSONWithTextWhenThePayloadIsText() {
        let envelope = BridgeEnvelope(
            sequence: 3, bridge: "sensors", record: BridgeRecord(device: "ble:AA", receivedAt: 5, payload: BARE.encodeString("t=\"1\"")))
        #expect(
            IngestService.line(envelope, from: "I00")
                == #"{"from":"I00","bridge":"sensors","device":"ble:AA","sequence":3,"received_at_ms":5,"text":"t=\"1\"","hex":"05743d223122"}"#)
        let binary = BridgeEnvelope(sequence: 4, bridge: "s", record: BridgeRecord(device: "d", receivedAt: 0, payload: [0xff, 0x01]))
        #expect(!IngestService.line(binary, from: "-").contains("\"text\""))
        let withEpoch = BridgeEnvelope(sequence: 4, bridge: "s", record: BridgeRecord(device: "d", receivedAt: 0, payload: [0xff]), epoch: [0xab, 1])
        #expect(IngestService.line(withEpoch, from: "-").contains(#""received_at_ms":0,"epoch":"ab01","hex":"ff""#))
    }
}

@Suite("Queue epoch")
struct QueueEpochTests {
    func temporaryDirectory() throws -> FilePath {
        var template = Array("/tmp/ockam-edge-epoch-XXXXXX".utf8CString)
        let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        return FilePath(path)
    }

    @Test func theEpochIsMadeOnceAndKept() throws {
        let directory = try temporaryDirectory()
        defer { _ = try? FileManager.default.removeItem(atPath: directory.string) }
        let epoch = try QueueEpoch.loadOrCreate(in: directory)
        #expect(epoch.count == 8)
        #expect(try QueueEpoch.loadOrCreate(in: directory) == epoch)
        let text = try String(contentsOfFile: directory.appending("epoch").string, encoding: .utf8)
        #expect(text == Hex.encode(epoch) + "\n")
        let mode = try FileManager.default.attributesOfItem(atPath: directory.appending("epoch").string)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(!FileManager.default.fileExists(atPath: directory.appending(".tmp-epoch").string))
        // A wiped queue directory gets a new epoch.
        let other = try temporaryDirectory()
        defer { _ = try? FileManager.default.removeItem(atPath: other.string) }
        #expect(try QueueEpoch.loadOrCreate(in: other) != epoch)
    }

    @Test func aDamagedEpochFileIsRefused() throws {
        let directory = try temporaryDirectory()
        defer { _ = try? FileManager.default.removeItem(atPath: directory.string) }
        for bad in ["", "0102\n", "zz02030405060708\n", "0102030405060708", "010203040506070809\n"] {
            try bad.write(toFile: directory.appending("epoch").string, atomically: true, encoding: .utf8)
            #expect(throws: QueueEpochError.corrupt(path: directory.appending("epoch").string)) {
                try QueueEpoch.loadOrCreate(in: directory)
            }
        }
    }
}
