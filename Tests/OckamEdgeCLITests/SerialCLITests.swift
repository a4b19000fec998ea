import EdgeTestSupport
import Foundation
import Testing

/// Two pseudo-terminals whose masters a python3 child cross-connects: a null-modem cable between `<dir>/ttyA`
/// and `<dir>/ttyB`, so two ockam-edge processes can each open "their" serial port.
final class NullModem: @unchecked Sendable {
    private let helper: HelperProcess
    init(directory: String) throws {
        helper = try HelperProcess(packageScript: "nullmodem.py", arguments: [directory])
        guard helper.firstLine == "ready" else { throw TestDataError("null modem did not start") }
    }
    func stop() { helper.stop() }
}

/// Waits until every serial port of a running node (or agent) reports a live link (`status --json`), so a test does
/// not race the link's HELLO exchange, which takes longer on a loaded machine. On failure it prints each node's
/// status and log and who holds locks on the test's ttys (an orphaned node from an aborted run that holds a flock on
/// a pty whose number was reused makes a port look "in use by another process").
func waitForSerialLinks(_ nodes: [String], stateDir: String) async throws {
    for node in nodes {
        do {
            try await waitFor("serial link up on \(node)", within: 60) {
                let status = try Binary.runBlocking(["status", "--from", node, "--json", "--state-dir", stateDir])
                return status.stdout.contains("\"phase\": \"linked\"") && !status.stdout.contains("\"phase\": \"open\"")
                    && !status.stdout.contains("\"phase\": \"waiting_for_device\"")
            }
        } catch {
            for other in nodes {
                let status = try? Binary.runBlocking(["status", "--from", other, "--json", "--state-dir", stateDir])
                print("status of \(other) after the wait:\n\(status?.stdout ?? "?")\(status?.stderr ?? "")")
                let log = (try? String(contentsOfFile: stateDir + "/\(other).log", encoding: .utf8)) ?? "(no log)"
                print("log of \(other):\n\(log)")
            }
            let probe = try? Binary.runShell(
                "for t in \(stateDir)/../ttyA \(stateDir)/../ttyB; do i=$(stat -L -c %i $t); echo \"$t -> $(readlink $t) inode $i\"; "
                    + "grep \":$i \" /proc/locks | while read -r n kind adv mode pid rest; do "
                    + "echo \"  $n $kind $mode pid $pid: $(tr '\\0' ' ' < /proc/$pid/cmdline | cut -c1-150)\"; done; done")
            print("locks on the ttys:\n\(probe ?? "?")")
            throw error
        }
    }
}

