// `message send` and `secure-channel …`: clients of a node (directly over TCP, or through its control socket).
import EdgeAgent
import EdgeCLI
import EdgeConfig
import EdgeControl
import EdgeIdentity
import EdgeIdentityStore
import EdgeNode
import EdgeRouting
import EdgeSecureChannel
import EdgeTransportBLE
import EdgeTransportSerial
import EdgeTransportTCP
import EdgeVault
import EdgeWire
import Logging
import NIOCore
import NIOPosix
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif


// MARK: - message send

struct MessageSendCommand {
    static let spec = CommandSpec(
        "send", abstract: "Send a message to a route and print the reply.",
        discussion: """
            The message is sent as a BARE string (what Ockam's 'message send' sends) from a temporary address; the
            first reply is printed. Routes are multiaddrs: /ip4/<a>/tcp/<port>, /dnsaddr/<host>/tcp/<port>,
            /ip6/<a>/tcp/<port>, /node/<name>, /service/<name>, /worker/<address>, and /secure/<listener>, which opens
            an end-to-end secure channel to that listener over the route so far and continues through it. Several TCP
            hops are allowed; each node on the way forwards to the next.

            Without --from, the command runs its own short-lived node with a fresh identity (or --identity from the
            vault). With --from <node>, the running node sends it (using its identity and existing channels).
            """,
        examples: [
            "ockam-edge message send /ip4/127.0.0.1/tcp/4000/service/uppercase hello",
            "ockam-edge message send /ip4/127.0.0.1/tcp/4000/secure/api/service/uppercase hello",
            "ockam-edge message send /node/gateway/node/cloud/secure/api/service/echo hi --timeout 3s",
            "ockam-edge message send --from n1 /service/<channel>/service/uppercase over-an-existing-channel",
            "ockam-edge message send --from sensor /serial/uplink/service/sensors 't=21.5 n={n}' --count 600 --interval 100ms",
        ],
        options: [
            OptionSpec("timeout", value: "duration", help: "How long to wait for the reply.", default: "10s"),
            .flag("raw", help: "Send the text as raw bytes and print the reply's raw bytes (for 'echo')."),
            OptionSpec("from", value: "node", help: "Send through this running node (via its control socket)."),
            OptionSpec("identity", value: "name", help: "Use this vault identity instead of a fresh one."),
            OptionSpec("count", value: "n", help: "Send n messages ({n} in the text becomes 0, 1, …); print every reply.", default: "1"),
            OptionSpec("interval", value: "duration", help: "Pause between messages when --count > 1.", default: "0s"),
        ] + TrustOptions.all + [VaultOptionsCLI.vault, VaultOptionsCLI.vaultKey, Commands.logLevel, Commands.logFormat, Commands.stateDir],
        arguments: [
            ArgumentSpec("to", help: "Destination multiaddr."),
            ArgumentSpec("message", help: "Text to send."),
        ])

    let arguments: ParsedArguments
    init(_ arguments: ParsedArguments) { self.arguments = arguments }

