import EdgeAgent
import EdgeConfig
import EdgeControl
import EdgeTestSupport
import Foundation
import Logging
import Testing

/// A runtime started in this process from an `AgentConfig`: its own vault and state directory, a TCP listener on a
/// free loopback port; stopped (vault unlocked, record removed) by ``stop()``.
struct RuntimeUnderTest {
    let agent: Agent
    let state: String

    static func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ockam-edge-runtime-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func config(name: String, state: String, _ change: (inout AgentConfig) -> Void = { _ in }) -> AgentConfig {
        var config = AgentConfig()
        config.node.name = name
        config.node.stateDirectory = state
        config.vault.path = state + "/vault-\(name)"
        config.tcpListen = ["127.0.0.1:0"]
        change(&config)
        return config
    }

    static func launch(_ source: AgentLaunch.Source = .commandLine, createsNamedIdentity: Bool = false) -> AgentLaunch {
        var launch = AgentLaunch(source: source, createsNamedIdentity: createsNamedIdentity)
        launch.logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        return launch
    }

    static func start(
        _ name: String, state: String? = nil, launch: AgentLaunch = launch(), _ change: (inout AgentConfig) -> Void = { _ in }
    ) async throws -> RuntimeUnderTest {
        let state = try state ?? directory()
        let agent = try await Agent.start(config: config(name: name, state: state, change), launch: launch)
        return RuntimeUnderTest(agent: agent, state: state)
    }

    var port: Int { Int(agent.listening.first!.split(separator: ":").last!)! }

    func call(_ command: ControlCommand) async -> ControlResponse { await agent.handle(command) }

    /// The reply's JSON view (what the CLI prints), as an object.
    func json(_ command: ControlCommand) async throws -> [String: Any] {
        guard case .ok(let reply) = await call(command) else {
            Issue.record("\(command.name) failed: \(await call(command))")
            return [:]
        }
        return try #require(try JSONSerialization.jsonObject(with: Data(reply.json.serialized().utf8)) as? [String: Any])
    }

    func reply(_ to: String, _ message: String) async throws -> String? {
        guard case .ok(.messageReply(let text)) = await call(.sendMessage(to: to, message: message, timeout: nil, raw: false)) else {
            return nil
        }
        return text
    }

    func metrics() async -> String {
        guard case .ok(.metrics(let text)) = await call(.metrics) else { return "" }
        return text
    }

    func counter(_ name: String) async throws -> Int? {
        (try await json(.status)["counters"] as? [String: Any])?[name] as? Int
    }

    func stop() async { await agent.shutdown() }
}

/// Polls an asynchronous condition until it holds; the bound guards against hangs (see ``eventually(_:within:_:)``).
func until(_ what: String, within: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + within
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TimedOut(what: what) }
        try await Task.sleep(for: .milliseconds(50))
    }
}

@Suite("runtime (in process)", .serialized)
struct RuntimeTests {
    @Test func twoRuntimesTalkThroughASecureChannelAndReportStatus() async throws {
        let cloud = try await RuntimeUnderTest.start("cloud")
        let gateway = try await RuntimeUnderTest.start("gateway", state: cloud.state)
        #expect(try await gateway.reply("/ip4/127.0.0.1/tcp/\(cloud.port)/secure/api/service/uppercase", "hello") == "HELLO")
        let status = try await cloud.json(.status)
        #expect(status["name"] as? String == "cloud")
        #expect((status["identifier"] as? String)?.hasPrefix("I") == true)
        #expect(status["tcp_listener"] as? String == "127.0.0.1:\(cloud.port)")
        #expect(try await cloud.counter("handshakes_completed") == 1)
        // The channel opened for the one message was closed after it, on both ends.
        try await eventually("the cloud's channel closed") { cloud.agent.channels.channels.isEmpty }
        // `/node/<name>` resolves through the shared state directory's records.
        #expect(try await gateway.reply("/node/cloud/service/echo", "x") == "x")
        await gateway.stop()
        await cloud.stop()
    }

