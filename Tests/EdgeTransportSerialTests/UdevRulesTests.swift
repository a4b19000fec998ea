// Runs udev/check-rules.sh: static syntax/policy checks of the udev rules and unit, plus udevadm/umockdev and
// systemd-analyze where installed (the script prints which checks ran and which were skipped).
import EdgeTestSupport
import Foundation
import Testing

@Suite("udev rules")
struct UdevRulesTests {
    @Test func rulesAndUnitPassTheChecker() async throws {
        let script = TestData.packageRoot.appendingPathComponent("udev/check-rules.sh").path
        let (status, output) = try await blocking { () -> (Int32, String) in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = [script]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        print(output)
        #expect(status == 0, "udev/check-rules.sh failed:\n\(output)")
        #expect(output.contains("verified: 70-ockam-edge-serial.rules: syntax and policy"))
        #expect(output.contains("verified: ockam-edge-agent.service: hardening settings"))
    }
}