    func run() async throws -> Int32 {
        _ = try Support.bootstrapLogging(level: arguments.value("log-level") ?? "warning", format: arguments.value("log-format"))
        let timeout = try Support.parseDuration(arguments.value("timeout") ?? "10s")
        let to = arguments.value("to") ?? ""
        let text = arguments.value("message") ?? ""
        let raw = arguments.flag("raw")
        let directory = NodeDirectory(stateDirectory: Support.stateDirectory(arguments.value("state-dir")))
        let count = try Support.positiveCount(arguments, "count", default: 1)
        let interval = try Support.parseDuration(arguments.value("interval") ?? "0s")
        /// The i-th message's text and the pause before it.
        func message(_ i: Int) -> String { text.replacing("{n}", with: String(i)) }
        func pause(before i: Int) async throws { if i > 0 && interval > .zero { try await Task.sleep(for: interval) } }

        let segments: [Multiaddr.RouteSegment]
        if to.contains("/node/") { try directory.checkSafe() }  // say why, rather than "unknown node"
        do {
            segments = try Multiaddr(parsing: to).routeSegments(resolveNode: { directory.lookup(name: $0) })
        } catch {
            throw CommandFailure("\(error)", status: 2)
        }

        if let from = arguments.value("from") {
            for i in 0..<count {
                try await pause(before: i)
                let reply = try await SecureChannelCommands.call(
                    .sendMessage(to: to, message: message(i), timeout: timeout, raw: raw), node: from, directory: directory)
                if case .messageReply(let text) = reply { print(text) } else { print(reply.json.serialized()) }
                fflush(nil)
            }
            return 0
        }

        let local: SecureChannelCredentials
        var trust = TrustContext()
        if let identity = arguments.value("identity") {
            let store = try VaultOptionsCLI.openStore(arguments)
            defer { store.vault.close() }
            local = try store.secureChannelCredentials(for: identity)
            trust = try TrustOptions.context(arguments, storedAuthorities: store.authorities().map(\.identity))
        } else {
            local = try SecureChannelCredentials.ephemeral()
            trust = try TrustOptions.context(arguments)
        }
        let options = SecureChannelOptions(
            trust: trust, suite: try TrustOptions.suite(arguments), handshakeTimeout: timeout)

        let group = Commands.makeEventLoopGroup()
        let node = Node(logger: Logger(label: "ockam-edge"))
        // --timeout bounds the connect too, and the close afterwards waits briefly: the replies prove delivery, and a
        // peer that does not read must not add seconds to the command.
        var tcpOptions = TCPTransportOptions()
        tcpOptions.connectTimeout = min(tcpOptions.connectTimeout, timeout)
        tcpOptions.shutdownFlushTimeout = .milliseconds(500)
        let tcp = TCPTransport(node: node, group: group, options: tcpOptions)
        let channels = SecureChannels(node: node, local: local)
        func payload(_ i: Int) -> [UInt8] { raw ? Array(message(i).utf8) : BARE.encodeString(message(i)) }
        func show(_ reply: LocalMessage) {
            if !raw, let decoded = try? BARE.decodeString(reply.payload) {
                print(decoded)
            } else {
                print(String(decoding: reply.payload, as: UTF8.self))
            }
            fflush(nil)
        }
        let result: Result<LocalMessage, any Error>
        do {
            let (route, opened) = try await channels.route(for: segments, options: options)
            for i in 0..<count - 1 {
                try await pause(before: i)
                show(try await channels.request(to: route, payload: payload(i), timeout: timeout, through: opened))
            }
            try await pause(before: count - 1)
            result = .success(
                try await channels.request(to: route, payload: payload(count - 1), timeout: timeout, through: opened))
        } catch {
            result = .failure(error)
        }
        // What happened to the connection, if it closed (a wrong version byte, garbage, an immediate close): read
        // before the shutdown below, which closes the connections itself.
        let closed = segments.lazy.compactMap { segment -> String? in
            guard case .address(let hop) = segment, hop.transportType == .tcp else { return nil }
            return tcp.closeReason(peer: hop.valueString).map { "the connection to \(hop.valueString) closed: \($0)" }
        }.first
        await channels.closeAll()
        await tcp.shutdown()
        await node.shutdown()
        try? await group.shutdownGracefully()

        switch result {
        case .success(let reply):
            show(reply)
            return 0
        case .failure(let error):
            let counters = channels.counters
            if counters.closesReceived > 0 && counters.messagesDecrypted == counters.closesReceived {
                throw CommandFailure(
                    "the peer closed the secure channel right after the handshake: its trust policy refused "
                        + "this identity (\(local.identity.identifier))")
            }
            if case NodeError.timeout = error {
                throw CommandFailure("no reply from \(to) within \(timeout)" + (closed.map { " (\($0))" } ?? ""))
            }
            if case NodeError.linkClosed = error {  // at once, not after --timeout
                throw CommandFailure("no reply from \(to): " + (closed ?? "the connection closed before a reply arrived"))
            }
            throw CommandFailure("cannot send to \(to): \(error)" + (closed.map { " (\($0))" } ?? ""))
        }
    }
}

// MARK: - secure-channel

enum SecureChannelCommands {
    static let from = OptionSpec("from", value: "node", help: "The running node to act on.", default: "default")

