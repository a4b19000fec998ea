import EdgeTestSupport
import Foundation
import Testing

/// An `ockam-edge agent` process; the first stdout line says where it listens.
final class AgentProcess: @unchecked Sendable {  // used by one test at a time
    let process = Process()
    let port: Int
    /// The first line: `listening <address>…`.
    let listening: String
    let stderr = Pipe()

    static func start(config: String, dir: String) async throws -> AgentProcess {
        try await blocking { try AgentProcess(config: config, dir: dir) }
    }

    init(config: String, dir: String) throws {
        let path = dir + "/agent-\(UUID().uuidString.prefix(8)).yaml"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        self.path = path
        process.executableURL = Binary.url
        process.arguments = ["agent", "--config", path]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = stderr
        try process.run()
        var line = Data()
        while true {
            let byte = out.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty || byte == Data([0x0a]) { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("listening "), let port = Int(text.split(separator: ":").last ?? "") else {
            terminateAndWait(process)
            throw TestDataError("agent did not start: '\(text)' \(String(decoding: stderr.fileHandleForReading.availableData, as: UTF8.self))")
        }
        self.port = port
        listening = text
    }

    let path: String

    func rewrite(_ config: String) throws { try config.write(toFile: path, atomically: true, encoding: .utf8) }
    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// SIGTERM and wait for the exit, off the concurrency pool (a graceful stop can take seconds).
    func stop() async -> Int32 { await terminateAndWaitOffPool(process) }

    deinit { terminateAndWait(process) }
}

/// A TCP echo server in a python3 child process (the portal's target).
final class EchoServer: @unchecked Sendable {
    private let helper: HelperProcess
    let port: Int
    init() throws {
        helper = try HelperProcess(
            script: """
                import socket
                s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
                print(s.getsockname()[1], flush=True)
                def serve(c):
                    while True:
                        d = c.recv(65536)
                        if not d: break
                        c.sendall(d)
                    c.close()
                while True:
                    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
                """)
        guard let port = Int(helper.firstLine) else { throw TestDataError("echo server did not start") }
        self.port = port
    }
    func stop() { helper.stop() }
}

/// Sends bytes to a TCP port and reads the same number back (bounded by a 10 s receive timeout).
func tcpRoundTrip(port: Int, bytes: [UInt8]) throws -> [UInt8] {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let ok = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard ok == 0 else { throw TestDataError("connect failed") }
    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while received.count < bytes.count {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        received += buffer[..<n]
    }
    return received
}

func httpGet(port: Int, path: String) throws -> String {
    let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let ok = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard ok == 0 else { throw TestDataError("connect failed") }
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        received += buffer[..<n]
    }
    return String(decoding: received, as: UTF8.self)
}

func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Polls `condition` (which may run processes or block on sockets) on a GCD thread, never on the Swift concurrency
/// pool: a blocked pool stalls every in-process test running beside this one.
func waitFor(
    _ what: String, within seconds: Double = 20, _ condition: @escaping @Sendable () throws -> Bool
) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while try await !blocking(condition) {
        guard Date() < deadline else { throw TestDataError("timed out waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(50))
    }
}

@Suite("ockam-edge agent (separate processes)", .serialized)
struct AgentTests {
    @Test func checkConfigAcceptsTheExampleAndNamesFileLineAndKeyOnErrors() async throws {
        let example = TestData.packageRoot.appendingPathComponent("docs/agent.example.yaml").path
        let ok = try await Binary.run(["agent", "--config", example, "--check-config"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains(": ok"))
        let dir = try temporaryDirectory()
        let bad = dir + "/bad.yaml"
        try "node:\n  name: x\ntransports:\n  tcp:\n    listen: [nowhere]\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let failed = try await Binary.run(["agent", "--config", bad, "--check-config"])
        #expect(failed.status == 1)
        #expect(failed.stderr.contains("\(bad):5: transports.tcp.listen: expected host:port"), "\(failed.stderr)")
        // A forwarding rule is checked with the TCP transport's own parser, and named by its line.
        try "forwarding:\n  allow:\n    - 10.0.0.0/8:443\n    - 10.0.0.1/33:443\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let badRule = try await Binary.run(["agent", "--config", bad, "--check-config"])
        #expect(badRule.status == 1)
        #expect(badRule.stderr.contains("\(bad):4: forwarding.allow: invalid forwarding rule \"10.0.0.1/33:443\""), "\(badRule.stderr)")
    }

    /// The agent prints and records an IPv6 listener in brackets, as `node run` does, so `/node/<name>` reaches it.
    @Test func anIPv6ListenerIsPrintedAndRecordedInBrackets() async throws {
        let dir = try temporaryDirectory()
        let agent = try await AgentProcess.start(
            config: "node:\n  name: v6\n  state_dir: \(dir)/state\nvault:\n  path: \(dir)/vault\n"
                + "transports:\n  tcp:\n    listen: \"[::1]:0\"\n",
            dir: dir)
        #expect(agent.listening == "listening [::1]:\(agent.port)", "\(agent.listening)")
        let reply = try await Binary.run(["message", "send", "/node/v6/service/echo", "over v6", "--state-dir", dir + "/state"])
        #expect(reply.status == 0 && reply.stdout == "over v6\n", "\(reply.stderr)")
        #expect(await agent.stop() == 0)
    }

    /// A configuration path that names a directory or a FIFO is an error at once: not an empty configuration (which
    /// trusts everyone), and no blocking open of a FIFO.
    @Test func checkConfigRefusesADirectoryAndAFIFO() async throws {
        let dir = try temporaryDirectory()
        let fifo = dir + "/fifo.yaml"
        #expect(mkfifo(fifo, 0o600) == 0)
        for (path, why) in [(dir, "is a directory"), (fifo, "is a FIFO")] {
            let result = try await Binary.run(["agent", "--config", path, "--check-config"], timeout: 30)
            #expect(result.status != 0)
            #expect(result.stderr.contains("\(path) \(why)"), "\(result.stderr)")
        }
    }

    /// A duration longer than a year (one of 2^63 s once passed the check and trapped when the agent used it) is
    /// refused with the file, line and key; a year is accepted.
    @Test func checkConfigRefusesADurationBeyondAYear() async throws {
        let dir = try temporaryDirectory()
        let path = dir + "/durations.yaml"
        for value in ["9223372036854775807s", "8785h", "99999999999999999999ms"] {
            try "transports:\n  tcp:\n    frame_timeout: \(value)\n".write(toFile: path, atomically: true, encoding: .utf8)
            let refused = try await Binary.run(["agent", "--config", path, "--check-config"])
            #expect(refused.status == 1, "\(value)")
            #expect(
                refused.stderr.contains(
                    "\(path):3: transports.tcp.frame_timeout: expected a duration above 0 and at most a year"),
                "\(value): \(refused.stderr)")
        }
        try "transports:\n  tcp:\n    frame_timeout: 8784h\n".write(toFile: path, atomically: true, encoding: .utf8)
        let year = try await Binary.run(["agent", "--config", path, "--check-config"])
        #expect(year.status == 0, "\(year.stderr)")
    }

    /// Flow control on an agent: a peer's messages are forwarded to the TCP hop each configured uplink starts with (a
    /// bridge's `to`, a relay hub, an inlet's `to`) and to no other destination, which is refused before anything is
    /// dialled and counted.
    @Test func aPeerIsForwardedToTheConfiguredUplinksAndNowhereElse() async throws {
        let dir = try temporaryDirectory()
        let state = dir + "/state"
        var started: [String: NodeProcess] = [:]
        for name in ["ingest-cloud", "relay-hub", "outlet-cloud", "lan-host"] {
            started[name] = try await NodeProcess.start(name: name, stateDir: state)
        }
        let nodes = started
        func port(_ name: String) -> Int { nodes[name]!.port }
        let gateway = try await AgentProcess.start(
            config: """
                node:
                  name: gw
                  state_dir: \(state)
                  log_level: warning
                vault:
                  path: \(dir)/gw-vault
                transports:
                  tcp:
                    listen: 127.0.0.1:0
                bridges:
                  - name: sensors
                    to: /ip4/127.0.0.1/tcp/\(port("ingest-cloud"))/secure/api/service/ingest
                relays:
                  register:
                    - name: gw
                      hub: /ip4/127.0.0.1/tcp/\(port("relay-hub"))/secure/api
                portals:
                  inlets:
                    - listen: 127.0.0.1:\(try freePort())
                      to: /ip4/127.0.0.1/tcp/\(port("outlet-cloud"))/secure/api/service/outlet
                """, dir: dir)
        for name in ["ingest-cloud", "relay-hub", "outlet-cloud"] {
            let reply = try await Binary.run([
                "message", "send", "/ip4/127.0.0.1/tcp/\(gateway.port)/ip4/127.0.0.1/tcp/\(port(name))/service/echo",
                "to \(name)",
            ])
            #expect(reply.stdout == "to \(name)\n", "\(name): \(reply.stderr)")
        }
        let refused = try await Binary.run([
            "message", "send", "/ip4/127.0.0.1/tcp/\(gateway.port)/ip4/127.0.0.1/tcp/\(port("lan-host"))/service/echo", "x",
            "--timeout", "2s",
        ])
        #expect(refused.status == 1, "\(refused.stdout)")
        func status(_ name: String) async throws -> [String: Any] {
            let result = try await Binary.run(["status", "--from", name, "--state-dir", state, "--json"])
            return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        }
        let counters = try await status("gw")["counters"] as? [String: Any]
        #expect(counters?["dropped_forward_not_allowed"] as? Int == 1, "\(String(describing: counters))")
        let lan = try await status("lan-host")["tcp_connections"] as? [Any]
        #expect(lan?.isEmpty == true, "the gateway connected to lan-host: \(String(describing: lan))")
        #expect(await gateway.stop() == 0)
        for node in nodes.values { #expect(await node.stop() == 0) }
    }

    @Test func portalThroughSecureChannelRelayMetricsReloadAndRevocation() async throws {
        let dir = try temporaryDirectory()
        let echo = try await blocking { try EchoServer() }
        let metricsPort = try freePort()
        // The "cloud" agent: relay hub and an outlet to the echo service, metrics on.
        let cloudConfig = """
            node:
              name: cloud
              state_dir: \(dir)/state
              log_level: warning
            vault:
              path: \(dir)/cloud-vault
            transports:
              tcp:
                listen: 127.0.0.1:0
            relays:
              serve: true
            portals:
              outlets:
                - target: 127.0.0.1:\(echo.port)
            metrics:
              listen: 127.0.0.1:\(metricsPort)
            """
        let cloud = try await AgentProcess.start(config: cloudConfig, dir: dir)
        // The "gateway" agent: registers a relay with the cloud, and an inlet to the cloud's outlet.
        let inletPort = try freePort()
        let gatewayConfig = """
            node:
              name: gateway
              state_dir: \(dir)/state
              log_level: warning
            vault:
              path: \(dir)/gateway-vault
            transports:
              tcp:
                listen: 127.0.0.1:0
            relays:
              register:
                - name: gw
                  hub: /ip4/127.0.0.1/tcp/\(cloud.port)/secure/api
            portals:
              inlets:
                - listen: 127.0.0.1:\(inletPort)
                  to: /ip4/127.0.0.1/tcp/\(cloud.port)/secure/api/service/outlet
            """
        let gateway = try await AgentProcess.start(config: gatewayConfig, dir: dir)
        // Flow control: the gateway forwards a peer's messages to the uplink its configuration names (the relay hub and
        // the inlet's route start at the same TCP hop), and nowhere else.
        let status = try await Binary.run(["status", "--from", "gateway", "--state-dir", dir + "/state", "--json"])
        let flow = (try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])?["flow_control"]
        #expect((flow as? [String: Any])?["forward_to"] as? [String] == ["127.0.0.1:\(cloud.port)"], "\(status.stdout)")
        #expect((flow as? [String: Any])?["forwarding"] as? Bool == true)

        // The agent answers the pairing commands too (it owns the vault); this one has no serial link to pair over.
        let devices = try await Binary.run(["devices", "list", "--from", "cloud", "--state-dir", dir + "/state"])
        #expect(devices.status == 0, "\(devices.stderr)")
        #expect(devices.stdout == "[]\n")
        let noLink = try await Binary.run(
            ["pair", "serial", "s", "--from", "cloud", "--name", "d", "--yes", "--state-dir", dir + "/state"])
        #expect(noLink.status == 1)
        #expect(noLink.stderr.contains("no serial link named 's'"), "\(noLink.stderr)")

        // Portal: bytes through the gateway's inlet come back from the echo server behind the cloud's outlet.
        let payload = Array("through the portal".utf8)
        try await waitFor("portal up") { (try? tcpRoundTrip(port: inletPort, bytes: payload)) == payload }

        // Relay: the gateway is reachable through the cloud's forward_to_gw.
        try await waitFor("relay registered") {
            let r = try Binary.runBlocking([
                "message", "send", "/ip4/127.0.0.1/tcp/\(cloud.port)/service/forward_to_gw/service/uppercase", "x",
                "--timeout", "2s",
            ])
            return r.stdout == "X\n"
        }
        let viaRelay = try await Binary.run([
            "message", "send", "/ip4/127.0.0.1/tcp/\(cloud.port)/service/forward_to_gw/secure/api/service/echo", "e2e",
        ])
        #expect(viaRelay.stdout == "e2e\n", "\(viaRelay.stderr)")

        // Metrics reflect reality.
        let metrics = try await blocking { try httpGet(port: metricsPort, path: "/metrics") }
        #expect(metrics.contains("HTTP/1.1 200 OK"))
        #expect(metrics.contains("# TYPE ockam_edge_secure_channels_open gauge"))
        #expect(metrics.contains("ockam_edge_handshakes_total{result=\"ok\"}"))
        let open = metrics.split(separator: "\n").first { $0.hasPrefix("ockam_edge_secure_channels_open ") }
        #expect(open.flatMap { Int($0.split(separator: " ").last ?? "") }.map { $0 >= 2 } == true, "\(String(describing: open))")
        #expect(try await blocking { try httpGet(port: metricsPort, path: "/nope") }.contains("404"))
        try Self.expectDocumented(metrics: metrics, status: try await Binary.run(["status", "--from", "cloud", "--json", "--state-dir", dir + "/state"]).stdout)

        // SIGHUP with an invalid file: the agent keeps running and counts the failure.
        try cloud.rewrite(cloudConfig + "\nbogus: 1\n")
        cloud.signal(SIGHUP)
        try await waitFor("reload failure counted") {
            (try? httpGet(port: metricsPort, path: "/metrics"))?.contains("ockam_edge_config_reload_failures_total 1") == true
        }
        #expect((try? tcpRoundTrip(port: inletPort, bytes: payload)) == payload)

        // SIGHUP that trusts only someone else: existing channels from the gateway are closed (revocation).
        let stranger = "I" + String(repeating: "cd", count: 32)
        try cloud.rewrite(cloudConfig.replacingOccurrences(of: "relays:", with: "trust:\n  identities: [\(stranger)]\nrelays:"))
        cloud.signal(SIGHUP)
        try await waitFor("channels revoked") {
            let text = (try? httpGet(port: metricsPort, path: "/metrics")) ?? ""
            return text.contains("ockam_edge_config_reloads_total 1") && text.contains("ockam_edge_secure_channels_open 0")
        }
        #expect(await gateway.stop() == 0)
        #expect(await cloud.stop() == 0)
        echo.stop()
    }
}

extension AgentTests {
    /// The metrics the agent serves and the counters `status --json` shows are the ones the docs list: every family
    /// in docs/configuration.md's "Metrics" table (and its label values), every counter key in docs/control-socket.md.
    static func expectDocumented(metrics: String, status: String) throws {
        let configuration = try String(
            contentsOf: TestData.packageRoot.appendingPathComponent("docs/configuration.md"), encoding: .utf8)
        let table = configuration.components(separatedBy: "## Metrics").dropFirst().first?
            .components(separatedBy: "\n## ").first ?? ""
        let rows = table.split(separator: "\n").filter { $0.hasPrefix("| `ockam_edge_") }
        let served = metrics.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] }
        #expect(served.count >= 20, "\(metrics)")
        for family in served {
            let row = rows.first { $0.contains("`\(family)`") }
            #expect(row != nil, "\(family) is served but not in docs/configuration.md")
            // Each label value the agent emits for a fixed set (not bridge, service, session names) is documented.
            for line in metrics.split(separator: "\n") where line.hasPrefix(family + "{") {
                let labels = line.drop(while: { $0 != "{" }).dropFirst().prefix(while: { $0 != "}" })
                for pair in labels.split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2, !["bridge", "service", "session"].contains(String(parts[0])) else { continue }
                    let value = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                    #expect(row?.contains(value) == true, "\(family){\(parts[0])=\(value)} is not in docs/configuration.md")
                }
            }
        }
        for row in rows {
            for name in row.split(separator: "`").enumerated().filter({ $0.offset % 2 == 1 }).map(\.element)
            where name.hasPrefix("ockam_edge_") {
                #expect(served.contains(name), "\(name) is in docs/configuration.md but not served")
            }
        }
        let json = try JSONSerialization.jsonObject(with: Data(status.utf8)) as? [String: Any]
        let counters = try #require(json?["counters"] as? [String: Any], "\(status)")
        #expect(counters.count >= 30)
        let controlSocket = try String(
            contentsOf: TestData.packageRoot.appendingPathComponent("docs/control-socket.md"), encoding: .utf8)
        for key in counters.keys {
            #expect(controlSocket.contains(key), "status counter \(key) is not in docs/control-socket.md")
        }
    }
}
