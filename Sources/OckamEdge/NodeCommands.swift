// `node run`: its flags mapped onto an AgentConfig, then the same runtime `agent` starts from a file (EdgeAgent).
import EdgeAgent
import EdgeCLI
import EdgeConfig
import EdgeIdentity
import EdgeSecureChannel
import EdgeTransportTCP
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif


// MARK: - Trust options shared by node run and message send

enum TrustOptions {
    static let trust = OptionSpec(
        "trust", value: "I…|authority:<hex>",
        help: "Trust this identifier, or holders of credentials from this authority (change history hex). Default: everyone.",
        repeatable: true)
    static let requireAttribute = OptionSpec(
        "require-attribute", value: "key=value", help: "With authority:…, the credential must carry this attribute.",
        repeatable: true)
    static let cipher = OptionSpec(
        "cipher", value: "suite", help: "aes-gcm (Ockam-compatible) or chacha20-poly1305 (ockam-edge peers only).",
        default: "aes-gcm")
    static let all = [trust, requireAttribute, cipher]

    /// Builds the trust context from `--trust` / `--require-attribute`, plus authorities stored in the vault.
    static func context(_ arguments: ParsedArguments, storedAuthorities: [Identity] = []) throws -> TrustContext {
        var identifiers = Set<Identifier>()
        var authorities = storedAuthorities
        var required: [String: String] = [:]
        for pair in arguments.values("require-attribute") {
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
                throw CommandFailure("--require-attribute '\(pair)' must be key=value", status: 2)
            }
            required[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
        }
        for value in arguments.values("trust") {
            if value.hasPrefix("authority:") {
                authorities.append(
                    try Identity.decoding(hex: String(value.dropFirst("authority:".count)), what: "--trust authority:"))
            } else {
                do {
                    identifiers.insert(try Identifier(parsing: value))
                } catch {
                    throw CommandFailure("--trust \(value): expected an identifier (I…) or authority:<change history hex>", status: 2)
                }
            }
        }
        var policies: [TrustPolicy] = []
        if !identifiers.isEmpty { policies.append(.identifiers(identifiers)) }
        for authority in authorities where arguments.values("trust").contains(where: { $0.hasPrefix("authority:") }) {
            policies.append(.credential(authority: authority.identifier, required: required))
        }
        let policy: TrustPolicy = policies.isEmpty ? .everyone : (policies.count == 1 ? policies[0] : .any(policies))
        return TrustContext(policy: policy, authorities: authorities)
    }

