import EdgeTestSupport
import Foundation

#if canImport(Glibc)
import Glibc
#endif
import Testing

@Suite("secure channels from the CLI (separate processes)", .serialized)
struct SecureChannelCLITests {
    @Test func endToEndThroughAForwardingNodeAndChannelCommands() async throws {
        let dir = try temporaryDirectory()
        let cloud = try await NodeProcess.start(name: "cloud", stateDir: dir + "/state", extra: ["--vault", dir + "/cloud"])
        let gateway = try await NodeProcess.start(
            name: "gateway", stateDir: dir + "/state",
            extra: ["--vault", dir + "/gateway", "--forward-to", "127.0.0.1:\(cloud.port)"])
        // A fresh client identity, a channel to the cloud through the gateway, and a request through it.
        let sent = try await Binary.run([
            "message", "send",
            "/ip4/127.0.0.1/tcp/\(gateway.port)/ip4/127.0.0.1/tcp/\(cloud.port)/secure/api/service/uppercase", "sealed",
        ])
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stdout == "SEALED\n")

        // A channel owned by the gateway node, used and then deleted through its control socket.
        let state = ["--state-dir", dir + "/state"]
        let created = try await Binary.run(["secure-channel", "create", "--from", "gateway", "--to", "/node/cloud"] + state)
        #expect(created.status == 0, "\(created.stderr)")
        let address = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(address.hasPrefix("/service/") && address.count == "/service/".count + 32)
        let list = try await Binary.run(["secure-channel", "list", "--from", "gateway"] + state)
        #expect(list.stdout.contains(address))
        let cloudID = try await Binary.run(["identity", "show", "--vault", dir + "/cloud"])
        // (the cloud node holds its vault's lock, so reading its identity must fail clearly)
        #expect(cloudID.status == 1)
        #expect(cloudID.stderr.contains("in use by another ockam-edge process"))
        let status = try await Binary.run(["status", "--from", "cloud"] + state)
        #expect(status.stdout.contains("\"role\": \"responder\""))
        let through = try await Binary.run(["message", "send", "--from", "gateway", "\(address)/service/echo", "via channel"] + state)
        #expect(through.status == 0, "\(through.stderr)")
        #expect(through.stdout == "via channel\n")
        // A one-shot `message send --from` through /secure closes the channels it opened for that message.
        for i in 0..<3 {
            let once = try await Binary.run(
                ["message", "send", "--from", "gateway", "/node/cloud/secure/api/service/echo", "once \(i)"] + state)
            #expect(once.status == 0, "\(once.stderr)")
            #expect(once.stdout == "once \(i)\n")
        }
        let remaining = try await Binary.run(["secure-channel", "list", "--from", "gateway", "--json"] + state)
        let channels = try JSONSerialization.jsonObject(with: Data(remaining.stdout.utf8)) as? [[String: Any]]
        #expect(channels?.count == 1, "\(remaining.stdout)")
        #expect(channels?.first?["address"] as? String == address)
        let deleted = try await Binary.run(["secure-channel", "delete", "--from", "gateway", address] + state)
        #expect(deleted.status == 0, "\(deleted.stderr)")
        let after = try await Binary.run(["secure-channel", "show", "--from", "gateway", address] + state)
        #expect(after.status == 1)
        #expect(after.stderr.contains("no secure channel"))
        // The control socket is owner-only.
        var info = stat()
        #expect(stat(dir + "/state/nodes/gateway.sock", &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(await gateway.stop() == 0)
        #expect(await cloud.stop() == 0)
    }

    @Test func anOutOfRangeTimeoutInAControlRequestIsRefusedNotATrap() async throws {
        // A duration travels to the node as whole milliseconds, at most a year (the node refuses more); the CLI
        // refuses text its parser does not accept before it sends anything, and the node keeps serving.
        let dir = try temporaryDirectory()
        let node = try await NodeProcess.start(name: "timeouts", stateDir: dir + "/state", extra: ["--vault", dir + "/v"])
        let state = ["--state-dir", dir + "/state"]
        let created = try await Binary.run(
            ["secure-channel", "create", "--from", "timeouts", "--to", "/node/timeouts", "--timeout", "1e300s"] + state)
        #expect(created.status == 2)
        #expect(created.stderr.contains("invalid duration '1e300s'"), "\(created.stderr)")
        let status = try await Binary.run(["status", "--from", "timeouts"] + state)
        #expect(status.status == 0, "the node is still serving: \(status.stderr)")
        // The CLI's own parsing of the option, for every unit.
        for timeout in ["1e300", "1e300s", "1e18m", "1e16h", "9.3e18ms"] {
            let sent = try await Binary.run(["message", "send", "/node/timeouts/service/echo", "x", "--timeout", timeout] + state)
            #expect(sent.status == 2, "\(timeout): \(sent.stderr)")
            #expect(sent.stderr.contains("invalid duration '\(timeout)'"), "\(sent.stderr)")
        }
        #expect(await node.stop() == 0)
    }

    @Test func trustPolicyRefusalIsReportedToTheClient() async throws {
        let dir = try temporaryDirectory()
        let someoneElse = "I" + String(repeating: "ab", count: 32)
        let node = try await NodeProcess.start(
            name: "strict", stateDir: dir + "/state", extra: ["--vault", dir + "/v", "--trust", someoneElse])
        let refused = try await Binary.run([
            "message", "send", "/ip4/127.0.0.1/tcp/\(node.port)/secure/api/service/echo", "x", "--timeout", "5s",
        ])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("trust policy refused"), "\(refused.stderr)")
        // And the client refusing the node: --trust on the client side.
        let clientRefuses = try await Binary.run([
            "message", "send", "/ip4/127.0.0.1/tcp/\(node.port)/secure/api/service/echo", "x", "--trust", someoneElse,
        ])
        #expect(clientRefuses.status == 1)
        #expect(clientRefuses.stderr.contains("trust policy refused the peer"), "\(clientRefuses.stderr)")
        _ = await node.stop()
    }

    @Test func chachaSuiteBetweenOckamEdgeNodes() async throws {
        let dir = try temporaryDirectory()
        let node = try await NodeProcess.start(
            name: "chacha", stateDir: dir + "/state", extra: ["--vault", dir + "/v", "--cipher", "chacha20-poly1305"])
        let ok = try await Binary.run([
            "message", "send", "/ip4/127.0.0.1/tcp/\(node.port)/secure/api/service/uppercase", "x",
            "--cipher", "chacha20-poly1305",
        ])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout == "X\n")
        // An AES-GCM initiator cannot complete a handshake with a ChaCha listener (distinct protocol names).
        let mismatch = try await Binary.run([
            "message", "send", "/ip4/127.0.0.1/tcp/\(node.port)/secure/api/service/uppercase", "x", "--timeout", "2s",
        ])
        #expect(mismatch.status == 1)
        _ = await node.stop()
    }
}
