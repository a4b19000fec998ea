// The whole path with trait JetStream: device → gateway bridge → secure channel → ingest agent → nats-server.
#if JetStream
import EdgeAgent
import EdgeConfig
import EdgeTestSupport
import Foundation
import Testing

@Suite("Agent with a JetStream sink", .serialized, .enabled(if: NATSServer.binary != nil, "nats-server is not installed (apt-get install nats-server); CI installs it"))
struct JetStreamAgentTests {
    @Test func readingsLandOnTheGatewaysSubjectWithItsIdentityAndQueueEpoch() async throws {
        let server = try NATSServer()
        defer { server.stop() }
        let ingest = try AgentConfig.parse(
            """
            ingest:
              - address: ingest
                sink:
                  type: jetstream
                  servers: \(server.url)
                  stream: FLEET
                  subject_prefix: fleet.readings
            """, file: "cloud.yaml"
        ).ingest
        let cloud = try await RuntimeUnderTest.start("cloud") { $0.ingest = ingest }
        let gateway = try await RuntimeUnderTest.start("gateway", state: cloud.state) {
            $0.bridges = [AgentConfig.Bridge(name: "hall.sensors", to: "/ip4/127.0.0.1/tcp/\(cloud.port)/secure/api/service/ingest")]
        }
        let device = try await RuntimeUnderTest.start("device", state: cloud.state)
        let gatewayID = try #require(try await gateway.json(.status)["identifier"] as? String)
        let deviceID = try #require(try await device.json(.status)["identifier"] as? String)
        for n in 0..<5 {  // a new queue numbers from 0
            let reply = try await device.reply("/ip4/127.0.0.1/tcp/\(gateway.port)/secure/api/service/hall.sensors", "reading \(n)")
            #expect(reply == "ok \(n)")
        }
        var stored: [StoredReading] = []
        try await eventually("five readings in the stream", within: .seconds(60)) {
            stored = (try? readBack(url: server.url, stream: "FLEET")) ?? []
            return stored.count >= 5
        }
        let epoch = try String(contentsOfFile: cloud.state + "/queues/hall.sensors/epoch", encoding: .utf8)
            .trimmingCharacters(in: .newlines)
        #expect(epoch.count == 16)
        #expect(stored.map(\.subject) == Array(repeating: "fleet.readings.\(gatewayID).hall%2Esensors", count: 5))
        #expect(stored.map(\.sequence) == [0, 1, 2, 3, 4])
        #expect(stored.allSatisfy { $0.epoch == epoch && $0.headers["Ockam-Device"] == deviceID })
        #expect(stored.allSatisfy { $0.headers["Ockam-Gateway"] == gatewayID && $0.headers["Ockam-Bridge"] == "hall.sensors" })
        #expect(stored.first?.headers["Nats-Msg-Id"] == "\(gatewayID).hall%2Esensors.\(epoch).0")
        #expect(stored.enumerated().allSatisfy { $0.element.payload.hasSuffix("reading \($0.offset)") })  // a BARE string
        // (The stream holds a reading a moment before the ingest service counts it: it counts once its sink returned.)
        var ingestStatus: [String: Any] = [:]
        try await until("five accepted") {
            ingestStatus = try #require((try await cloud.json(.status)["ingest"] as? [[String: Any]])?.first)
            return ingestStatus["accepted"] as? Int == 5
        }
        // The sink's health: connected, five publishes timed, the gateway bridge stored through 4 in its epoch.
        let sink = try #require(ingestStatus["sink"] as? [String: Any])
        #expect(sink["type"] as? String == "jetstream" && sink["connected"] as? Bool == true && sink["published"] as? Int == 5)
        let publish = try #require(sink["publish_us"] as? [String: Any])
        #expect(publish["samples"] as? Int == 5)
        #expect((publish["p50"] as? Int ?? 0) > 0 && (publish["p50"] as? Int ?? 0) <= (publish["max"] as? Int ?? 0))
        let last = try #require((sink["last_stored"] as? [[String: Any]])?.first)
        #expect(last["gateway"] as? String == gatewayID && last["bridge"] as? String == "hall.sensors")
        #expect(last["epoch"] as? String == epoch && last["sequence"] as? Int == 4)
        #expect(await cloud.metrics().contains("ockam_edge_ingest_sink_up{service=\"ingest\"} 1"))
        await device.stop()
        await gateway.stop()
        await cloud.stop()
    }
}
#endif
