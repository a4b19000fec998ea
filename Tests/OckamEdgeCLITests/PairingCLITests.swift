import EdgeTestSupport
import Foundation
import Testing

/// An `ockam-edge pair …` process whose stdout is read line by line and whose stdin the test writes (the person
/// typing the code the device shows).
final class InteractiveProcess: @unchecked Sendable {  // used by one test at a time
    private let process = Process()
    private let stdin = Pipe()
    private let stdout = Pipe()
    private let stderr = Pipe()
    private(set) var lines: [String] = []

    init(_ arguments: [String]) throws {
        process.executableURL = Binary.url
        process.arguments = arguments
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
    }

    /// Reads stdout lines until one starts with `prefix`; returns it (nil at EOF).
    func line(startingWith prefix: String) -> String? {
        var current = Data()
        while true {
            let byte = stdout.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty { return nil }
            if byte == Data([0x0a]) {
                let text = String(decoding: current, as: UTF8.self)
                lines.append(text)
                if text.hasPrefix(prefix) { return text }
                current = Data()
            } else {
                current.append(byte)
            }
        }
    }

    func type(_ text: String) throws { try stdin.fileHandleForWriting.write(contentsOf: Data((text + "\n").utf8)) }

    /// Waits for the exit (bounded: a hung child is killed, and the test fails instead of hanging).
    func finish() -> (status: Int32, stdout: String, stderr: String) {
        try? stdin.fileHandleForWriting.close()
        let rest = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        let status = terminateAndWait(process, grace: 30)
        return (status, lines.joined(separator: "\n") + "\n" + String(decoding: rest, as: UTF8.self), String(decoding: errors, as: UTF8.self))
    }

    deinit { terminateAndWait(process, grace: 1) }
}

private func json(_ text: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(text.utf8)) }
private func objects(_ text: String) -> [[String: Any]] { (json(text) as? [[String: Any]]) ?? [] }