    @Test func aFileRuntimeCreatesItsNamedIdentityACommandLineOneRefuses() async throws {
        let state = try RuntimeUnderTest.directory()
        await #expect(throws: (any Error).self) {
            _ = try await RuntimeUnderTest.start("n", state: state) { $0.identity = "sensor-gw" }
        }
        let file = try await RuntimeUnderTest.start(
            "n", state: state, launch: RuntimeUnderTest.launch(.file("agent.yaml"), createsNamedIdentity: true)
        ) { $0.identity = "sensor-gw" }
        let identifier = try await file.json(.status)["identifier"] as? String
        await file.stop()
        // Now it exists: the command-line runtime runs as the same identity.
        let cli = try await RuntimeUnderTest.start("n", state: state) { $0.identity = "sensor-gw" }
        #expect(try await cli.json(.status)["identifier"] as? String == identifier)
        await cli.stop()
    }

    @Test func aStartThatFailsReleasesTheVaultTheRecordAndThePort() async throws {
        let first = try await RuntimeUnderTest.start("a")
        let taken = "127.0.0.1:\(first.port)"
        await #expect {
            _ = try await RuntimeUnderTest.start("b", state: first.state) { $0.tcpListen = [taken] }
        } throws: { error in
            "\(error)".contains("cannot listen on \(taken)")
        }
        // The failed start left nothing behind: the same vault and name start at once.
        let again = try await RuntimeUnderTest.start("b", state: first.state)
        #expect(again.agent.listening.count == 1)
        await again.stop()
        await first.stop()
    }

    @Test func aSecondRuntimeUnderARunningName() async throws {
        let first = try await RuntimeUnderTest.start("same")
        // Same name, other vault: refused before anything of the running one is touched.
        await #expect {
            _ = try await RuntimeUnderTest.start("same", state: first.state) { $0.vault.path = first.state + "/other-vault" }
        } throws: { error in
            "\(error)".contains("a node named 'same' is already running")
        }
        #expect(try await first.json(.status)["name"] as? String == "same")
        await first.stop()
    }

    @Test func forwardingFollowsTheConfiguredUplinksAndAllowList() async throws {
        let cloud = try await RuntimeUnderTest.start("cloud")
        let other = try await RuntimeUnderTest.start("other", state: cloud.state)
        // The gateway's bridge names the cloud as its uplink: links may be forwarded there, and nowhere else.
        let gateway = try await RuntimeUnderTest.start("gateway", state: cloud.state) {
            $0.bridges = [AgentConfig.Bridge(name: "readings", to: "/ip4/127.0.0.1/tcp/\(cloud.port)/secure/api/service/ingest")]
        }
        let sender = try await RuntimeUnderTest.start("sender", state: cloud.state)
        let via = "/ip4/127.0.0.1/tcp/\(gateway.port)/ip4/127.0.0.1/tcp"
        #expect(try await sender.reply("\(via)/\(cloud.port)/service/uppercase", "up") == "UP")
        let refused = await sender.call(
            .sendMessage(to: "\(via)/\(other.port)/service/uppercase", message: "x", timeout: .milliseconds(500), raw: false))
        guard case .error = refused else {
            Issue.record("forwarded to a destination nobody allowed: \(refused)")
            return
        }
        #expect(try await gateway.counter("dropped_forward_not_allowed") == 1)
        let flow = try await gateway.json(.status)["flow_control"] as? [String: Any]
        #expect(flow?["forward_to"] as? [String] == ["127.0.0.1:\(cloud.port)"])
        for runtime in [sender, gateway, other, cloud] { await runtime.stop() }
    }

    /// A bridge with two ingest services skips the one it cannot reach, and its acknowledgements open the window.
    @Test func aBridgeFailsOverToItsNextIngestServiceAndPipelines() async throws {
        let scratch = try RuntimeUnderTest.directory()
        let ingest = try AgentConfig.parse("ingest:\n  - output: \(scratch)/ingest.jsonl\n", file: "cloud.yaml").ingest
        let cloud = try await RuntimeUnderTest.start("cloud", state: scratch) { $0.ingest = ingest }
        let gateway = try await RuntimeUnderTest.start("gateway", state: cloud.state) {
            var bridge = AgentConfig.Bridge(
                name: "readings", to: "/ip4/127.0.0.1/tcp/1/secure/api/service/ingest",  // nothing listens on port 1
                "/ip4/127.0.0.1/tcp/\(cloud.port)/secure/api/service/ingest")
            bridge.window = 16
            $0.bridges = [bridge]
        }
        let device = try await RuntimeUnderTest.start("device", state: cloud.state)
        for n in 0..<3 {
            let reply = try await device.reply("/ip4/127.0.0.1/tcp/\(gateway.port)/secure/api/service/readings", "r\(n)")
            #expect(reply == "ok \(n)")
        }
        func bridgeStatus() async throws -> [String: Any] {
            try #require((try await gateway.json(.status)["bridges"] as? [[String: Any]])?.first)
        }
        try await until("three delivered") { try await bridgeStatus()["delivered"] as? Int == 3 }
        let status = try await bridgeStatus()
        #expect(status["window"] as? Int == 16)  // the ingest service advertised a larger one
        #expect(status["in_flight"] as? Int == 0)
        #expect((try await cloud.json(.status)["ingest"] as? [[String: Any]])?.first?["accepted"] as? Int == 3)
        for runtime in [device, gateway, cloud] { await runtime.stop() }
    }

    @Test func reloadReReadsTheFileAndACommandLineRuntimeHasNone() async throws {
        let state = try RuntimeUnderTest.directory()
        let path = state + "/agent.yaml"
        let yaml = { (extra: String) in
            "node:\n  name: reloading\n  state_dir: \(state)\nvault:\n  path: \(state)/vault\ntransports:\n  tcp:\n    listen: [\"127.0.0.1:0\"]\n"
                + extra
        }
        try yaml("").write(toFile: path, atomically: true, encoding: .utf8)
        let config = try AgentConfigFile.load(path)
        var launch = AgentLaunch.file(path)
        launch.logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let agent = try await Agent.start(config: config, launch: launch)
        let runtime = RuntimeUnderTest(agent: agent, state: state)
        try yaml("forwarding:\n  allow: [\"10.0.0.0/8:443\"]\n").write(toFile: path, atomically: true, encoding: .utf8)
        await agent.reload()
        #expect((try await runtime.json(.status)["flow_control"] as? [String: Any])?["forward_to"] as? [String] == ["10.0.0.0/8:443"])
        // An invalid file is refused and the running configuration kept.
        try yaml("forwarding:\n  allow: [\"010.0.0.1:80\"]\n").write(toFile: path, atomically: true, encoding: .utf8)
        await agent.reload()
        let metrics = await runtime.metrics()
        #expect(metrics.contains("ockam_edge_config_reloads_total 1"), "\(metrics)")
        #expect(metrics.contains("ockam_edge_config_reload_failures_total 1"), "\(metrics)")
        #expect((try await runtime.json(.status)["flow_control"] as? [String: Any])?["forward_to"] as? [String] == ["10.0.0.0/8:443"])
        await runtime.stop()

        let cli = try await RuntimeUnderTest.start("flags")
        await cli.agent.reload()
        let cliMetrics = await cli.metrics()
        #expect(cliMetrics.contains("ockam_edge_config_reloads_total 0"), "\(cliMetrics)")
        await cli.stop()
    }

    @Test func aRelayHubThatRestartsIsRegisteredWithAgainAndTrafficResumes() async throws {
        let state = try RuntimeUnderTest.directory()
        var hub = try await RuntimeUnderTest.start("hub", state: state) { $0.relayService = true }
        let hubPort = hub.port
        let gateway = try await RuntimeUnderTest.start("gateway", state: state) {
            $0.relays = [AgentConfig.Relay(name: "gw", hub: "/ip4/127.0.0.1/tcp/\(hubPort)/secure/api")]
            $0.sessions.pingInterval = .milliseconds(300)
            $0.sessions.pingTimeout = .seconds(2)
            $0.sessions.failuresBeforeReplace = 2
            $0.sessions.maxBackoff = .seconds(1)
        }
        let client = try await RuntimeUnderTest.start("client", state: state)
        func throughTheRelay() async -> Bool {
            let reply = await client.call(
                .sendMessage(
                    to: "/ip4/127.0.0.1/tcp/\(hubPort)/service/forward_to_gw/service/uppercase", message: "x",
                    timeout: .seconds(2), raw: false))
            return reply == .ok(.messageReply("X"))
        }
        try await until("relay registered") { await throughTheRelay() }
        // The hub restarts (same port, same identity, empty relay table): the gateway notices and registers again.
        await hub.stop()
        hub = try await RuntimeUnderTest.start("hub", state: state) {
            $0.relayService = true
            $0.tcpListen = ["127.0.0.1:\(hubPort)"]
        }
        try await until("relay registered again after the hub restart") { await throughTheRelay() }
        // End to end through the relay: a secure channel to the gateway's own listener.
        #expect(try await client.reply("/ip4/127.0.0.1/tcp/\(hubPort)/service/forward_to_gw/secure/api/service/echo", "e2e") == "e2e")
        for runtime in [client, gateway, hub] { await runtime.stop() }
    }
}
