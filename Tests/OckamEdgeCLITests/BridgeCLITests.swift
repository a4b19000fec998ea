import EdgeTestSupport
import Foundation
import Testing

/// A TCP proxy in a python3 child: the gateway's uplink, which the test cuts (kills) and restores (restarts on the
/// same port) to simulate a network outage while the cloud stays up.
final class TCPProxy: @unchecked Sendable {
    private let helper: HelperProcess
    init(listen: Int, target: Int) throws {
        helper = try HelperProcess(packageScript: "tcp-proxy.py", arguments: [String(listen), String(target)])
        guard helper.firstLine == "ready" else { throw TestDataError("proxy did not start") }
    }
    /// Kills the proxy: every connection through it breaks at once, like a pulled uplink cable.
    func cut() { helper.stop() }
}

@Suite("bridge: sensor → serial → gateway agent → TCP → cloud (separate processes)", .serialized)
struct BridgeCLITests {
    /// How long the uplink stays cut: 3 s in the fast suite; a full minute with OCKAM_EDGE_UPLINK_CUT_SECONDS=60.
    static var cutSeconds: Double {
        ProcessInfo.processInfo.environment["OCKAM_EDGE_UPLINK_CUT_SECONDS"].flatMap(Double.init) ?? 3
    }

    @Test func uplinkCutWhileASensorSendsEveryMessageArrivesOnceInOrder() async throws {
        let dir = try temporaryDirectory()
        let state = dir + "/state"
        let modem = try await blocking { try NullModem(directory: dir) }
        let cloudPort = try freePort()
        let uplinkPort = try freePort()
        let ingestFile = dir + "/ingest.jsonl"
        let cloud = try await AgentProcess.start(
            config: """
                node:
                  name: cloud
                  state_dir: \(state)
                  log_level: warning
                vault:
                  path: \(dir)/cloud-vault
                transports:
                  tcp:
                    listen: 127.0.0.1:\(cloudPort)
                ingest:
                  - address: ingest
                    output: \(ingestFile)
                """, dir: dir)
        var proxy = try await blocking { try TCPProxy(listen: uplinkPort, target: cloudPort) }
        let gateway = try await AgentProcess.start(
            config: """
                node:
                  name: gateway
                  state_dir: \(state)
                  log_level: warning
                vault:
                  path: \(dir)/gateway-vault
                transports:
                  tcp:
                    listen: 127.0.0.1:0
                  serial:
                    - path: \(dir)/ttyA
                      mode: listen
                      name: sensor1
                bridges:
                  - name: sensors
                    to: /ip4/127.0.0.1/tcp/\(uplinkPort)/secure/api/service/ingest
                    ack_timeout: 3s
                """, dir: dir)
        let sensor = try await NodeProcess.start(
            name: "sensor", stateDir: state, extra: ["--serial", dir + "/ttyB,mode=connect,name=uplink"])
        try await waitForSerialLinks(["gateway", "sensor"], stateDir: state)

        @Sendable func ingested() -> [String] {
            ((try? String(contentsOfFile: ingestFile, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }
        // The uplink and its secure channel are up before the run starts (a few readings went through), so the cut
        // below falls in the middle of the sending even on a loaded machine, where setting them up can take longer
        // than the whole run (all readings could then be delivered before the cut).
        let warmUp = 3
        let warm = try await Binary.run(
            [
                "message", "send", "--from", "sensor", "/serial/uplink/service/sensors", "warm-up {n}", "--count",
                String(warmUp), "--state-dir", state,
            ])
        #expect(warm.status == 0, "\(warm.stderr)")
        try await waitFor("warm-up readings at the cloud") { ingested().count >= warmUp }
        // 10 readings a second for the whole outage and a few seconds either side of it.
        let total = max(60, Int((Self.cutSeconds + 4) * 10))
        let sending = Task {
            try await Binary.run(
                [
                    "message", "send", "--from", "sensor", "/serial/uplink/service/sensors", "reading {n}", "--count",
                    String(total), "--interval", "100ms", "--state-dir", state,
                ], timeout: Self.cutSeconds + 120)
        }
        try await waitFor("first readings at the cloud") { ingested().count >= warmUp + 5 }
        proxy.cut()
        try await Task.sleep(for: .seconds(Self.cutSeconds))  // the outage itself, not a wait for a condition
        let duringCut = ingested().count
        proxy = try await blocking { try TCPProxy(listen: uplinkPort, target: cloudPort) }

        let sent = try await sending.value
        #expect(sent.status == 0, "\(sent.stderr)")
        // Every message was accepted by the gateway while the uplink was down or up…
        let replies = sent.stdout.split(separator: "\n")
        #expect(replies.count == total)
        #expect(replies.allSatisfy { $0.hasPrefix("ok ") }, "\(replies)")
        // …and every one reaches the cloud once, in order, after recovery.
        try await waitFor("all readings at the cloud", within: 120) { ingested().count >= warmUp + total }
        let lines = ingested()
        #expect(lines.count == warmUp + total)
        #expect(
            duringCut < warmUp + total,
            "the cut did not hold anything back (\(duringCut) of \(warmUp + total) arrived during it)")
        let texts = lines.map { line -> String in
            guard let field = line.components(separatedBy: "\"text\":\"").dropFirst().first else { return "?" }
            return String(field.prefix { $0 != "\"" })
        }
        #expect(texts == (0..<warmUp).map { "warm-up \($0)" } + (0..<total).map { "reading \($0)" })
        #expect(lines.allSatisfy { $0.contains("\"device\":\"serial:sensor1\"") && $0.contains("\"bridge\":\"sensors\"") })

        // Status says the same once the last acknowledgement is back at the gateway.
        try await waitFor("the gateway reports every message delivered") {
            let status = try Binary.runBlocking(["status", "--from", "gateway", "--json", "--state-dir", state])
            return status.stdout.contains("\"delivered\": \(warmUp + total)") && status.stdout.contains("\"queued\": 0")
        }
        let status = try await Binary.run(["status", "--from", "gateway", "--json", "--state-dir", state])
        #expect(status.stdout.contains("\"name\": \"sensor1\""), "\(status.stdout)")
        #expect(status.stdout.contains("\"dropped_oldest\": 0"), "\(status.stdout)")

        #expect(await sensor.stop() == 0)
        #expect(await gateway.stop() == 0)
        #expect(await cloud.stop() == 0)
        proxy.cut()
        modem.stop()
    }
}