@Suite("pairing a serial sensor (separate processes)", .serialized)
struct PairingCLITests {
    @Test func pairWithTheDeviceCodeUnpairClosesItsChannelsAndAWrongCodeIsRefused() async throws {
        let dir = try temporaryDirectory()
        let modem = try await blocking { try NullModem(directory: dir) }
        defer { modem.stop() }
        let state = dir + "/state"
        let s = ["--state-dir", state]
        // The gateway trusts only someone else: the sensor gets in by pairing, and only while paired.
        let someoneElse = "I" + String(repeating: "ab", count: 32)
        let gateway = try await NodeProcess.start(
            name: "gw", stateDir: state, extra: ["--serial", dir + "/ttyA,mode=listen,name=sensor1", "--trust", someoneElse])
        let sensor = try await NodeProcess.start(
            name: "sensor", stateDir: state, extra: ["--serial", dir + "/ttyB,mode=connect,name=uplink"])
        try await waitForSerialLinks(["gw", "sensor"], stateDir: state)
        let sensorStatus = try await Binary.run(["status", "--from", "sensor"] + s)
        let sensorID = try #require((json(sensorStatus.stdout) as? [String: Any])?["identifier"] as? String)
        let sealed = ["message", "send", "--from", "sensor", "/serial/uplink/secure/api/service/echo", "hi", "--timeout", "2s"] + s

        let before = try await Binary.run(sealed)
        #expect(before.status == 1, "the gateway must refuse the unpaired sensor: \(before.stdout)")
        // Said as such, not as a missing reply: the gateway closed the new channel because it does not trust the sensor.
        #expect(before.stderr.contains("closed the secure channel right after the handshake: its trust policy refused this node's identity (\(sensorID))"), "\(before.stderr)")

        // 1. Pair, typing the code the sensor shows (its responder channel in `secure-channel list --json`).
        let pair = try InteractiveProcess(
            ["pair", "serial", "sensor1", "--from", "gw", "--name", "thermo-1", "--attribute", "room=lab", "--expect-code", "-"] + s)
        let printedLine = try await blocking { pair.line(startingWith: "verification code ") }
        let printed = try #require(printedLine)
        let sensorChannels = objects(try await Binary.run(["secure-channel", "list", "--from", "sensor", "--json"] + s).stdout)
        let shown = try #require(sensorChannels.first { $0["role"] as? String == "responder" }?["verification_code"] as? String)
        #expect(printed == "verification code \(shown)")
        try pair.type(shown.replacingOccurrences(of: " ", with: ""))
        let paired = try await blocking { pair.finish() }
        #expect(paired.status == 0, "\(paired.stderr)")
        #expect(paired.stdout.contains("device \(sensorID)"))
        #expect(paired.stdout.contains("paired thermo-1"))

        let devices = objects(try await Binary.run(["devices", "list", "--from", "gw", "--json"] + s).stdout)
        #expect(devices.count == 1)
        #expect(devices.first?["name"] as? String == "thermo-1")
        #expect(devices.first?["identifier"] as? String == sensorID)
        #expect((devices.first?["attributes"] as? [String: String]) == ["room": "lab"])
        #expect(devices.first?["transport"] as? String == "serial:sensor1")

        // Paired: the gateway's listener now admits the sensor.
        let after = try await Binary.run(sealed)
        #expect(after.status == 0, "\(after.stderr)")
        #expect(after.stdout == "hi\n")

        // The same device again: refused before any question, since it is already paired.
        let again = try await Binary.run(["pair", "serial", "sensor1", "--from", "gw", "--name", "other", "--yes"] + s)
        #expect(again.status == 1)
        #expect(again.stderr.contains("already paired as 'thermo-1'"), "\(again.stderr)")
        // Links the node does not have.
        let noLink = try await Binary.run(["pair", "serial", "nosuch", "--from", "gw", "--name", "x", "--yes"] + s)
        #expect(noLink.status == 1)
        #expect(noLink.stderr == "error: no serial link named 'nosuch' on this node (configured: sensor1)\n", "\(noLink.stderr)")
        let noBLE = try await Binary.run(["pair", "ble", "AA:BB:CC:DD:EE:FF,psm=0x81", "--from", "gw", "--name", "x"] + s)
        #expect(noBLE.status == 1)
        #expect(noBLE.stderr.contains("no BLE transport"))

        // 2. Unpair: the record goes and every channel with the sensor is closed before the command returns.
        let gwChannels = try await Binary.run(["secure-channel", "list", "--from", "gw", "--json"] + s)
        let open = objects(gwChannels.stdout).filter { $0["peer"] as? String == sensorID }
        // (The pairing channel; the sensor's `message send --from` closed the channel it opened once answered.)
        #expect(open.count >= 1, "the pairing channel: \(gwChannels.stdout)")
        let unpaired = try await Binary.run(["unpair", "thermo-1", "--from", "gw", "--json"] + s)
        #expect(unpaired.status == 0, "\(unpaired.stderr)")
        #expect(((json(unpaired.stdout) as? [String: Any])?["closed_channels"] as? [Any])?.count == open.count)
        let afterUnpair = objects(try await Binary.run(["secure-channel", "list", "--from", "gw", "--json"] + s).stdout)
        #expect(!afterUnpair.contains { $0["peer"] as? String == sensorID })
        #expect(objects(try await Binary.run(["devices", "list", "--from", "gw", "--json"] + s).stdout).isEmpty)
        let revoked = try await Binary.run(sealed)
        #expect(revoked.status == 1, "the gateway must refuse the unpaired sensor again: \(revoked.stdout)")
        let missing = try await Binary.run(["unpair", "thermo-1", "--from", "gw"] + s)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no paired device named 'thermo-1'"))

        // 3. A code that differs from the handshake's: refused, nothing stored, the pairing channel closed.
        let wrong = try InteractiveProcess(
            ["pair", "serial", "sensor1", "--from", "gw", "--name", "intruder", "--expect-code", "-"] + s)
        let wrongOutput = try await blocking { wrong.line(startingWith: "verification code ") }
        let wrongLine = try #require(wrongOutput)
        let wrongChannel = try #require(wrong.lines.first { $0.hasPrefix("channel ") }).dropFirst("channel ".count)
        let code = Int(wrongLine.dropFirst("verification code ".count).replacingOccurrences(of: " ", with: ""))!
        try wrong.type(String(format: "%06d", (code + 1) % 1_000_000))
        let refused = try await blocking { wrong.finish() }
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("verification code mismatch"), "\(refused.stderr)")
        #expect(objects(try await Binary.run(["devices", "list", "--from", "gw", "--json"] + s).stdout).isEmpty)
        let gwAfterRefusal = try await Binary.run(["secure-channel", "list", "--from", "gw", "--json"] + s)
        #expect(!gwAfterRefusal.stdout.contains(String(wrongChannel)))
        #expect(try await Binary.run(sealed).status == 1, "a refused pairing must not admit the sensor")
        // Answering anything but y to "Does the device show …? [y/N]" refuses the same way.
        let asked = try InteractiveProcess(["pair", "serial", "sensor1", "--from", "gw", "--name", "intruder"] + s)
        _ = try await blocking { asked.line(startingWith: "verification code ") }
        try asked.type("n")
        let declined = try await blocking { asked.finish() }
        #expect(declined.status == 1)
        #expect(declined.stdout.contains("[y/N]"))
        #expect(declined.stderr.contains("not confirmed; pairing cancelled, nothing stored"), "\(declined.stderr)")
        #expect(objects(try await Binary.run(["devices", "list", "--from", "gw", "--json"] + s).stdout).isEmpty)
        // A malformed --expect-code is a usage error, before the node is asked anything.
        let literal = try await Binary.run(
            ["pair", "serial", "sensor1", "--from", "gw", "--name", "intruder", "--expect-code", "1234567"] + s)
        #expect(literal.status == 2)

