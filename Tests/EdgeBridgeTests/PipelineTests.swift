// Pipelined delivery: the window, cumulative acknowledgements, `after` ordering at the ingest, and falling back to one
// envelope at a time with an ingest service that does not advertise a window.
import EdgeNode
import EdgeRouting
import EdgeSync
import EdgeTestSupport
import EdgeWire
import Logging
import Testing

@testable import EdgeBridge

/// An ingest service the test drives by hand: it records every envelope and acknowledges only when told.
final class ManualIngest: Worker {
    let received = EdgeMutex<[BridgeEnvelope]>([])
    let replyRoute = EdgeMutex<Route?>(nil)
    /// Set when an envelope arrived while an earlier one was still unacknowledged.
    let overlapped = EdgeMutex(false)
    let acknowledged = EdgeMutex<UInt64?>(nil)

    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        let envelope = try BridgeEnvelope(decoding: message.payload)
        let unacknowledged = received.withLock { all in
            all.append(envelope)
            return all.filter { $0.sequence > (acknowledged.withLock { $0 } ?? 0) }.count > 1
        }
        if unacknowledged { overlapped.withLock { $0 = true } }
        replyRoute.withLock { $0 = message.returnRoute }
    }

    var count: Int { received.withLock { $0.count } }

    func refuse(_ sequence: UInt64, on node: Node) async throws {
        let route = try #require(replyRoute.withLock { $0 })
        try await node.send(LocalMessage(onwardRoute: route, returnRoute: [], payload: BridgeRefusal(sequence: sequence).encoded()))
    }

    func ack(_ sequence: UInt64, window: UInt64?, on node: Node) async throws {
        acknowledged.withLock { $0 = max($0 ?? 0, sequence) }
        let route = try #require(replyRoute.withLock { $0 })
        try await node.send(
            LocalMessage(onwardRoute: route, returnRoute: [], payload: BridgeAck(sequence: sequence, window: window).encoded()))
    }
}

/// A bridge on one node whose uplink is a ``ManualIngest`` on the same node, with `records` already stored.
struct LocalPipeline {
    let node = Node(logger: quietLogger("pipeline"))
    let ingest = ManualIngest()
    let store = MemoryStore()
    let bridge: Bridge

    init(records: Int, window: Int = 100, ackTimeout: Duration = .seconds(60), corrupt: Set<Int> = []) throws {
        try node.startWorker(ingest, at: .local("ingest"))
        for i in 1...records {
            let record = BridgeRecord(device: "d", receivedAt: 1, payload: Array("m\(i)".utf8))
            _ = try store.store(corrupt.contains(i) ? [0xff] : record.encoded())
        }
        var options = Rig.fastOptions
        options.window = window
        options.ackTimeout = ackTimeout
        bridge = Bridge(
            name: "b", store: store, node: node, logger: quietLogger("bridge"), options: options,
            resolve: { Route([.local("ingest")]) })
        try bridge.start()
    }

    func stop() async {
        await bridge.stop()
        await node.shutdown()
    }
}

