import EdgeTestSupport
import Foundation
import Testing

/// Runs the built `ockam-edge` binary as separate processes.
struct Binary {
    static var url: URL { TestData.productsDirectory.appendingPathComponent("ockam-edge") }

    struct Result: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs to completion off the concurrency pool (see `blocking`).
    static func run(_ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 60) async throws
        -> Result
    {
        try await blocking { try runBlocking(arguments, environment: environment, timeout: timeout) }
    }

    /// Runs to completion (bounded by `timeout` as a guard against a hung binary).
    static func runBlocking(
        _ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 60, executable: URL = url
    ) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let group = DispatchGroup()
        let outData = DataBox()
        let errData = DataBox()
        group.enter()
        DispatchQueue.global().async {
            outData.set(out.fileHandleForReading.readDataToEndOfFile())
            group.leave()
        }
        group.enter()
        DispatchQueue.global().async {
            errData.set(err.fileHandleForReading.readDataToEndOfFile())
            group.leave()
        }
        if group.wait(timeout: .now() + timeout) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            _ = process.waitForExit(timeout: .seconds(30))
            throw TestDataError("ockam-edge \(arguments.joined(separator: " ")) did not finish in \(timeout)s")
        }
        // Its output is closed; the process itself ends a moment later.
        guard let status = process.waitForExit(timeout: .seconds(30))?.status else {
            kill(process.processIdentifier, SIGKILL)
            throw TestDataError("ockam-edge \(arguments.joined(separator: " ")) closed its output but did not exit")
        }
        return Result(
            status: status, stdout: String(decoding: outData.get(), as: UTF8.self),
            stderr: String(decoding: errData.get(), as: UTF8.self))
    }
}

extension Binary {
    /// Runs another program (a shell, groff) to completion, as ``runBlocking(_:environment:timeout:executable:)``.
    static func runTool(_ path: String, _ arguments: [String]) throws -> Result {
        try runBlocking(arguments, timeout: 60, executable: URL(fileURLWithPath: path))
    }

    /// Runs a diagnostic shell command and returns its output (for test failure reports only).
    static func runShell(_ command: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        _ = process.terminate(grace: .seconds(10))
        return String(decoding: data, as: UTF8.self)
    }
}

/// Data written by one thread and read by another after a DispatchGroup wait.
final class DataBox: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ value: Data) { lock.withLock { data = value } }
    func get() -> Data { lock.withLock { data } }
}

/// A `node run` process; its first stdout line tells the bound address.
final class NodeProcess: @unchecked Sendable {  // used by one test at a time
    static func start(name: String, stateDir: String, extra: [String] = []) async throws -> NodeProcess {
        try await blocking { try NodeProcess(name: name, stateDir: stateDir, extra: extra) }
    }

    let process = Process()
    let address: String
    let port: Int
    /// The node's log (stderr), kept in the state directory so a failing test can print it.
    let logPath: String

