// The command tree of `ockam-edge` and the dispatch from parsed arguments to implementations.
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
    static let stateDir = OptionSpec(
        "state-dir", value: "dir",
        help: "Where node records live ($OCKAM_EDGE_STATE_DIR, $XDG_STATE_HOME/ockam-edge, ~/.local/state/ockam-edge).")

    static let nodeRun = CommandSpec(
        "run", abstract: "Run a node in the foreground until SIGINT/SIGTERM.",
        discussion: """
            Starts a node with the services a stock Ockam node offers to TCP peers (echo: raw echo; uppercase:
            upper-cases a BARE string) and an Ockam-compatible TCP listener. The bound address is printed on
            stdout as 'listening <host:port>'; logs go to stderr. The node registers its name in the state
            directory so that /node/<name> multiaddrs resolve to it.
            """,
        examples: [
            "ockam-edge node run --tcp-listen 127.0.0.1:4000",
            "ockam-edge node run --name gateway --tcp-listen 0.0.0.0:4000 --log-level debug",
        ],
        options: [
            OptionSpec("name", value: "name", help: "Node name, for /node/<name> multiaddrs.", default: "default"),
            OptionSpec("tcp-listen", value: "host:port", help: "TCP listener address (port 0 picks a free port).",
                       default: "127.0.0.1:4000"),
            .flag("no-forwarding", help: "Do not forward messages from transports to remote hops."),
            logLevel, stateDir,
        ])

    static let messageSend = CommandSpec(
        "send", abstract: "Send a message to a route and print the reply.",
        discussion: """
            The message is sent as a BARE string (what Ockam's 'message send' sends) from a temporary address; the
            first reply is printed. Routes are multiaddrs: /ip4/<a>/tcp/<port>, /dnsaddr/<host>/tcp/<port>,
            /ip6/<a>/tcp/<port>, /node/<name>, /service/<name>, /worker/<address>. Several TCP hops are allowed; each
            node on the way forwards to the next.
            """,
        examples: [
            "ockam-edge message send /ip4/127.0.0.1/tcp/4000/service/uppercase hello",
            "ockam-edge message send /node/default/service/echo hi --timeout 3s",
            "ockam-edge message send /ip4/127.0.0.1/tcp/4000/ip4/127.0.0.1/tcp/4001/service/uppercase via-b",
        ],
        options: [
            OptionSpec("timeout", value: "duration", help: "How long to wait for the reply.", default: "10s"),
            .flag("raw", help: "Send the text as raw bytes and print the reply's raw bytes (for 'echo')."),
            logLevel, stateDir,
        ],
        arguments: [
            ArgumentSpec("to", help: "Destination multiaddr."),
            ArgumentSpec("message", help: "Text to send."),
        ])

    static let root = CommandSpec(
        "ockam-edge", abstract: "A low-footprint edge agent that speaks Ockam's routing and secure-channel protocols.",
        examples: [
            "ockam-edge node run --tcp-listen 127.0.0.1:4000 &",
            "ockam-edge message send /ip4/127.0.0.1/tcp/4000/service/uppercase hello   # prints HELLO",
        ],
        subcommands: [
            CommandSpec("node", abstract: "Run nodes.", subcommands: [nodeRun]),
            CommandSpec("message", abstract: "Send messages along routes.", subcommands: [messageSend]),
            IdentityCommands.spec,
            VaultCommands.spec,
            CredentialCommands.spec,
        ])

    static func run(path: [String], arguments: ParsedArguments) async throws -> Int32 {
        switch path {
        case ["node", "run"]: return try await NodeRunCommand(arguments).run()
        case ["message", "send"]: return try await MessageSendCommand(arguments).run()
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

struct NodeRunCommand {
    let arguments: ParsedArguments
    init(_ arguments: ParsedArguments) { self.arguments = arguments }

    func run() async throws -> Int32 {
        _ = try Support.bootstrapLogging(level: arguments.value("log-level"))
        let name = arguments.value("name") ?? "default"
        try NodeDirectory.validate(name: name)
        let (host, port) = try Support.parseHostPort(arguments.value("tcp-listen") ?? "127.0.0.1:4000")
        var logger = Logger(label: "ockam-edge")
        logger[metadataKey: "node"] = "\(name)"

        let group = Commands.makeEventLoopGroup()
        let node = Node(logger: logger, options: Node.Options(forwardTransportMessages: !arguments.flag("no-forwarding")))
        try node.startDefaultServices()
        let tcp = TCPTransport(node: node, group: group)
        let bound: String
        do {
            let address = try await tcp.listen(host: host, port: port)
            bound = address.port.map { "\(address.ipAddress.map { $0.contains(":") ? "[\($0)]" : $0 } ?? host):\($0)" }
                ?? "\(host):\(port)"
        } catch {
            throw CommandFailure("cannot listen on \(host):\(port): \(error)")
        }
        let directory = NodeDirectory(stateDirectory: Support.stateDirectory(arguments.value("state-dir")))
        do {
            try directory.record(name: name, address: bound)
        } catch {
            logger.warning("could not record node name: \(error.message)")
        }
        print("listening \(bound)")
        fflush(nil)
        logger.info("node '\(name)' running; services: \(node.workerAddresses.map(\.description).joined(separator: ", "))")

        let signal = await Support.waitForTerminationSignal()
        logger.info("received signal \(signal), shutting down")
        await tcp.shutdown()
        await node.shutdown()
        directory.remove(name: name)
        try? await group.shutdownGracefully()
        return 0
    }
}

struct MessageSendCommand {
    let arguments: ParsedArguments
    init(_ arguments: ParsedArguments) { self.arguments = arguments }

    func run() async throws -> Int32 {
        _ = try Support.bootstrapLogging(level: arguments.value("log-level") ?? "warning")
        let timeout = try Support.parseDuration(arguments.value("timeout") ?? "10s")
        let to = arguments.value("to") ?? ""
        let text = arguments.value("message") ?? ""
        let raw = arguments.flag("raw")
        let directory = NodeDirectory(stateDirectory: Support.stateDirectory(arguments.value("state-dir")))

        let route: Route
        do {
            let multiaddr = try Multiaddr(parsing: to)
            route = try multiaddr.route(resolveNode: { directory.lookup(name: $0) })
        } catch {
            throw CommandFailure("\(error)", status: 2)
        }

        let group = Commands.makeEventLoopGroup()
        let node = Node(logger: Logger(label: "ockam-edge"))
        let tcp = TCPTransport(node: node, group: group)
        let payload = raw ? Array(text.utf8) : BARE.encodeString(text)
        let result: Result<LocalMessage, any Error>
        do {
            result = .success(try await node.request(to: route, payload: payload, timeout: timeout))
        } catch {
            result = .failure(error)
        }
        await tcp.shutdown()
        await node.shutdown()
        try? await group.shutdownGracefully()

        switch result {
        case .success(let reply):
            if !raw, let decoded = try? BARE.decodeString(reply.payload) {
                print(decoded)
            } else {
                print(String(decoding: reply.payload, as: UTF8.self))
            }
            return 0
        case .failure(let error as NodeError):
            if case .timeout = error { throw CommandFailure("no reply from \(to) within \(timeout)") }
            throw CommandFailure("cannot send to \(to): \(error)")
        case .failure(let error):
            throw CommandFailure("cannot send to \(to): \(error)")
        }
    }
}