@Suite("Pipelined delivery")
struct PipelineTests {
    @Test func envelopesNameTheOnePipelinedBeforeThemAndAcksCarryTheWindow() throws {
        let record = BridgeRecord(device: "serial:a", receivedAt: 1000, payload: [0x68, 0x69])
        let epoch: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
        let pipelined = BridgeEnvelope(sequence: 7, bridge: "s", record: record, epoch: epoch, after: 6)
        // The documented example with epoch, then `after` 6: array(8), …, bytes(8), 06.
        #expect(
            Hex.encode(pipelined.encoded())
                == "8801076173687365726961" + "6c3a61" + "1903e8" + "426869" + "480102030405060708" + "06")
        #expect(try BridgeEnvelope(decoding: pipelined.encoded()) == pipelined)
        // Without an epoch its slot is null; without `after` the envelope is the seven- or six-element form.
        let noEpoch = BridgeEnvelope(sequence: 7, bridge: "s", record: record, after: 6)
        #expect(Hex.encode(noEpoch.encoded()).hasSuffix("426869" + "f6" + "06"))
        #expect(try BridgeEnvelope(decoding: noEpoch.encoded()) == noEpoch)
        #expect(BridgeEnvelope(sequence: 7, bridge: "s", record: record, epoch: epoch).encoded().first == 0x87)
        // `after` may be null too (reserving the slot).
        var nullAfter = BridgeEnvelope(sequence: 7, bridge: "s", record: record, epoch: epoch).encoded()
        nullAfter[0] = 0x88
        nullAfter.append(0xf6)
        #expect(try BridgeEnvelope(decoding: nullAfter).after == nil)
        // A decoder from before both fields reads the pipelined form.
        #expect(try EnvelopeTests().sixFieldDecode(pipelined.encoded()).sequence == 7)
        // Acknowledgements: [1, sequence, window]; the two-element form is "no window".
        #expect(Hex.encode(BridgeAck(sequence: 7, window: 1024).encoded()) == "830107190400")
        #expect(try BridgeAck(decoding: BridgeAck(sequence: 7, window: 1024).encoded()) == BridgeAck(sequence: 7, window: 1024))
        #expect(try BridgeAck(decoding: [0x82, 0x01, 0x07]).window == nil)
        #expect(try BridgeAck(decoding: [0x84, 0x01, 0x07, 0x02, 0x00]).window == 2)  // a fourth field is skipped
        // Refusals: [2, sequence]; a reply is either.
        #expect(Hex.encode(BridgeRefusal(sequence: 7).encoded()) == "820207")
        #expect(try BridgeReply(decoding: [0x82, 0x02, 0x07]) == .refused(BridgeRefusal(sequence: 7)))
        #expect(try BridgeReply(decoding: [0x82, 0x01, 0x07]) == .ack(BridgeAck(sequence: 7)))
        #expect(throws: BridgeError.unsupportedVersion(3)) { try BridgeReply(decoding: [0x82, 0x03, 0x07]) }
        #expect(throws: BridgeError.self) { try BridgeReply(decoding: [0x81, 0x02]) }
    }

    @Test func theWindowOpensOnTheFirstAckAndAcksAreCumulative() async throws {
        let pipeline = try LocalPipeline(records: 300, window: 100)
        let node = pipeline.node
        let ingest = pipeline.ingest
        // One at a time until the ingest service says it keeps order.
        try await eventually("the first envelope") {
            ingest.count == 1 && pipeline.bridge.delivery == Bridge.Delivery(inFlight: 1, window: 1)
        }
        try await ingest.ack(1, window: 1000, on: node)
        // Then the bridge's own window (the smaller): 100 in flight, none acknowledged.
        try await eventually("100 in flight") {
            ingest.count == 101 && pipeline.bridge.delivery == Bridge.Delivery(inFlight: 100, window: 100)
        }
        // Each names the one sent before it; the first of the run names none.
        let sent = ingest.received.withLock { $0 }
        #expect(sent.map(\.sequence) == Array(1...101))
        #expect(sent[0].after == nil)
        #expect(sent.dropFirst().allSatisfy { $0.after == $0.sequence - 1 })
        // One acknowledgement covers everything up to it: 50 more go out.
        try await ingest.ack(51, window: 1000, on: node)
        try await eventually("151 sent") { ingest.count == 151 }
        #expect(pipeline.bridge.counters.delivered == 51)
        #expect(pipeline.store.pending == 249)
        // A late acknowledgement of something already covered changes nothing.
        try await ingest.ack(20, window: 1000, on: node)
        for last in stride(from: 100 as UInt64, through: 300, by: 50) {
            try await eventually("sent through \(last)") { ingest.received.withLock { $0.last?.sequence ?? 0 } >= last }
            try await ingest.ack(last, window: 1000, on: node)
        }
        try await eventually("everything acknowledged") { pipeline.bridge.counters.delivered == 300 }
        #expect(pipeline.store.pending == 0)
        #expect(pipeline.bridge.counters.deliveryFailures == 0 && pipeline.bridge.counters.resent == 0)
        #expect(ingest.count == 300)  // nothing sent twice
        await pipeline.stop()
    }

    @Test func anIngestServiceWithoutAWindowGetsOneEnvelopeAtATime() async throws {
        let pipeline = try LocalPipeline(records: 20)
        for sequence in 1...20 as ClosedRange<UInt64> {
            try await eventually("envelope \(sequence)") { pipeline.ingest.count == Int(sequence) }
            try await pipeline.ingest.ack(sequence, window: nil, on: pipeline.node)
        }
        try await eventually("everything acknowledged") { pipeline.store.pending == 0 }
        #expect(!pipeline.ingest.overlapped.withLock { $0 })
        #expect(pipeline.ingest.received.withLock { $0 }.allSatisfy { $0.after == nil || $0.after == $0.sequence - 1 })
        #expect(pipeline.bridge.delivery.window == 1)
        await pipeline.stop()
    }

    @Test func anAcknowledgementBeyondWhatWasSentBreaksTheRun() async throws {
        let pipeline = try LocalPipeline(records: 3)
        try await eventually("the first envelope") { pipeline.ingest.count == 1 }
        try await pipeline.ingest.ack(3, window: 10, on: pipeline.node)  // 3 was never sent
        try await eventually("the run failed") { pipeline.bridge.counters.deliveryFailures == 1 }
        #expect(pipeline.store.pending == 3)  // nothing acknowledged in the store
        #expect(pipeline.bridge.lastError?.contains("beyond the last message sent") == true)
        await pipeline.stop()
    }

    @Test func noAcknowledgementWithinTheTimeoutResendsFromTheOldest() async throws {
        let pipeline = try LocalPipeline(records: 10, window: 4, ackTimeout: .seconds(2))  // (a loaded machine must not time out the first ack)
        try await eventually("the first envelope") { pipeline.ingest.count == 1 }
        try await pipeline.ingest.ack(1, window: 10, on: pipeline.node)
        try await eventually("four in flight") { pipeline.bridge.delivery.inFlight == 4 }
        // Nothing more is acknowledged: the run fails and the next one starts again at 2, naming nothing before it.
        try await eventually("sent again") { pipeline.ingest.count >= 6 }
        let sent = pipeline.ingest.received.withLock { $0 }
        #expect(sent[5].sequence == 2 && sent[5].after == nil)
        #expect(pipeline.bridge.counters.deliveryFailures >= 1 && pipeline.bridge.counters.resent >= 4)
        await pipeline.stop()
    }

    @Test func aRefusalEndsTheRunAtOnceAndEverythingFromItIsSentAgain() async throws {
        let pipeline = try LocalPipeline(records: 6, window: 10)
        try await eventually("the first envelope") { pipeline.ingest.count == 1 }
        try await pipeline.ingest.ack(1, window: 10, on: pipeline.node)
        try await eventually("2 to 6 sent") { pipeline.ingest.count == 6 }
        try await pipeline.ingest.ack(2, window: 10, on: pipeline.node)
        try await pipeline.ingest.refuse(3, on: pipeline.node)  // its sink stored 2, then failed on 3
        try await eventually("sent again from 3") {
            pipeline.ingest.received.withLock { $0.dropFirst(6).first?.sequence } == 3
        }
        #expect(pipeline.bridge.counters.deliveryFailures == 1)
        #expect(pipeline.bridge.lastError == "the ingest service could not store message 3")
        // A refusal of something not in flight (from a run that ended) changes nothing.
        try await pipeline.ingest.refuse(99, on: pipeline.node)
        try await pipeline.ingest.ack(3, window: 10, on: pipeline.node)
        try await eventually("4 to 6 sent again") { pipeline.ingest.count == 10 }
        try await pipeline.ingest.ack(6, window: 10, on: pipeline.node)
        try await eventually("everything acknowledged") { pipeline.bridge.counters.delivered == 6 }
        #expect(pipeline.bridge.counters.deliveryFailures == 1)
        await pipeline.stop()
    }

    /// An acknowledgement of an earlier run that arrives in the next one is true: it is taken, and counted.
    @Test func anAcknowledgementFromTheRunBeforeIsTaken() async throws {
        let pipeline = try LocalPipeline(records: 8, window: 4)
        try await eventually("the first envelope") { pipeline.ingest.count == 1 }
        try await pipeline.ingest.ack(1, window: 10, on: pipeline.node)
        try await eventually("2 to 5 in flight") { pipeline.ingest.count == 5 }
        try await pipeline.ingest.refuse(5, on: pipeline.node)  // ends the run; the next one starts again at 2
        try await eventually("2 sent again") { pipeline.ingest.count == 6 }
        try await pipeline.ingest.ack(4, window: 10, on: pipeline.node)  // the ingest had stored 2, 3 and 4
        try await eventually("5 to 8 sent") { pipeline.ingest.received.withLock { $0.last?.sequence } == 8 }
        #expect(pipeline.ingest.received.withLock { $0.dropFirst(6).map(\.sequence) } == [5, 6, 7, 8])
        try await pipeline.ingest.ack(8, window: 10, on: pipeline.node)
        try await eventually("everything acknowledged") { pipeline.bridge.counters.delivered == 8 }
        #expect(pipeline.store.pending == 0 && pipeline.bridge.counters.deliveryFailures == 1)
        await pipeline.stop()
    }

    @Test func aCorruptRecordInTheWindowIsSkippedAndAcknowledgedOnceThoseBeforeItAre() async throws {
        let pipeline = try LocalPipeline(records: 6, corrupt: [4, 6])
        try await eventually("the first envelope") { pipeline.ingest.count == 1 }
        try await pipeline.ingest.ack(1, window: 10, on: pipeline.node)
        try await eventually("2, 3 and 5 sent") { pipeline.ingest.count == 4 }
        let sent = pipeline.ingest.received.withLock { $0 }
        #expect(sent.map(\.sequence) == [1, 2, 3, 5])
        #expect(sent[3].after == 3)  // the skipped record is a gap, as a record the gateway dropped
        #expect(pipeline.bridge.counters.droppedCorrupt == 2)
        #expect(pipeline.store.pending == 5)  // 4 and 6 wait for 2, 3 and 5
        try await pipeline.ingest.ack(5, window: 10, on: pipeline.node)
        try await eventually("everything acknowledged") {
            pipeline.store.pending == 0 && pipeline.bridge.counters.delivered == 4
        }
        await pipeline.stop()
    }

    /// Through a real secure channel: the sink refuses two readings once each while the envelopes behind them are in
    /// flight. Nothing is stored out of order or twice, and everything is stored.
    @Test func aReadingTheSinkRefusedIsNeverOvertaken() async throws {
        let rig = try await Rig()
        rig.sink.failOnce.withLock { $0 = ["m10", "m120"] }
        for i in 0..<200 { try await rig.deviceSends("m\(i)") }
        try await eventually("200 ingested", within: .seconds(120)) { rig.sink.all.count == 200 }
        #expect(rig.ingestedTexts == (0..<200).map { "m\($0)" })
        try await eventually("200 acknowledged", within: .seconds(120)) { rig.bridge.counters.delivered == 200 }
        #expect(rig.ingest.counters.sinkFailures == 2)
        #expect(rig.bridge.counters.deliveryFailures >= 1)
        await rig.stop()
    }
}

