// Against a real nats-server: built only with trait JetStream (`make test-jetstream`).
#if JetStream
import CNATS
import EdgeBridge
import EdgeJetStream
import EdgeNode
import EdgeRouting
import EdgeTestSupport
import Foundation
import Logging
import Testing

func quiet(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = .critical
    return logger
}

@Suite("JetStream sink against nats-server", .serialized, .enabled(if: NATSServer.binary != nil, "nats-server is not installed (apt-get install nats-server); CI installs it"))
struct JetStreamSinkTests {
    static let epochA: [UInt8] = [0xa, 0xa, 0xa, 0xa, 0xa, 0xa, 0xa, 0xa]
    static let epochB: [UInt8] = [0xb, 0xb, 0xb, 0xb, 0xb, 0xb, 0xb, 0xb]

    func envelope(_ sequence: UInt64, bridge: String = "sensors.hall", epoch: [UInt8]? = Self.epochA) -> BridgeEnvelope {
        BridgeEnvelope(
            sequence: sequence, bridge: bridge,
            record: BridgeRecord(device: "serial:a", receivedAt: 1_764_000_000_000 + sequence, payload: Array("r\(sequence)".utf8)),
            epoch: epoch)
    }

    /// An ingest service with a fresh JetStream sink, on its own node; `send` delivers an envelope and returns the ack.
    struct Ingest {
        let node: Node
        let service: IngestService
        let sink: JetStreamSink

        init(url: String) throws {
            node = Node(logger: quiet("ingest-node"))
            sink = JetStreamSink(
                settings: JetStreamSettings(servers: [url], stream: "READINGS", subjectPrefix: "fleet", timeout: .seconds(5)),
                logger: quiet("jetstream"))
            service = IngestService(sink: sink, logger: quiet("ingest"))
            try node.startWorker(service, at: .local("ingest"))
        }

        func send(_ envelope: BridgeEnvelope) async throws -> UInt64 {
            let reply = try await node.request(to: [.local("ingest")], payload: envelope.encoded(), timeout: .seconds(30))
            return try BridgeAck(decoding: reply.payload).sequence
        }

        func stop() async {
            await node.shutdown()
            await sink.close()
        }
    }