    init(name: String, stateDir: String, extra: [String] = []) throws {
        process.executableURL = Binary.url
        process.arguments =
            ["node", "run", "--name", name, "--tcp-listen", "127.0.0.1:0", "--state-dir", stateDir, "--log-level", "info"]
            + (extra.contains("--vault") ? [] : ["--vault", stateDir + "/vault-" + name]) + extra
        let out = Pipe()
        process.standardOutput = out
        logPath = stateDir + "/\(name).log"
        try? FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
        // Read the first line ("listening host:port"); a dead process gives EOF instead.
        var line = Data()
        while true {
            let byte = out.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty || byte == Data([0x0a]) { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("listening "), let port = Int(text.split(separator: ":").last ?? "") else {
            let status = terminateAndWait(process)
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "(no log)"
            throw TestDataError("node \(name) did not start (status \(status)): '\(text)'; its log:\n\(log)")
        }
        address = String(text.dropFirst("listening ".count))
        self.port = port
    }

    /// Sends SIGTERM and waits; returns the exit status.
    /// SIGTERM and wait for the exit, off the concurrency pool (a graceful stop can take seconds).
    func stop() async -> Int32 { await terminateAndWaitOffPool(process) }

    deinit { terminateAndWait(process) }
}

func temporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("ockam-edge-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite("ockam-edge CLI (separate processes)", .serialized)
struct CLITests {
    /// Whether `pid` has ended (gone, or a zombie nobody reaps: init in a container may not).
    static func ended(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        guard let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    @Test func withExitWithParentANodeEndsWhenItsParentIsGoneAndWithoutItItStays() async throws {
        let dir = try temporaryDirectory()
        let edge = Binary.url.path
        func node(_ name: String, _ prefix: String) -> String {
            "\(prefix) '\(edge)' node run --name \(name) --tcp-listen 127.0.0.1:0 --state-dir '\(dir)/state' "
                + "--vault '\(dir)/vault-\(name)' > /dev/null 2> '\(dir)/\(name).log' & echo $!; "
                + "until '\(edge)' status --from \(name) --state-dir '\(dir)/state' > /dev/null 2>&1; do sleep 0.1; done; "
        }
        // The shell starts both nodes, waits until they serve their control sockets, prints their pids and exits:
        // both are re-parented. Only the one with the variable ends.
        let script = node("tied", "OCKAM_EDGE_EXIT_WITH_PARENT=1") + node("free", "env -u OCKAM_EDGE_EXIT_WITH_PARENT")
        // Read the shell's output to its end (it has exited then) without waiting for Foundation to reap it: that
        // wait can hang when no further SIGCHLD comes, and the re-parenting happens at the exit, reaped or not.
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", script]
        let out = Pipe()
        shell.standardOutput = out
        try shell.run()
        let output = try await blocking { String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
        let pids = output.split(separator: "\n").compactMap { Int32($0) }
        try #require(pids.count == 2, "\(output)")
        defer { for pid in pids { kill(pid, SIGKILL) } }
        try await eventually("the tied node ended") { Self.ended(pids[0]) }
        let log = try String(contentsOfFile: dir + "/tied.log", encoding: .utf8)
        #expect(log.contains("is gone; exiting (OCKAM_EDGE_EXIT_WITH_PARENT)"), "\(log)")
        #expect(!Self.ended(pids[1]), "the node without the variable must not end with its parent")
        let status = try await Binary.run(["status", "--from", "free", "--state-dir", dir + "/state"])
        #expect(status.status == 0)
        kill(pids[1], SIGTERM)
        try await eventually("the free node stopped") { Self.ended(pids[1]) }
    }

    @Test func messageRoundTripAcrossTwoProcesses() async throws {
        let state = try temporaryDirectory()
        let node = try await NodeProcess.start(name: "n1", stateDir: state)
        let result = try await Binary.run(["message", "send", "/ip4/127.0.0.1/tcp/\(node.port)/service/uppercase", "hello"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "HELLO\n")
        let echo = try await Binary.run(["message", "send", "/node/n1/service/echo", "echo me", "--state-dir", state])
        #expect(echo.status == 0, "\(echo.stderr)")
        #expect(echo.stdout == "echo me\n")
        #expect(await node.stop() == 0)
        // A stopped node removes its record, so /node/n1 no longer resolves.
        let gone = try await Binary.run(["message", "send", "/node/n1/service/echo", "x", "--state-dir", state])
        #expect(gone.status == 2)
        #expect(gone.stderr.contains("unknown node \"n1\""))
    }

    /// A second node under a running node's name is refused before it touches the first one's record or socket;
    /// once the first has stopped, the name is free again.
    @Test func aSecondNodeWithARunningNodesNameIsRefused() async throws {
        let state = try temporaryDirectory()
        let first = try await NodeProcess.start(name: "n1", stateDir: state)
        let second = try await Binary.run([
            "node", "run", "--name", "n1", "--tcp-listen", "127.0.0.1:0", "--state-dir", state, "--vault", state + "/other",
        ])
        #expect(second.status != 0)
        #expect(second.stderr.contains("a node named 'n1' is already running (pid \(first.process.processIdentifier)"), "\(second.stderr)")
        let echo = try await Binary.run(["message", "send", "/node/n1/service/echo", "still mine", "--state-dir", state])
        #expect(echo.stdout == "still mine\n", "\(echo.stderr)")
        #expect(await first.stop() == 0)
        let again = try await NodeProcess.start(name: "n1", stateDir: state, extra: ["--vault", state + "/other"])
        #expect(await again.stop() == 0)
    }

    /// With its identity records deleted and its keys left, a vault is not given a new identity behind the operator's
    /// back: `node run` refuses and says how to restore or start afresh; an explicit `identity create` works.
    @Test func aNodeRefusesToMintANewIdentityOverLostOnes() async throws {
        let state = try temporaryDirectory()
        let vault = state + "/vault-n1"
        let first = try await NodeProcess.start(name: "n1", stateDir: state)
        #expect(await first.stop() == 0)
        try FileManager.default.removeItem(atPath: vault + "/records")
        let refused = try await Binary.run(
            ["node", "run", "--name", "n1", "--tcp-listen", "127.0.0.1:0", "--state-dir", state, "--vault", vault])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("holds 2 keys but no identity records"), "\(refused.stderr)")
        #expect(refused.stderr.contains("ockam-edge identity create default --vault \(vault)"), "\(refused.stderr)")
        // `vault check` reports it too, without opening (or changing) the vault.
        let check = try await Binary.run(["vault", "check", "--vault", vault])
        #expect(check.status == 1)
        #expect(check.stdout.contains("\(vault)/records/identities is empty, but the vault holds 2 keys"), "\(check.stdout)")
        let checkJSON = try await Binary.run(["vault", "check", "--vault", vault, "--json"])
        #expect(checkJSON.stdout.contains("\"kind\": \"identity\""), "\(checkJSON.stdout)")
        let created = try await Binary.run(["identity", "create", "default", "--vault", vault])
        #expect(created.status == 0, "\(created.stderr)")
        let again = try await NodeProcess.start(name: "n1", stateDir: state)
        #expect(await again.stop() == 0)
        let clean = try await Binary.run(["vault", "check", "--vault", vault])
        #expect(clean.status == 0, "\(clean.stdout)")
    }

    /// A state directory that another user could write is refused, by a node starting there and by the CLI asking a
    /// node there: whoever can write it can replace node records and control sockets (and so forge a node's answers).
    @Test func aStateDirectoryOthersCanWriteIsRefused() async throws {
        let state = try temporaryDirectory()
        let node = try await NodeProcess.start(name: "n1", stateDir: state)
        #expect(chmod(state + "/nodes", 0o777) == 0)
        let status = try await Binary.run(["status", "--from", "n1", "--state-dir", state])
        #expect(status.status != 0)
        #expect(status.stderr.contains("\(state)/nodes is writable by group or others (mode 777)"), "\(status.stderr)")
        let send = try await Binary.run(["message", "send", "/node/n1/service/echo", "x", "--state-dir", state])
        #expect(send.status != 0)
        #expect(send.stderr.contains("is writable by group or others"), "\(send.stderr)")
        #expect(chmod(state + "/nodes", 0o700) == 0)
        let fine = try await Binary.run(["message", "send", "/node/n1/service/echo", "x", "--state-dir", state])
        #expect(fine.stdout == "x\n", "\(fine.stderr)")
        #expect(await node.stop() == 0)
        // A node does not start there either.
        #expect(chmod(state, 0o777) == 0)
        let refused = try await Binary.run(["node", "run", "--name", "n2", "--tcp-listen", "127.0.0.1:0", "--state-dir", state])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("\(state) is writable by group or others"), "\(refused.stderr)")
        // As root (CI), a directory owned by another user is refused whatever its mode.
        if geteuid() == 0 {
            #expect(chmod(state, 0o700) == 0 && chown(state, 65534, 65534) == 0)
            let owned = try await Binary.run(["status", "--from", "n1", "--state-dir", state])
            #expect(owned.stderr.contains("is owned by uid 65534, not by the user running ockam-edge"), "\(owned.stderr)")
        }
    }

    /// The CLI talks to a node only through a socket owned by the user running it: a regular file where a node's
    /// control socket goes is refused, and so (as root, who can give a socket to another user) is a socket owned by
    /// someone else, whatever answers on it.
    @Test func aControlSocketThatIsNotTheUsersOwnSocketIsRefused() async throws {
        let state = try temporaryDirectory()
        #expect(mkdir(state + "/nodes", 0o700) == 0)
        let planted = state + "/nodes/fake.sock"
        #expect(FileManager.default.createFile(atPath: planted, contents: Data("x".utf8)))
        let file = try await Binary.run(["status", "--from", "fake", "--state-dir", state])
        #expect(file.status != 0)
        #expect(file.stderr.contains("\(planted) is not a socket"), "\(file.stderr)")
        // Changing a socket's owner needs root (CI runs as root); elsewhere this part is not run.
        guard geteuid() == 0 else { return }
        let node = try await NodeProcess.start(name: "n1", stateDir: state)
        let socket = state + "/nodes/n1.sock"
        #expect(chown(socket, 65534, 65534) == 0)
        let owned = try await Binary.run(["status", "--from", "n1", "--state-dir", state])
        #expect(owned.status != 0)
        #expect(owned.stderr.contains("the control socket \(socket) is owned by uid 65534, not by you"), "\(owned.stderr)")
        #expect(chown(socket, 0, 0) == 0)
        let mine = try await Binary.run(["status", "--from", "n1", "--state-dir", state])
        #expect(mine.status == 0, "\(mine.stderr)")
        #expect(await node.stop() == 0)
    }

    /// SIGTERM at once after the 'listening' line (what a supervisor or `make reliability` may do) is a clean
    /// shutdown, never death by the default action (exit by signal, node record and control socket left behind).
    @Test func sigtermRightAfterStartIsACleanShutdown() async throws {
        let state = try temporaryDirectory()
        for i in 0..<5 {
            let node = try await NodeProcess.start(name: "quick\(i)", stateDir: state)
            #expect(await node.stop() == 0, "start \(i)")
            #expect(node.process.waitForExit(timeout: .zero)?.reason == .exit, "start \(i)")
            #expect(!FileManager.default.fileExists(atPath: state + "/nodes/quick\(i).sock"), "start \(i)")
        }
    }

    @Test func messageThroughAForwardingMiddleNode() async throws {
        let state = try temporaryDirectory()
        let c = try await NodeProcess.start(name: "c", stateDir: state)
        // By default a node forwards nothing on a peer's behalf (no open relay): the hop is refused and counted.
        let closed = try await NodeProcess.start(name: "closed", stateDir: state)
        let refused = try await Binary.run([
            "message", "send", "/ip4/127.0.0.1/tcp/\(closed.port)/ip4/127.0.0.1/tcp/\(c.port)/service/uppercase", "x",
            "--timeout", "500ms",
        ])
        #expect(refused.status == 1)
        let status = try await Binary.run(["status", "--from", "closed", "--state-dir", state, "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        let counters = json?["counters"] as? [String: Any]
        #expect(counters?["dropped_forward_not_allowed"] as? Int == 1, "\(status.stdout)")
        let flow = json?["flow_control"] as? [String: Any]
        #expect(flow?["forward_to"] as? [String] == [])
        #expect(flow?["reachable_from_links"] as? [String] == ["0#api", "0#echo", "0#uppercase"], "\(status.stdout)")
        #expect(await closed.stop() == 0)

        let b = try await NodeProcess.start(
            name: "b", stateDir: state, extra: ["--forward-to", "127.0.0.1:0\(c.port)", "--forward-to", "10.0.0.0/8:*"])
        let result = try await Binary.run([
            "message", "send", "/ip4/127.0.0.1/tcp/\(b.port)/ip4/127.0.0.1/tcp/\(c.port)/service/uppercase", "via b",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "VIA B\n")
        let bStatus = try await Binary.run(["status", "--from", "b", "--state-dir", state, "--json"])
        let bFlow = (try JSONSerialization.jsonObject(with: Data(bStatus.stdout.utf8)) as? [String: Any])?["flow_control"]
        #expect((bFlow as? [String: Any])?["forward_to"] as? [String] == ["10.0.0.0/8:*", "127.0.0.1:\(c.port)"])
        #expect(await b.stop() == 0)
        #expect(await c.stop() == 0)
    }

    @Test func aBadForwardToIsRefusedAtStart() async throws {
        let state = try temporaryDirectory()
        let result = try await Binary.run([
            "node", "run", "--name", "bad", "--state-dir", state, "--tcp-listen", "127.0.0.1:0", "--forward-to", "010.0.0.1:80",
        ])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--forward-to: invalid forwarding rule \"010.0.0.1:80\""), "\(result.stderr)")
    }

    /// Completion scripts and the manual page come from the command tree: bash completes subcommands and the
    /// options of the command typed so far; zsh and fish scripts parse; the page renders without troff warnings and
    /// names every command.
    @Test func completionsAndTheManualPageComeFromTheCommandTree() async throws {
        let bash = try await Binary.run(["completions", "bash"])
        #expect(bash.status == 0)
        let dir = try temporaryDirectory()
        let script = dir + "/ockam-edge.bash"
        try bash.stdout.write(toFile: script, atomically: true, encoding: .utf8)
        func complete(_ words: [String]) throws -> [String] {
            let line = words.map { "'\($0)'" }.joined(separator: " ")
            let probe = "source '\(script)'; COMP_WORDS=(\(line)); COMP_CWORD=\(words.count - 1); _ockam_edge; printf '%s\\n' \"${COMPREPLY[@]}\""
            let result = try Binary.runTool("/bin/bash", ["-c", probe])
            #expect(result.status == 0, "\(result.stderr)")
            return result.stdout.split(separator: "\n").map(String.init)
        }
        #expect(try complete(["ockam-edge", "no"]) == ["node"])
        #expect(try complete(["ockam-edge", "node", "r"]) == ["run"])
        #expect(try complete(["ockam-edge", "node", "run", "--forward"]) == ["--forward-to"])
        #expect(try complete(["ockam-edge", "node", "run", "--name", "x", "--tcp-max-o"]) == ["--tcp-max-outgoing"])
        #expect(try complete(["ockam-edge", "vault", ""]).contains("check"))
        for (shell, tool) in [("zsh", "/usr/bin/zsh"), ("fish", "/usr/bin/fish")] where FileManager.default.fileExists(atPath: tool) {
            let generated = try await Binary.run(["completions", shell])
            let path = dir + "/ockam-edge.\(shell)"
            try generated.stdout.write(toFile: path, atomically: true, encoding: .utf8)
            let check = try Binary.runTool(tool, ["-n", path])
            #expect(check.status == 0, "\(shell): \(check.stderr)")
            if shell == "fish" {  // fish completes a command line non-interactively
                let run = try Binary.runTool(tool, ["-c", "source '\(path)'; complete -C 'ockam-edge node r'"])
                #expect(run.stdout.hasPrefix("run\t"), "\(run.stdout) \(run.stderr)")
            }
        }
        let unknown = try await Binary.run(["completions", "tcsh"])
        #expect(unknown.status == 2 && unknown.stderr.contains("unknown shell 'tcsh'"))

        let man = try await Binary.run(["man"])
        #expect(man.status == 0)
        for command in ["node run", "message send", "agent", "vault check", "completions", "pair serial", "secure-channel create"] {
            #expect(man.stdout.contains(".SS \"ockam\\-edge \(command.replacingOccurrences(of: "-", with: "\\-"))"), "\(command)")
        }
        try Self.expectGroffRendersWithoutWarnings(man.stdout, as: dir + "/ockam-edge.1")

        // Section 5: the configuration file, every key of docs/configuration.md's table (which a unit test keeps equal
        // to the decoder's key table).
        let man5 = try await Binary.run(["man", "5"])
        #expect(man5.status == 0 && man5.stdout.hasPrefix(".TH OCKAM\\-EDGE\\-AGENT.YAML 5 "), "\(man5.stderr)")
        let doc = try String(contentsOf: TestData.packageRoot.appendingPathComponent("docs/configuration.md"), encoding: .utf8)
        let lines = doc.split(separator: "\n", omittingEmptySubsequences: false)
        let table = lines.drop { $0 != "| key | type | default | meaning |" }.dropFirst(2).prefix { $0.hasPrefix("|") }
        let keys = table.compactMap { $0.split(separator: "`").dropFirst().first }
        #expect(keys.count >= 60)
        for key in keys {
            #expect(man5.stdout.contains("\\fB\(key.replacingOccurrences(of: "-", with: "\\-"))\\fR ("), "\(key)")
        }
        try Self.expectGroffRendersWithoutWarnings(man5.stdout, as: dir + "/ockam-edge-agent.yaml.5")
        let section7 = try await Binary.run(["man", "7"])
        #expect(section7.status == 2 && section7.stderr.contains("no manual page in section '7'"), "\(section7.stderr)")
    }

    /// Log lines for journald carry a syslog priority and no timestamp; JSON lines are one object each.
    @Test func logFormatsForJournaldAndLogShippers() async throws {
        let state = try temporaryDirectory()
        let node = try await NodeProcess.start(name: "logs", stateDir: state)
        let route = "/ip4/127.0.0.1/tcp/\(node.port)/service/echo"
        let journal = try await Binary.run(["message", "send", route, "x", "--log-level", "info", "--log-format", "journal"])
        #expect(journal.status == 0, "\(journal.stderr)")
        let journalLines = journal.stderr.split(separator: "\n")
        #expect(!journalLines.isEmpty && journalLines.allSatisfy { $0.hasPrefix("<6>") || $0.hasPrefix("<5>") }, "\(journal.stderr)")
        let json = try await Binary.run(["message", "send", route, "x", "--log-level", "info", "--log-format", "json"])
        #expect(json.status == 0, "\(json.stderr)")
        let objects = json.stderr.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(!objects.isEmpty && objects.count == json.stderr.split(separator: "\n").count, "\(json.stderr)")
        #expect(objects.allSatisfy { $0["level"] is String && $0["ts"] is String && $0["message"] is String })
        let bad = try await Binary.run(["message", "send", route, "x", "--log-format", "xml"])
        #expect(bad.status == 2 && bad.stderr.contains("invalid log format 'xml'"), "\(bad.stderr)")
        _ = await node.stop()
    }

    @Test func timeoutIsReportedWithNonZeroStatus() async throws {
        let state = try temporaryDirectory()
        let node = try await NodeProcess.start(name: "t", stateDir: state)
        let result = try await Binary.run([
            "message", "send", "/ip4/127.0.0.1/tcp/\(node.port)/service/nothing-here", "x", "--timeout", "300ms",
        ])
        #expect(result.status == 1)
        #expect(result.stderr.contains("no reply"))
        _ = await node.stop()
    }

    /// A peer that is not an Ockam node (or closes at once): the error says what happened to the connection, not
    /// only that no reply came.
    /// (Closing without reading what our side sent may reset the connection instead of closing it.)
    @Test(arguments: [
        ("HTTP/1.1 400 Bad Request\r\n\r\n", ["wrong protocol version byte 0x48 (expected 0x01)"]),
        ("", ["closed by peer", "reset by peer"]),
    ])
    func aPeerThatIsNotAnOckamNodeIsNamedInTheError(answer: String, reasons: [String]) async throws {
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa -> Bool in
                bind(server, sa, length) == 0 && listen(server, 4) == 0 && getsockname(server, sa, &length) == 0
            }
        }
        #expect(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        // One connection: answer (or not) and close, as an HTTP server or a port scanner's target would.
        let thread = Thread {
            let client = accept(server, nil, nil)
            _ = answer.utf8CString.withUnsafeBufferPointer { send(client, $0.baseAddress, answer.utf8.count, 0) }
            close(client)
        }
        thread.start()
        defer { close(server) }
        let result = try await Binary.run(
            ["message", "send", "/ip4/127.0.0.1/tcp/\(port)/service/echo", "x", "--timeout", "120s"])
        #expect(result.status == 1)
        // Either the request went out and failed when its connection closed ("no reply from …: the connection …"), not
        // after its timeout, or the connection was already gone when it was routed ("cannot send to …: no worker at
        // …"): in both cases the error says why.
        #expect(!result.stderr.contains("within 120s"), "\(result.stderr)")
        #expect(result.stderr.contains("no reply from") || result.stderr.contains("cannot send to"), "\(result.stderr)")
        #expect(
            reasons.contains { result.stderr.contains("the connection to 127.0.0.1:\(port) closed: \($0)") },
            "\(result.stderr)")
    }

    @Test func badMultiaddrPointsAtTheBadPart() async throws {
        let result = try await Binary.run(["message", "send", "/ip4/300.1.1.1/tcp/4000/service/echo", "x"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("bad IPv4 address \"300.1.1.1\""))
        #expect(result.stderr.contains("       ^^^^^^^^^"))
    }

    @Test func helpAndVersion() async throws {
        let help = try await Binary.run(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("COMMANDS:"))
        for command in [["node", "run"], ["message", "send"]] {
            let sub = try await Binary.run(command + ["--help"])
            #expect(sub.status == 0)
            #expect(sub.stdout.contains("EXAMPLES:"), "\(command)")
        }
        let version = try await Binary.run(["--version"])
        #expect(version.status == 0)
        #expect(version.stdout.hasPrefix("ockam-edge "))
        let unknown = try await Binary.run(["frobnicate"])
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("unknown command 'frobnicate'"))
    }

    @Test func listenerConflictIsAClearError() async throws {
        let state = try temporaryDirectory()
        let node = try await NodeProcess.start(name: "first", stateDir: state)
        let result = try await Binary.run([
            "node", "run", "--name", "second", "--tcp-listen", "127.0.0.1:\(node.port)", "--state-dir", state,
            "--vault", state + "/vault-second",
        ])
        #expect(result.status == 1)
        #expect(result.stderr.contains("cannot listen on 127.0.0.1:\(node.port)"))
        _ = await node.stop()
    }
}

extension CLITests {
    /// groff renders the manual page `roff` (written to `path`) without a warning (where groff is installed; CI
    /// installs groff-base).
    static func expectGroffRendersWithoutWarnings(_ roff: String, as path: String) throws {
        guard FileManager.default.fileExists(atPath: "/usr/bin/groff") else { return }
        try roff.write(toFile: path, atomically: true, encoding: .utf8)
        let rendered = try Binary.runTool("/usr/bin/groff", ["-man", "-Tutf8", "-ww", "-z", path])
        #expect(rendered.status == 0 && rendered.stderr.isEmpty, "\(path): \(rendered.stderr)")
    }
}