    /// `--trust` / `--require-attribute` as the configuration's `trust:` section (checked as ``context(_:storedAuthorities:)`` checks them).
    static func settings(_ arguments: ParsedArguments) throws -> AgentConfig.Trust {
        _ = try context(arguments)
        var trust = AgentConfig.Trust()
        for (index, value) in arguments.values("trust").enumerated() {
            if value.hasPrefix("authority:") {
                trust.authorities.append(
                    AgentConfig.Authority(name: "--trust \(index + 1)", identity: String(value.dropFirst("authority:".count))))
            } else {
                trust.identities.append(value)
            }
        }
        for pair in arguments.values("require-attribute") {
            guard let eq = pair.firstIndex(of: "=") else { continue }  // checked by context(_:)
            trust.requireAttributes[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
        }
        return trust
    }

    static func suite(_ arguments: ParsedArguments) throws(CommandFailure) -> ChannelSuite {
        let text = arguments.value("cipher") ?? "aes-gcm"
        guard let suite = ChannelSuite(rawValue: text) else {
            throw CommandFailure("unknown cipher '\(text)' (aes-gcm or chacha20-poly1305)", status: 2)
        }
        return suite
    }
}

// MARK: - node run

struct NodeRunCommand {
    static let spec = CommandSpec(
        "run", abstract: "Run a node in the foreground until SIGINT/SIGTERM.",
        discussion: """
            Starts a node with the services a stock Ockam node offers to TCP peers (echo: raw echo; uppercase:
            upper-cases a BARE string), an Ockam-compatible TCP listener and a secure channel listener 'api'. The node
            uses the vault's default identity (creating one on first start, as Ockam does). The bound address is
            printed on stdout as 'listening <host:port>'; logs go to stderr. The node registers its name and a control
            socket (<state>/nodes/<name>.sock, mode 0600) so that /node/<name> multiaddrs and 'secure-channel'
            commands reach it.
            """,
        examples: [
            "ockam-edge node run --tcp-listen 127.0.0.1:4000",
            "ockam-edge node run --name gateway --tcp-listen 0.0.0.0:4000 --trust I923829d0…4819",
            "ockam-edge node run --name cloud --trust authority:$(cat authority.hex) --require-attribute role=sensor",
        ],
        options: [
            OptionSpec("name", value: "name", help: "Node name, for /node/<name> multiaddrs.", default: "default"),
            OptionSpec(
                "tcp-listen", value: "host:port", help: "TCP listener address (port 0 picks a free port).",
                default: "127.0.0.1:4000"),
            OptionSpec(
                "tcp-frame-timeout", value: "duration",
                help: "Close a TCP connection that started a frame and did not finish it within this + length / --tcp-frame-min-rate.",
                default: Quantity.text(of: RuntimeOptions.tcpDefaults.frameTimeout)),
            OptionSpec(
                "tcp-frame-min-rate", value: "bytes/s", help: "Slowest average rate an inbound TCP frame may arrive at (beyond --tcp-frame-timeout).",
                default: "\(RuntimeOptions.tcpDefaults.frameMinRate)"),
            OptionSpec(
                "tcp-max-connections", value: "n", help: "Connections the TCP listener serves at once; more are closed and counted.",
                default: "\(RuntimeOptions.tcpDefaults.maxConnections)"),
            OptionSpec(
                "tcp-max-connections-per-host", value: "n|off",
                help: "Connections the TCP listener serves at once from one IPv4 address or IPv6 /64 (loopback exempt); more are closed and counted.",
                default: RuntimeOptions.tcpDefaults.maxConnectionsPerHost.map { "\($0)" } ?? "off"),
            OptionSpec("identity", value: "name", help: "Vault identity to use (default: the vault's default identity)."),
            OptionSpec(
                "secure-listener", value: "name", help: "Secure channel listener address(es).", default: "api",
                repeatable: true),
            .flag("no-secure-listener", help: "Do not start a secure channel listener."),
            OptionSpec(
                "handshake-timeout", value: "duration", help: "Give up on a handshake after this long.",
                default: Quantity.text(of: RuntimeOptions.listenerDefaults.handshakeTimeout)),
            OptionSpec(
                "max-half-open", value: "n",
                help: "Handshakes in progress per secure channel listener; when full, the oldest of the busiest source is evicted.",
                default: "\(RuntimeOptions.listenerDefaults.maxHalfOpen)"),
            OptionSpec(
                "max-half-open-per-source", value: "n",
                help: "Handshakes in progress from one connection; its further message 1s are dropped and counted.",
                default: "\(RuntimeOptions.listenerDefaults.maxHalfOpenPerSource)"),
            OptionSpec(
                "channel-idle-timeout", value: "duration|off",
                help: "Close (with Close) an established secure channel on which nothing arrived for this long.",
                default: RuntimeOptions.listenerDefaults.idleTimeout.map { Quantity.text(of: $0) } ?? "off"),
            OptionSpec(
                "max-channels", value: "n",
                help: "Established channels per secure channel listener; a new one closes the least recently used.",
                default: "\(RuntimeOptions.listenerDefaults.maxChannels)"),
            .flag("no-forwarding", help: "Forward no message from a link or secure channel to a remote hop (overrides --forward-to)."),
            OptionSpec(
                "forward-to", value: "host:port|host:*|a.b.c.d/len:port",
                help: "Let messages from links and secure channels be forwarded to these TCP destinations (default: none).",
                repeatable: true),
            .flag("private-services", help: "Make echo and uppercase reachable only locally and through secure channels."),
            OptionSpec(
                "tcp-max-unfinished-bytes", value: "bytes",
                help: "Bytes of unfinished inbound frames the TCP listener's connections may hold together; past it the one holding the most is closed.",
                default: "\(RuntimeOptions.tcpDefaults.maxUnfinishedBytes)"),
            OptionSpec(
                "tcp-max-unfinished-bytes-per-host", value: "bytes|off",
                help: "The same per IPv4 address or IPv6 /64 (at least 16777220, one maximum frame).",
                default: RuntimeOptions.tcpDefaults.maxUnfinishedBytesPerHost.map { "\($0)" } ?? "off"),
            OptionSpec(
                "tcp-outgoing-idle-timeout", value: "duration|off",
                help: "Close an outgoing TCP connection on which nothing was read or written for this long.",
                default: RuntimeOptions.tcpDefaults.outgoingIdleTimeout.map { Quantity.text(of: $0) } ?? "off"),
            OptionSpec(
                "tcp-max-outgoing", value: "n", help: "Outgoing TCP connections open or opening at once; more fail and are counted.",
                default: "\(RuntimeOptions.tcpDefaults.maxOutgoing)"),
            OptionSpec(
                "serial", value: "path[,baud=…][,mode=listen|connect][,name=…]",
                help: "Attach a serial port (docs/serial-framing.md); route to the device with /serial/<name>.",
                repeatable: true),
            OptionSpec(
                "ble-listen", value: "[hciN,]psm=0x81[,mtu=…][,security=…]",
                help: "Accept BLE L2CAP LE credit-based channels (docs/ble.md).", repeatable: true),
            OptionSpec(
                "ble-connect", value: "<bdaddr>[/public|/random],psm=0x81[,…]",
                help: "Keep a BLE link to a device (reconnects with backoff); route to it with 4#<bdaddr>/…,psm=….",
                repeatable: true),
        ] + TrustOptions.all + [VaultOptionsCLI.vault, VaultOptionsCLI.vaultKey, Commands.logLevel, Commands.logFormat, Commands.stateDir])