        #expect(await sensor.stop() == 0)
        #expect(await gateway.stop() == 0)
    }

    @Test func bridgesWithRequiredAttributesAdmitOnlyMatchingPairedDevices() async throws {
        let dir = try temporaryDirectory()
        let modem = try await blocking { try NullModem(directory: dir) }
        defer { modem.stop() }
        let state = dir + "/state"
        let s = ["--state-dir", state]
        let nowhere = try freePort()  // the bridges' cloud is down: readings are queued and acknowledged
        let gateway = try await AgentProcess.start(
            config: """
                node:
                  name: gw
                  state_dir: \(state)
                  log_level: warning
                vault:
                  path: \(dir)/gw-vault
                trust:
                  identities: [I\(String(repeating: "ab", count: 32))]
                transports:
                  tcp:
                    listen: 127.0.0.1:0
                  serial:
                    - path: \(dir)/ttyA
                      mode: listen
                      name: sensor1
                bridges:
                  - name: lab
                    to: /ip4/127.0.0.1/tcp/\(nowhere)/secure/api/service/ingest
                    require_attributes:
                      room: lab
                  - name: kitchen
                    to: /ip4/127.0.0.1/tcp/\(nowhere)/secure/api/service/ingest
                    require_attributes:
                      room: kitchen
                  - name: any
                    to: /ip4/127.0.0.1/tcp/\(nowhere)/secure/api/service/ingest
                """, dir: dir)
        let sensor = try await NodeProcess.start(
            name: "sensor", stateDir: state, extra: ["--serial", dir + "/ttyB,mode=connect,name=uplink"])
        try await waitForSerialLinks(["gw", "sensor"], stateDir: state)
        func send(_ route: String) async throws -> Binary.Result {
            try await Binary.run(["message", "send", "--from", "sensor", route, "reading", "--timeout", "2s"] + s)
        }

        // Before pairing: the channel itself is refused (trust), and link-only readings reach only the open bridge.
        #expect(try await send("/serial/uplink/secure/api/service/lab").status == 1)
        #expect(try await send("/serial/uplink/service/lab").status == 1, "a link-only reading for a bridge with requirements")
        let open = try await send("/serial/uplink/service/any")
        #expect(open.status == 0 && open.stdout.hasPrefix("ok "), "\(open.stdout) \(open.stderr)")

        let paired = try await Binary.run(
            ["pair", "serial", "sensor1", "--from", "gw", "--name", "thermo-1", "--attribute", "room=lab", "--yes"] + s)
        #expect(paired.status == 0, "\(paired.stderr)")

        // Paired with room=lab: the lab bridge takes its readings through its channel, the kitchen bridge does not,
        // and link-only readings are still refused by both.
        let lab = try await send("/serial/uplink/secure/api/service/lab")
        #expect(lab.status == 0 && lab.stdout.hasPrefix("ok "), "\(lab.stdout) \(lab.stderr)")
        #expect(try await send("/serial/uplink/secure/api/service/kitchen").status == 1)
        #expect(try await send("/serial/uplink/service/lab").status == 1)

        // Unpaired: refused again.
        #expect(try await Binary.run(["unpair", "thermo-1", "--from", "gw"] + s).status == 0)
        #expect(try await send("/serial/uplink/secure/api/service/lab").status == 1)

        let status = try await Binary.run(["status", "--from", "gw", "--json"] + s)
        #expect(status.stdout.contains("\"name\": \"lab\""), "\(status.stdout)")
        #expect(await sensor.stop() == 0)
        #expect(await gateway.stop() == 0)
    }

    @Test func usageErrorsExitWithStatus2() async throws {
        let dir = try temporaryDirectory()
        let s = ["--state-dir", dir]
        let both = try await Binary.run(["pair", "serial", "x", "--name", "d", "--yes", "--expect-code", "123456"] + s)
        #expect(both.status == 2)
        let badName = try await Binary.run(["pair", "serial", "x", "--name", "../etc"] + s)
        #expect(badName.status == 2)
        let noNode = try await Binary.run(["devices", "list", "--from", "nowhere"] + s)
        #expect(noNode.status == 1)
        #expect(noNode.stderr.contains("not running"))
        let help = try await Binary.run(["pair", "serial", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("--expect-code"))
    }
}
