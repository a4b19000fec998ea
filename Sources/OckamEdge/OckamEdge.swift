// OckamEdge: the `ockam-edge` command-line entry point (commands are declared in Commands.swift).
import EdgeAgent
import CMemory
import EdgeCLI

#if canImport(Glibc)
import Glibc
#endif

/// Version printed by `--version`.
let ockamEdgeVersion = "0.1.0"

@main
struct OckamEdgeMain {
    static func main() async {
        // A parent (a test runner, some process supervisors) may hand us a mask with SIGTERM/SIGHUP blocked; the
        // agent's shutdown and reload depend on them, so start from an empty mask.
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
        ParentWatch.startIfRequested()
        // Buffers of 256 KiB and more (large messages and frames) come from mmap and go back to the system when freed:
        // a peer's burst of 1 MiB messages otherwise leaves the heap grown after it has gone (reliability: slow_reader).
        _ = cmemory_return_large_buffers(256 << 10)
        let argv = Array(CommandLine.arguments.dropFirst())
        let status: Int32
        switch CommandLineParser.parse(argv, root: Commands.root, programName: "ockam-edge") {
        case .help(let text):
            print(text, terminator: "")
            status = 0
        case .version:
            print("ockam-edge \(ockamEdgeVersion)")
            status = 0
        case .usageError(let message):
            Console.error("error: \(message)")
            status = 2
        case .run(let path, let arguments):
            do {
                status = try await Commands.run(path: path, arguments: arguments)
            } catch let error as CommandFailure {
                Console.error("error: \(error.message)")
                status = error.status
            } catch {
                Console.error("error: \(error)")
                status = 1
            }
        }
        exit(status)
    }
}

enum Console {
    static func error(_ text: String) {
        var line = text
        if !line.hasSuffix("\n") { line += "\n" }
        var bytes = Array(line.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            bytes = bytes.dropFirst(n)
        }
    }
}

/// `OCKAM_EDGE_EXIT_WITH_PARENT=1`: end this process when the one that started it is gone (it was re-parented),
/// with SIGTERM so that nodes and agents shut down as usual, then at the latest 10 s later. The Makefile's test
/// targets set it, so a test run that crashes or is killed leaves no nodes behind holding ptys, ports and vault
/// locks for the next run. (Not `PR_SET_PDEATHSIG`: that fires when the *thread* that started the child exits,
/// and test runners start children from short-lived threads.) Checked every 0.5 s.
enum ParentWatch {
    static func startIfRequested() {
        guard Support.environment("OCKAM_EDGE_EXIT_WITH_PARENT") == "1" else { return }
        let parent = getppid()
        // Started after the parent was already gone (re-parented to init before we ran): nothing to wait for.
        if parent == 1 { exitBecauseParentIsGone(parent) }
        Task.detached {
            while getppid() == parent {
                try? await Task.sleep(for: .milliseconds(500))
            }
            exitBecauseParentIsGone(parent)
            try? await Task.sleep(for: .seconds(10))
            _exit(1)
        }
    }

    private static func exitBecauseParentIsGone(_ parent: pid_t) {
        Console.error("ockam-edge: the process that started this one (pid \(parent)) is gone; exiting (OCKAM_EDGE_EXIT_WITH_PARENT)")
        kill(getpid(), SIGTERM)
    }
}