    let arguments: ParsedArguments
    init(_ arguments: ParsedArguments) { self.arguments = arguments }

    func run() async throws -> Int32 {
        _ = try Support.bootstrapLogging(level: arguments.value("log-level"), format: arguments.value("log-format"))
        let terminationSignals = TerminationSignals()  // before 'listening' is printed: see TerminationSignals
        let (config, outgoing) = try configuration()
        umask(0o077)  // everything the node creates is private to its user
        let launch = AgentLaunch(source: .commandLine, createsNamedIdentity: false, outgoingChannels: outgoing)
        let node = try await Agent.start(config: config, launch: launch)
        print("listening \(node.listening.joined(separator: " "))")
        fflush(nil)
        let signal = await terminationSignals.wait()
        var logger = Logger(label: "ockam-edge")
        logger[metadataKey: "node"] = "\(config.node.name)"
        logger.info("received signal \(signal), shutting down")
        await node.shutdown()
        return 0
    }

    /// The flags as the runtime's configuration (what `agent` reads from its file), and the settings of the secure
    /// channels the node opens itself (the listener flags, also with `--no-secure-listener`).
    func configuration() throws -> (AgentConfig, AgentConfig.SecureChannelListener) {
        var config = AgentConfig()
        config.node.name = arguments.value("name") ?? "default"
        try NodeDirectory.validate(name: config.node.name)
        config.node.stateDirectory = arguments.value("state-dir")
        config.node.forwarding = !arguments.flag("no-forwarding")
        config.node.publicServices = !arguments.flag("private-services")
        let listen = arguments.value("tcp-listen") ?? "127.0.0.1:4000"
        _ = try Support.parseHostPort(listen)
        config.tcpListen = [listen]
        config.tcp = try tcpSettings()
        for text in arguments.values("forward-to") {
            do { _ = try TCPForwardRule(parsing: text) } catch { throw CommandFailure("--forward-to: \(error)") }
            config.forwardAllow.append(AgentConfig.ForwardRule(text: text, line: 0))
        }
        config.vault.path = try VaultOptionsCLI.path(arguments).string
        config.vault.keyFile = VaultOptionsCLI.keyFile(arguments)?.string
        config.identity = arguments.value("identity")
        config.trust = try TrustOptions.settings(arguments)
        var listener = try listenerSettings()
        listener.cipher = try TrustOptions.suite(arguments).rawValue
        config.secureChannelListeners =
            arguments.flag("no-secure-listener")
            ? []
            : arguments.values("secure-listener").map { name in
                var named = listener
                named.name = name
                return named
            }
        for (flag, key) in [("serial", "--serial"), ("ble-listen", "--ble-listen"), ("ble-connect", "--ble-connect")] {
            let links = arguments.values(flag).map { AgentConfig.DeviceLink(spec: $0, line: 0, key: key) }
            switch flag {
            case "serial": config.serialPorts = links
            case "ble-listen": config.bleListen = links
            default: config.bleConnect = links
            }
        }
        return (config, listener)
    }