    @Test func readingsAreStoredExactlyOnceInOrderAcrossDuplicatesResendsAndRestarts() async throws {
        let server = try NATSServer()
        defer { server.stop() }
        var ingest = try Ingest(url: server.url)
        for sequence: UInt64 in 1...3 { #expect(try await ingest.send(envelope(sequence)) == sequence) }
        #expect(try await ingest.send(envelope(2)) == 2)  // a lost acknowledgement: acknowledged again
        #expect(ingest.service.counters.accepted == 3 && ingest.service.counters.duplicates == 1)

        // The ingest node restarts: its memory is gone, the stream is not.
        await ingest.stop()
        ingest = try Ingest(url: server.url)
        #expect(try await ingest.send(envelope(2)) == 2)  // out-of-order resend: at or below the stored sequence
        #expect(try await ingest.send(envelope(3)) == 3)  // duplicate
        #expect(ingest.service.counters.accepted == 0 && ingest.service.counters.duplicates == 2)
        for sequence: UInt64 in 4...6 { #expect(try await ingest.send(envelope(sequence)) == sequence) }
        #expect(try await ingest.send(envelope(8)) == 8)  // 7 was dropped at the gateway: a gap, stored
        #expect(try await ingest.send(envelope(5)) == 5)  // an old resend after later ones: not stored again

        // A second ingest node races the first for the same readings: each is stored once.
        let other = try Ingest(url: server.url)
        #expect(try await other.send(envelope(9)) == 9)
        #expect(try await ingest.send(envelope(9)) == 9)
        #expect(try await ingest.send(envelope(10)) == 10)
        #expect(try await other.send(envelope(10)) == 10)
        #expect(try await other.send(envelope(11)) == 11)  // its view of the subject is stale: re-read, then stored

        // The gateway's queue is wiped: a new epoch starts again at 1 and is stored, not taken for duplicates.
        #expect(try await ingest.send(envelope(1, epoch: Self.epochB)) == 1)
        #expect(try await other.send(envelope(2, epoch: Self.epochB)) == 2)
        // Another bridge has a subject of its own.
        #expect(try await ingest.send(envelope(1, bridge: "meters", epoch: Self.epochA)) == 1)
        await other.stop()
        await ingest.stop()

        let stored = try readBack(url: server.url, stream: "READINGS")
        let hall = stored.filter { $0.subject == "fleet.-.sensors%2Ehall" }
        #expect(hall.map(\.sequence) == [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 1, 2])
        #expect(hall.map(\.epoch) == Array(repeating: "0a0a0a0a0a0a0a0a", count: 10) + Array(repeating: "0b0b0b0b0b0b0b0b", count: 2))
        #expect(hall.map(\.payload) == ["r1", "r2", "r3", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r1", "r2"])
        #expect(stored.filter { $0.subject == "fleet.-.meters" }.map(\.sequence) == [1])
        #expect(stored.count == 13)
    }

    /// A stream the sink creates gets the configured limits; the sink reports its connection, publish times and the
    /// last stored reading of each gateway bridge (a repeat of an older one does not move it back).
    @Test func aCreatedStreamHasTheConfiguredLimitsAndTheSinkReportsItsHealth() async throws {
        let server = try NATSServer()
        defer { server.stop() }
        let sink = JetStreamSink(
            settings: JetStreamSettings(
                servers: [server.url], stream: "LIMITED", subjectPrefix: "fleet", timeout: .seconds(5), maxAge: .seconds(3600),
                maxBytes: 64 << 20, duplicateWindow: .seconds(30)),
            logger: quiet("jetstream"))
        #expect(sink.health == IngestSinkHealth(kind: "jetstream", connected: false))
        for (sequence, bridge) in [(1, "sensors.hall"), (2, "sensors.hall"), (1, "meters")] as [(UInt64, String)] {
            #expect(try await sink.store(IngestReading(gateway: "I01", envelope: envelope(sequence, bridge: bridge))) == .stored)
        }
        #expect(try await sink.store(IngestReading(gateway: "I01", envelope: envelope(1))) == .alreadyStored)
        let health = try #require(sink.health)
        #expect(health.connected && health.lastError == nil && health.published == 3 && health.latency.count == 3)
        #expect(
            health.lastStored == [
                IngestSinkHealth.Stored(gateway: "I01", bridge: "meters", epoch: "0a0a0a0a0a0a0a0a", sequence: 1),
                IngestSinkHealth.Stored(gateway: "I01", bridge: "sensors.hall", epoch: "0a0a0a0a0a0a0a0a", sequence: 2),
            ])
        #expect(health.latency.quantile(0.5)! > .zero && health.latency.quantile(0.5)! <= health.latency.quantile(1)!)
        await sink.close()

        var connection: OpaquePointer?
        try #require(natsConnection_ConnectTo(&connection, server.url) == NATS_OK)
        defer { natsConnection_Destroy(connection) }
        var context: OpaquePointer?
        try #require(natsConnection_JetStream(&context, connection, nil) == NATS_OK)
        defer { jsCtx_Destroy(context) }
        var info: UnsafeMutablePointer<jsStreamInfo>?
        try #require(js_GetStreamInfo(&info, context, "LIMITED", nil, nil) == NATS_OK)
        defer { jsStreamInfo_Destroy(info) }
        let config = try #require(info?.pointee.Config?.pointee)
        #expect(config.MaxAge == 3_600_000_000_000 && config.MaxBytes == 64 << 20 && config.Duplicates == 30_000_000_000)
    }

    /// With NATS down the sink fails and the reading stays unacknowledged; once NATS is back it is stored.
    @Test func nothingIsAcknowledgedWhileNATSIsDown() async throws {
        let port = try NATSServer.freePort()
        let sink = JetStreamSink(
            settings: JetStreamSettings(servers: ["nats://127.0.0.1:\(port)"], stream: "READINGS", subjectPrefix: "fleet", timeout: .seconds(1)),
            logger: quiet("jetstream"))
        let reading = IngestReading(gateway: "I00", envelope: envelope(1))
        await #expect { _ = try await sink.store(reading) } throws: { error in
            // The log line says what failed and why: never an empty text, and libnats' status.
            guard let error = error as? JetStreamError else { return false }
            return !error.text.isEmpty && error.status != 0 && "\(error)".contains("(libnats status \(error.status)")
        }
        await sink.close()
    }
}
#endif
