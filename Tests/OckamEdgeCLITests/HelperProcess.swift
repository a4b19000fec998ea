import EdgeTestSupport
import Foundation

/// A python3 helper child (null modem, echo server) that can never outlive its test or hold the test runner's output.
///
/// Children of the test process inherit a signal mask with SIGTERM blocked, so `terminate()` alone leaves them
/// running; an orphan that still holds the runner's stdout/stderr makes `swift test` wait for EOF forever. So: the
/// script unblocks signals first, exits when its stdin (a pipe only we hold) reaches EOF, its stderr goes to /dev/null,
/// and `stop()` uses SIGKILL.
final class HelperProcess: @unchecked Sendable {  // used by one test at a time
    private let process = Process()
    private let stdin = Pipe()
    private let stdout = Pipe()

    /// The preamble every helper script runs first.
    private static let preamble = """
        import os, signal, sys, threading
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        def _orphan_guard():
            sys.stdin.buffer.read()
            os._exit(0)
        threading.Thread(target=_orphan_guard, daemon=True).start()

        """

    /// Starts `scripts/<name>` from the package and returns once it printed its first line.
    convenience init(packageScript name: String, arguments: [String] = []) throws {
        let path = TestData.packageRoot.appendingPathComponent("scripts/\(name)").path
        try self.init(script: try String(contentsOfFile: path, encoding: .utf8), arguments: arguments)
    }

    /// Starts `script` and returns once it printed its first line, which is returned too.
    init(script: String, arguments: [String] = []) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", Self.preamble + script] + arguments
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while true {
            let byte = stdout.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty || byte == Data([0x0a]) { break }
            line.append(byte)
        }
        firstLine = String(decoding: line, as: UTF8.self)
        if firstLine.isEmpty {
            stop()
            throw TestDataError("helper \(arguments) did not start")
        }
    }

    let firstLine: String

    /// Kills the helper and waits (bounded) until it has ended; safe to call twice.
    func stop() {
        if process.waitForExit(timeout: .zero) == nil {
            kill(process.processIdentifier, SIGKILL)
            if process.waitForExit(timeout: .seconds(30)) == nil {
                print("helper \(process.processIdentifier) still running 30 s after SIGKILL")
            }
        }
        try? stdin.fileHandleForWriting.close()
    }

    deinit { stop() }
}

/// SIGTERM, then SIGKILL if the process has not exited within `grace` seconds; returns the exit status (-1 if even
/// SIGKILL did not end it in time). A test must fail, never hang, when a child ignores SIGTERM.
@discardableResult
func terminateAndWait(_ process: Process, grace: TimeInterval = 15) -> Int32 {
    process.terminate(grace: .milliseconds(Int(grace * 1000)))?.status ?? -1
}

/// ``terminateAndWait(_:grace:)`` on a GCD thread, for async tests: waiting on the Swift concurrency pool (two threads
/// on a 2-core machine) would stall every in-process test running beside this one.
func terminateAndWaitOffPool(_ process: Process, grace: TimeInterval = 15) async -> Int32 {
    (try? await blocking { terminateAndWait(process, grace: grace) }) ?? -1
}