    /// The `--tcp-…` flags as the configuration's TCP settings (finding F2 in docs/security.md); unset flags keep
    /// the settings' defaults.
    func tcpSettings() throws -> AgentConfig.TCPSettings {
        var settings = AgentConfig.TCPSettings()
        if let text = arguments.value("tcp-frame-timeout") { settings.frameTimeout = try Support.parseDuration(text) }
        settings.frameMinRate = try Support.positiveCount(arguments, "tcp-frame-min-rate", default: settings.frameMinRate)
        settings.maxConnections = try Support.positiveCount(arguments, "tcp-max-connections", default: settings.maxConnections)
        settings.maxConnectionsPerHost = try Support.positiveCountOrOff(
            arguments, "tcp-max-connections-per-host", default: settings.maxConnectionsPerHost)
        settings.maxOutgoing = try Support.positiveCount(arguments, "tcp-max-outgoing", default: settings.maxOutgoing)
        if let text = arguments.value("tcp-outgoing-idle-timeout") {
            settings.outgoingIdleTimeout = try Support.parseOptionalDuration(text)
        }
        settings.maxUnfinishedBytes = try Support.positiveCount(
            arguments, "tcp-max-unfinished-bytes", default: settings.maxUnfinishedBytes)
        settings.maxUnfinishedBytesPerHost = try Support.positiveCountOrOff(
            arguments, "tcp-max-unfinished-bytes-per-host", default: settings.maxUnfinishedBytesPerHost)
        let minimum = ockamTCPMaxFrameSize + 4
        for (name, value) in [
            ("tcp-max-unfinished-bytes", settings.maxUnfinishedBytes),
            ("tcp-max-unfinished-bytes-per-host", settings.maxUnfinishedBytesPerHost ?? minimum),
        ] where value < minimum {
            throw CommandFailure("--\(name): at least \(minimum) (one maximum-size frame and its length prefix)")
        }
        return settings
    }

    /// The secure channel listener flags as the configuration's listener settings; unset flags keep its defaults.
    func listenerSettings() throws -> AgentConfig.SecureChannelListener {
        var settings = AgentConfig.SecureChannelListener()
        if let text = arguments.value("handshake-timeout") { settings.handshakeTimeout = try Support.parseDuration(text) }
        settings.maxHalfOpen = try Support.positiveCount(arguments, "max-half-open", default: settings.maxHalfOpen)
        settings.maxHalfOpenPerSource = try Support.positiveCount(
            arguments, "max-half-open-per-source", default: settings.maxHalfOpenPerSource)
        if let text = arguments.value("channel-idle-timeout") { settings.idleTimeout = try Support.parseOptionalDuration(text) }
        settings.maxChannels = try Support.positiveCount(arguments, "max-channels", default: settings.maxChannels)
        return settings
    }
}
