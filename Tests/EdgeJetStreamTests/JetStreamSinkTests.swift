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

/// A single `nats-server -js` on a free loopback port with its store in a temporary directory.
final class NATSServer: @unchecked Sendable {
    static let binary: String? = {
        let candidates = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/nats-server" }
            + ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    let process = Process()
    let port: Int
    let storeDirectory: URL
    var url: String { "nats://127.0.0.1:\(port)" }

    init() throws {
        port = try Self.freePort()
        storeDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("ockam-edge-nats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: storeDirectory, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: Self.binary!)
        process.arguments = ["-js", "-a", "127.0.0.1", "-p", "\(port)", "-sd", storeDirectory.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready once it accepts a TCP connection.
        for _ in 0..<200 {
            if Self.accepts(port) { return }
            usleep(50_000)
        }
        stop()
        throw TimedOut(what: "nats-server did not listen on \(port)")
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: storeDirectory)
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw TimedOut(what: "no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

/// One message read back from the stream.
struct StoredReading: Equatable {
    var subject: String
    var epoch: String?
    var sequence: UInt64
    var payload: String
}

/// Reads the whole stream back with its own connection (js_GetMsg for every stream sequence).
func readBack(url: String, stream: String) throws -> [StoredReading] {
    var connection: OpaquePointer?
    guard natsConnection_ConnectTo(&connection, url) == NATS_OK, let connection else { throw TimedOut(what: "connect") }
    defer { natsConnection_Destroy(connection) }
    var context: OpaquePointer?
    guard natsConnection_JetStream(&context, connection, nil) == NATS_OK, let context else { throw TimedOut(what: "js") }
    defer { jsCtx_Destroy(context) }
    var readings: [StoredReading] = []
    var sequence: UInt64 = 1
    while true {
        var message: OpaquePointer?
        var code = jsErrCode(rawValue: 0)
        let status = js_GetMsg(&message, context, stream, sequence, nil, &code)
        if status != NATS_OK { break }
        guard let message else { break }
        defer { natsMsg_Destroy(message) }
        func header(_ name: String) -> String? {
            var value: UnsafePointer<CChar>?
            guard natsMsgHeader_Get(message, name, &value) == NATS_OK, let value else { return nil }
            return String(cString: value)
        }
        let data = natsMsg_GetData(message).map { Data(bytes: $0, count: Int(natsMsg_GetDataLength(message))) } ?? Data()
        readings.append(
            StoredReading(
                subject: String(cString: natsMsg_GetSubject(message)), epoch: header("Ockam-Epoch"),
                sequence: UInt64(header("Ockam-Sequence") ?? "") ?? 0, payload: String(decoding: data, as: UTF8.self)))
        sequence += 1
    }
    return readings
}

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

    /// With NATS down the sink fails and the reading stays unacknowledged; once NATS is back it is stored.
    @Test func nothingIsAcknowledgedWhileNATSIsDown() async throws {
        let port = try NATSServer.freePort()
        let sink = JetStreamSink(
            settings: JetStreamSettings(servers: ["nats://127.0.0.1:\(port)"], stream: "READINGS", subjectPrefix: "fleet", timeout: .seconds(1)),
            logger: quiet("jetstream"))
        let reading = IngestReading(gateway: "I00", envelope: envelope(1))
        await #expect(throws: JetStreamError.self) { _ = try await sink.store(reading) }
        await sink.close()
    }
}
#endif