    static let spec = CommandSpec(
        "secure-channel", abstract: "Create, inspect and delete secure channels of a running node.",
        discussion: "These commands talk to the node through its control socket (see 'node run').",
        subcommands: [
            CommandSpec(
                "create", abstract: "Open a secure channel from a node (prints its address, /service/<hex>).",
                discussion: "Without /secure/ in --to, the channel goes to the 'api' listener at the end of the route.",
                examples: [
                    "ockam-edge secure-channel create --from n1 --to /ip4/127.0.0.1/tcp/4001/secure/api",
                    "ockam-edge message send --from n1 $(ockam-edge secure-channel create --from n1 --to /node/n2)/service/echo hi",
                ],
                options: [
                    from, OptionSpec("to", value: "multiaddr", help: "Route to the listener."),
                    OptionSpec("timeout", value: "duration", help: "Handshake timeout.", default: "30s"),
                    VaultOptionsCLI.json, Commands.stateDir,
                ]),
            CommandSpec(
                "list", abstract: "List a node's secure channels.", examples: ["ockam-edge secure-channel list --from n1 --json"],
                options: [from, VaultOptionsCLI.json, Commands.stateDir]),
            CommandSpec(
                "show", abstract: "Show one channel.", examples: ["ockam-edge secure-channel show --from n1 /service/8f3c…"],
                options: [from, VaultOptionsCLI.json, Commands.stateDir],
                arguments: [ArgumentSpec("address", help: "Channel address (/service/<hex>).")]),
            CommandSpec(
                "delete", abstract: "Close a channel (both sides).",
                examples: ["ockam-edge secure-channel delete --from n1 /service/8f3c…"],
                options: [from, VaultOptionsCLI.json, Commands.stateDir],
                arguments: [ArgumentSpec("address", help: "Channel address (/service/<hex>).")]),
        ])

    static let statusSpec = CommandSpec(
        "status", abstract: "Show a running node's identity, transports, channels and counters.",
        examples: ["ockam-edge status --from gateway --json"], options: [from, VaultOptionsCLI.json, Commands.stateDir])

    /// Sends a command to a node's control socket; returns the reply of an `ok` response.
    static func call(_ command: ControlCommand, node: String, directory: NodeDirectory) async throws -> ControlReply {
        try NodeDirectory.validate(name: node)
        try directory.checkSafe()
        try directory.checkSocket(name: node)
        let group = Commands.makeEventLoopGroup()
        let response: ControlResponse
        do {
            defer { group.shutdownGracefully { _ in } }
            response = try await ControlClient.send(
                command, path: directory.socketPath(name: node).string, group: group, timeout: .seconds(120))
        } catch let error as ControlError {
            if case .notRunning = error {
                throw CommandFailure("node '\(node)' is not running (no control socket in \(directory.directory))")
            }
            throw CommandFailure("\(error)")
        }
        switch response {
        case .ok(let reply): return reply
        case .error(let message): throw CommandFailure(message)
        }
    }

    static func run(_ sub: String, _ arguments: ParsedArguments) async throws -> Int32 {
        let directory = NodeDirectory(stateDirectory: Support.stateDirectory(arguments.value("state-dir")))
        let node = arguments.value("from") ?? "default"
        let asJSON = arguments.flag("json")
        let reply: ControlReply
        switch sub {
        case "create":
            guard let to = arguments.value("to") else { throw CommandFailure("missing --to <multiaddr>", status: 2) }
            let timeout = try Support.parseDuration(arguments.value("timeout") ?? "30s")
            reply = try await call(.createChannel(to: to, timeout: timeout), node: node, directory: directory)
            if !asJSON, case .channel(let channel) = reply {
                print(channel.address)
                return 0
            }
        case "list":
            reply = try await call(.listChannels, node: node, directory: directory)
        case "show":
            reply = try await call(.showChannel(address: arguments.value("address") ?? ""), node: node, directory: directory)
        case "delete":
            reply = try await call(.deleteChannel(address: arguments.value("address") ?? ""), node: node, directory: directory)
        case "status":
            reply = try await call(.status, node: node, directory: directory)
        default:
            throw CommandFailure("unknown secure-channel command \(sub)", status: 2)
        }
        print(reply.json.serialized())
        return 0
    }
}
