// Runs udev/check_rules.py: static syntax/policy checks of the udev rules and both units. The real-tool checks
// (`udev/check-rules.sh`: udevadm test on ttys, umockdev fake adapters, systemd-analyze) run in CI's slow stage, on
// their own: run in parallel with the pty tests here, they coincided twice with a serial link that never came up.
import EdgeTestSupport
import Foundation
import Testing

@Suite("udev rules")
struct UdevRulesTests {
    @Test func rulesAndUnitPassTheChecker() async throws {
        let script = TestData.packageRoot.appendingPathComponent("udev/check_rules.py").path
        let (status, output) = try await blocking { () -> (Int32, String) in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", script]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            let status = process.terminate(grace: .seconds(30))?.status ?? -1
            return (status, String(decoding: data, as: UTF8.self))
        }
        print(output)
        #expect(status == 0, "udev/check_rules.py failed:\n\(output)")
        #expect(output.contains("verified: 70-ockam-edge-serial.rules: syntax and policy"))
        #expect(output.contains("verified: ockam-edge-agent.service: hardening settings"))
    }
}