@Suite("serial link between two ockam-edge processes", .serialized)
struct SerialCLITests {
    @Test func messagesAndASecureChannelOverASerialLink() async throws {
        let dir = try temporaryDirectory()
        let modem = try await blocking { try NullModem(directory: dir) }
        let state = dir + "/state"
        let cloud = try await NodeProcess.start(name: "cloud", stateDir: state)
        let gateway = try await NodeProcess.start(
            name: "gw", stateDir: state,
            extra: ["--serial", dir + "/ttyA,mode=listen,name=device", "--forward-to", "127.0.0.1:\(cloud.port)"])
        let sensor = try await NodeProcess.start(
            name: "sensor", stateDir: state, extra: ["--serial", dir + "/ttyB,mode=connect,name=uplink"])
        try await waitForSerialLinks(["gw", "sensor"], stateDir: state)
        // The sensor reaches the gateway's services over the serial line…
        let plain = try await Binary.run([
            "message", "send", "--from", "sensor", "/serial/uplink/service/uppercase", "over serial", "--state-dir", state,
        ])
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(plain.stdout == "OVER SERIAL\n")
        // …and through an end-to-end secure channel carried by it.
        let sealed = try await Binary.run([
            "message", "send", "--from", "sensor", "/serial/uplink/secure/api/service/echo", "sealed over serial",
            "--state-dir", state,
        ])
        #expect(sealed.status == 0, "\(sealed.stderr)")
        #expect(sealed.stdout == "sealed over serial\n")
        // …a TCP service past the gateway, where the gateway may forward (docs/serial-framing.md §7: the device's
        // onward route is [64#uplink, 1#127.0.0.1:<port>, 0#uppercase]), end to end through a channel too…
        let past = try await Binary.run([
            "message", "send", "--from", "sensor", "/serial/uplink/ip4/127.0.0.1/tcp/\(cloud.port)/service/uppercase",
            "past the gateway", "--state-dir", state,
        ])
        #expect(past.status == 0 && past.stdout == "PAST THE GATEWAY\n", "\(past.stderr)")
        let pastSealed = try await Binary.run([
            "message", "send", "--from", "sensor",
            "/serial/uplink/ip4/127.0.0.1/tcp/\(cloud.port)/secure/api/service/echo", "sealed past the gateway",
            "--state-dir", state,
        ])
        #expect(pastSealed.status == 0 && pastSealed.stdout == "sealed past the gateway\n", "\(pastSealed.stderr)")
        // …but nowhere else: a hop to a destination the gateway may not forward to is dropped there and counted.
        let refused = try await Binary.run([
            "message", "send", "--from", "sensor", "/serial/uplink/ip4/127.0.0.1/tcp/\(gateway.port)/service/echo", "x",
            "--timeout", "2s", "--state-dir", state,
        ])
        #expect(refused.status == 1, "\(refused.stdout) \(refused.stderr)")
        // The gateway reaches the sensor the other way round.
        let back = try await Binary.run([
            "message", "send", "--from", "gw", "/serial/device/service/uppercase", "downlink", "--state-dir", state,
        ])
        #expect(back.stdout == "DOWNLINK\n", "\(back.stderr)")
        // `status` shows the port, its link phase and counters, and the listener's half-open handshakes.
        let status = try await Binary.run(["status", "--from", "gw", "--json", "--state-dir", state])
        #expect(status.status == 0, "\(status.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        let ports = json?["serial_ports"] as? [[String: Any]]
        #expect(ports?.count == 1, "\(status.stdout)")
        #expect(ports?.first?["name"] as? String == "device")
        #expect(ports?.first?["phase"] as? String == "linked")
        let counters = ports?.first?["counters"] as? [String: Any]
        #expect((counters?["messages_in"] as? Int ?? 0) >= 2, "\(status.stdout)")
        #expect((counters?["link_ups"] as? Int ?? 0) >= 1)
        #expect((counters?["dropped"] as? [String: Int])?["crc_mismatch"] != nil)
        // docs/serial-framing.md §9 shows a port's status object: the same keys, counters and drop reasons.
        let doc = try String(
            contentsOf: TestData.packageRoot.appendingPathComponent("docs/serial-framing.md"), encoding: .utf8)
        let block = doc.components(separatedBy: "```json\n").dropFirst().first?.components(separatedBy: "```").first
        let documented = try JSONSerialization.jsonObject(
            with: Data(block.map { $0.replacingOccurrences(of: "…", with: "") }?.utf8 ?? "".utf8)) as? [String: Any]
        let port = try #require(ports?.first)
        #expect(Set(documented?.keys.map { $0 } ?? []) == Set(port.keys), "\(String(describing: documented))")
        let documentedCounters = documented?["counters"] as? [String: Any]
        #expect(Set(documentedCounters?.keys.map { $0 } ?? []) == Set(counters?.keys.map { $0 } ?? []))
        #expect(
            Set((documentedCounters?["dropped"] as? [String: Int])?.keys.map { $0 } ?? [])
                == Set((counters?["dropped"] as? [String: Int])?.keys.map { $0 } ?? []))
        #expect(json?["half_open_handshakes"] as? [String: Int] == ["api": 0])
        #expect((json?["counters"] as? [String: Any])?["dropped_forward_not_allowed"] as? Int == 1, "\(status.stdout)")
        #expect(await sensor.stop() == 0)
        #expect(await gateway.stop() == 0)
        #expect(await cloud.stop() == 0)
        modem.stop()
    }

    @Test func aDeviceOpenedWithTheLastFreeDescriptorIsRetriedNotATrap() async throws {
        // The transport handed ttys to NIOPipeBootstrap.takingOwnershipOfDescriptor(inputOutput:), which duplicates
        // the descriptor with `try!`: when opening a (re)plugged device took the node's last free descriptor number
        // (peers' connections count towards the limit), the duplicate failed with EMFILE and the node trapped. Here
        // the node's limit is lowered from outside so that exactly one number is left when the device appears.
        let dir = try temporaryDirectory()
        let modem = try await blocking { try NullModem(directory: dir) }
        let state = dir + "/state"
        let node = try await NodeProcess.start(
            name: "fdlimit", stateDir: state, extra: ["--serial", dir + "/port,mode=listen,name=device"])
        let pid = node.process.processIdentifier
        var limits = rlimit()  // the node's: inherited from this process
        #expect(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limits) == 0)
        let original = limits.rlim_cur
        /// Sets the node's soft limit on descriptors (util-linux's prlimit).
        @Sendable func setLimit(_ soft: rlim_t) {
            _ = try? Binary.runShell("prlimit --pid \(pid) --nofile=\(soft == rlim_t.max ? "unlimited" : "\(soft)"):")
        }
        /// Leaves the node exactly one free descriptor number (an idle node opens none meanwhile; if it did, this is
        /// simply done again before its next attempt).
        @Sendable func leaveOneDescriptor() {
            let used = Set(
                ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap { Int($0) })
            setLimit(rlim_t((0...).first { !used.contains($0) }! + 1))
        }
        leaveOneDescriptor()
        #expect(symlink(dir + "/ttyA", dir + "/port") == 0)  // the device appears
        let log: @Sendable () -> String = { (try? String(contentsOfFile: node.logPath, encoding: .utf8)) ?? "" }
        try await waitFor("the node's attempt to use the device", within: 60) {
            if log().contains("dup") || node.process.hasExited { return true }
            leaveOneDescriptor()
            return false
        }
        try #require(!node.process.hasExited, "\(log())")
        #expect(log().contains("cannot attach the port to the event loop: dup: Too many open files"), "\(log())")
        // With descriptors to spare again, the next attempt opens the port.
        setLimit(original)
        try await waitFor("the port open", within: 60) {
            let status = try Binary.runBlocking(["status", "--from", "fdlimit", "--json", "--state-dir", state])
            return status.stdout.contains("\"phase\": \"open\"")
        }
        #expect(await node.stop() == 0)
        modem.stop()
    }

    @Test func serialListRuns() async throws {
        let list = try await Binary.run(["serial", "list", "--json"])
        #expect(list.status == 0)
        #expect(list.stdout.hasPrefix("["))
    }
}