@Suite("Ingest ordering of pipelined envelopes")
struct IngestOrderingTests {
    @Test func anEnvelopeIsStoredOnlyAfterTheOneItFollows() async throws {
        let node = Node(logger: quietLogger("ingest-node"))
        let sink = MemorySink()
        let ingest = IngestService(sink: sink, logger: quietLogger("ingest"), window: 64)
        try node.startWorker(ingest, at: .local("ingest"))
        func envelope(_ sequence: UInt64, after: UInt64?, bridge: String) -> [UInt8] {
            BridgeEnvelope(
                sequence: sequence, bridge: bridge, record: BridgeRecord(device: "d", receivedAt: 1, payload: Array("p\(sequence)".utf8)),
                after: after
            ).encoded()
        }
        /// Sent and answered.
        func send(_ sequence: UInt64, after: UInt64?, bridge: String = "b") async throws -> BridgeAck {
            let reply = try await node.request(
                to: [.local("ingest")], payload: envelope(sequence, after: after, bridge: bridge), timeout: .seconds(30))
            return try BridgeAck(decoding: reply.payload)
        }
        /// Sent, not waited for: the mailbox is in order, so the next `send`'s answer means this one was handled.
        func fire(_ sequence: UInt64, after: UInt64?, bridge: String = "b") async throws {
            try await node.send(
                LocalMessage(onwardRoute: [.local("ingest")], returnRoute: [], payload: envelope(sequence, after: after, bridge: bridge)))
        }
        #expect(try await send(1, after: nil) == BridgeAck(sequence: 1, window: 64))
        try await fire(3, after: 2)  // 2 is not stored: dropped
        #expect(try await send(2, after: 1).sequence == 2)
        #expect(try await send(3, after: 2).sequence == 3)  // sent again after 2: stored
        try await fire(5, after: 5)  // nonsense: malformed
        #expect(try await send(2, after: 1).sequence == 2)  // a repeat: acknowledged, not stored
        try await fire(4, after: 3, bridge: "c")  // nothing stored for this bridge yet: dropped
        #expect(try await send(4, after: nil, bridge: "c").sequence == 4)  // the first of a run: stored
        #expect(try await send(6, after: 4, bridge: "c").sequence == 6)  // 5 was dropped at the gateway: a gap
        #expect(
            ingest.counters
                == IngestService.Counters(accepted: 5, duplicates: 1, skipped: 1, malformed: 1, sinkFailures: 0, outOfOrder: 2))
        #expect(sink.all.count == 5)
        await node.shutdown()
    }
}
