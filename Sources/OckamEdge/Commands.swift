// The command tree of `ockam-edge` and the dispatch from parsed arguments to implementations.
import EdgeAgent
import EdgeCLI
import EdgeNode
import EdgeRouting
import EdgeTransportTCP
import EdgeWire
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

enum Commands {
    static let logLevel = OptionSpec("log-level", value: "level", help: "trace, debug, info, notice, warning, error.")
    static let logFormat = OptionSpec(
        "log-format", value: "auto|text|journal|json",
        help: "Log lines on stderr: journal (syslog priorities, no timestamps) when stderr is journald, else text; json for log shippers.",
        default: "auto")
    static let stateDir = OptionSpec(
        "state-dir", value: "dir",
        help: "Where node records live ($OCKAM_EDGE_STATE_DIR, $XDG_STATE_HOME/ockam-edge, ~/.local/state/ockam-edge).")

    static let root = CommandSpec(
        "ockam-edge", abstract: "A low-footprint edge agent that speaks Ockam's routing and secure-channel protocols.",
        examples: [
            "ockam-edge node run --tcp-listen 127.0.0.1:4000 &",
            "ockam-edge message send /ip4/127.0.0.1/tcp/4000/service/uppercase hello   # prints HELLO",
            "ockam-edge message send /ip4/127.0.0.1/tcp/4000/secure/api/service/uppercase hello   # end-to-end encrypted",
        ],
        subcommands: [
            CommandSpec("node", abstract: "Run nodes.", subcommands: [NodeRunCommand.spec]),
            CommandSpec("message", abstract: "Send messages along routes.", subcommands: [MessageSendCommand.spec]),
            SecureChannelCommands.spec,
            SecureChannelCommands.statusSpec,
            AgentCommand.spec,
            SerialCommands.spec,
            BLECommands.spec,
            IdentityCommands.spec,
            VaultCommands.spec,
            CredentialCommands.spec,
            PairCommands.spec,
            PairCommands.unpairSpec,
            PairCommands.devicesSpec,
            CommandSpec(
                "completions", abstract: "Print a shell completion script (bash, zsh or fish).",
                discussion: "Generated from the same command tree as --help. Install, e.g.: ockam-edge completions bash > /usr/share/bash-completion/completions/ockam-edge",
                examples: ["ockam-edge completions bash", "ockam-edge completions fish > ~/.config/fish/completions/ockam-edge.fish"],
                arguments: [ArgumentSpec("shell", help: "bash, zsh or fish.")]),
            CommandSpec(
                "man", abstract: "Print a manual page in roff: ockam-edge(1), or with 5 ockam-edge-agent.yaml(5).",
                discussion: "Section 1 is generated from the same command tree as --help; section 5 (the agent's configuration file) from the key table the configuration decoder checks keys against. Read one with: ockam-edge man 5 | man -l -",
                examples: ["ockam-edge man | man -l -", "ockam-edge man 5 > ockam-edge-agent.yaml.5"],
                arguments: [ArgumentSpec("section", help: "1 (the commands, default) or 5 (the configuration file).", optional: true)]),
        ])

    static func run(path: [String], arguments: ParsedArguments) async throws -> Int32 {
        switch path {
        case ["node", "run"]: return try await NodeRunCommand(arguments).run()
        case ["message", "send"]: return try await MessageSendCommand(arguments).run()
        case ["status"]: return try await SecureChannelCommands.run("status", arguments)
        case ["agent"]: return try await AgentCommand(arguments).run()
        case ["completions"]:
            let name = arguments.value("shell") ?? ""
            guard let shell = ShellCompletion.Shell(rawValue: name) else {
                throw CommandFailure("unknown shell '\(name)' (bash, zsh or fish)", status: 2)
            }
            print(ShellCompletion.script(shell, root: root), terminator: "")
            return 0
        case ["man"]:
            switch arguments.value("section") ?? "1" {
            case "1": print(ManualPage.roff(root, version: ockamEdgeVersion), terminator: "")
            case "5": print(AgentConfigManual.roff(version: ockamEdgeVersion), terminator: "")
            case let other: throw CommandFailure("no manual page in section '\(other)' (1 or 5)", status: 2)
            }
            return 0
        case ["serial", "list"]: return SerialCommands.run(arguments)
        case ["ble", "list"]: return try BLECommands.run(arguments)
        case ["pair", "serial"], ["pair", "ble"], ["unpair"], ["devices", "list"]: return try await PairCommands.run(path, arguments)
        case let p where p.count == 2 && p[0] == "secure-channel": return try await SecureChannelCommands.run(p[1], arguments)
        case let p where p.count == 2 && p[0] == "identity": return try IdentityCommands.run(p[1], arguments)
        case let p where p.count == 2 && p[0] == "vault": return try VaultCommands.run(p[1], arguments)
        case let p where p.count == 2 && p[0] == "credential": return try CredentialCommands.run(p[1], arguments)
        default: throw CommandFailure("command \(path.joined(separator: " ")) is not implemented", status: 2)
        }
    }

    /// One event loop thread: the agent is I/O bound and runs on small boards.
    static func makeEventLoopGroup() -> MultiThreadedEventLoopGroup {
        MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }
}

