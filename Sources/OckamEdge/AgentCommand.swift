// `ockam-edge agent`: the gateway runtime (EdgeAgent) from a YAML configuration file, with reload, drain and metrics.
import EdgeAgent
import EdgeCLI
import EdgeConfig

#if canImport(Glibc)
import Glibc
#endif

struct AgentCommand {
    static let spec = CommandSpec(
        "agent", abstract: "Run the gateway agent from a configuration file.",
        discussion: """
            Reads the YAML configuration (every key: docs/configuration.md; a complete example:
            docs/agent.example.yaml), then runs the node it describes until SIGTERM/SIGINT, which drain it (channels
            are closed with Close, listeners stop). SIGHUP reloads the file: trust, outlets, inlets and relay
            registrations are applied without touching unaffected links; an invalid file is reported and the running
            configuration kept. Channels from identities that are no longer trusted are closed at once.
            """,
        examples: [
            "ockam-edge agent --config /etc/ockam-edge/agent.yaml",
            "ockam-edge agent --config /etc/ockam-edge/agent.yaml --check-config",
        ],
        options: [
            OptionSpec("config", value: "file", help: "Configuration file.", default: "/etc/ockam-edge/agent.yaml"),
            .flag("check-config", help: "Validate the configuration (syntax and meaning) and exit."),
            Commands.logFormat,
        ])

    let arguments: ParsedArguments
    init(_ arguments: ParsedArguments) { self.arguments = arguments }

    func run() async throws -> Int32 {
        let path = arguments.value("config") ?? "/etc/ockam-edge/agent.yaml"
        let config = try AgentConfigFile.load(path)
        if arguments.flag("check-config") {
            print("\(path): ok")
            return 0
        }
        _ = try Support.bootstrapLogging(level: config.node.logLevel, format: arguments.value("log-format"))
        umask(0o077)
        // Signals are caught before anything starts (and before `listening …` is printed): a supervisor that stops
        // or reloads the agent right after start gets a drain, not the default action (finding F5).
        let signals = SignalStream([SIGHUP, SIGINT, SIGTERM])
        let agent = try await Agent.start(config: config, launch: .file(path))
        print("listening \(agent.listening.joined(separator: " "))")
        fflush(nil)
        await agent.run(signals: signals.stream)
        return 0
    }
}
