// `ockam-edge agent`: the gateway agent driven by a YAML configuration, with reload, drain and metrics.
import Dispatch
import EdgeCLI
import EdgeConfig
import EdgeControl
import EdgeIdentity
import EdgeIdentityStore
import EdgeNode
import EdgeRouting
import EdgeSecureChannel
import EdgeTransportTCP
import EdgeVault
import EdgeWire
import Logging
import NIOCore
import NIOPosix
import Synchronization
import SystemPackage

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
        ])

    let arguments: ParsedArguments
    init(_ arguments: ParsedArguments) { self.arguments = arguments }

    static func load(_ path: String) throws -> AgentConfig {
        guard let text = Support.readFile(FilePath(path), limit: YAML.maxBytes + 1) else {
            throw CommandFailure("cannot read \(path)")
        }
        guard text.utf8.count <= YAML.maxBytes else { throw CommandFailure("\(path): larger than \(YAML.maxBytes) bytes") }
        let config = try AgentConfig.parse(text, file: path)
        // Meaning, not just syntax: identities decode, multiaddrs parse.
        for authority in config.trust.authorities {
            _ = try CredentialCommands.decodeIdentity(authority.identity, what: "\(path): trust.authorities \(authority.name)")
        }
        for relay in config.relays {
            do { _ = try Multiaddr(parsing: relay.hub) } catch { throw CommandFailure("\(path): relays.register \(relay.name).hub: \(error)") }
        }
        for inlet in config.inlets {
            do { _ = try Multiaddr(parsing: inlet.to) } catch { throw CommandFailure("\(path): portals.inlets \(inlet.listen).to: \(error)") }
        }
        return config
    }

    func run() async throws -> Int32 {
        let path = arguments.value("config") ?? "/etc/ockam-edge/agent.yaml"
        let config = try Self.load(path)
        if arguments.flag("check-config") {
            print("\(path): ok")
            return 0
        }
        _ = try Support.bootstrapLogging(level: config.node.logLevel)
        umask(0o077)
        let agent = try await Agent.start(config: config, configPath: path)
        await agent.runUntilTerminated()
        return 0
    }
}

/// The running agent: node, transports, channels, relays, portals, sessions, metrics, control socket.
final class Agent: Sendable {
    let logger: Logger
    let configPath: String
    let group: MultiThreadedEventLoopGroup
    let node: Node
    let tcp: TCPTransport
    let channels: SecureChannels
    let store: IdentityStore
    let directory: NodeDirectory
    let name: String
    private let trustState: Mutex<TrustContext>
    private let live = Mutex(Live())

    struct Live: ~Copyable {
        var config = AgentConfig()
        var control: ControlServer?
        var metrics: MetricsServer?
        var relaySessions: [String: Session] = [:]  // by relay name
        var inlets: [String: (Inlet, Session)] = [:]  // by listen address
        var outlets: [String: AgentConfig.Outlet] = [:]  // by address
        var reloads: UInt64 = 0
        var reloadFailures: UInt64 = 0
    }

    private init(
        logger: Logger, configPath: String, group: MultiThreadedEventLoopGroup, node: Node, tcp: TCPTransport,
        channels: SecureChannels, store: IdentityStore, directory: NodeDirectory, name: String, trust: TrustContext
    ) {
        self.logger = logger
        self.configPath = configPath
        self.group = group
        self.node = node
        self.tcp = tcp
        self.channels = channels
        self.store = store
        self.directory = directory
        self.name = name
        trustState = Mutex(trust)
    }

    static func trustContext(_ config: AgentConfig, store: IdentityStore) throws -> TrustContext {
        var identifiers = Set<Identifier>()
        for text in config.trust.identities { identifiers.insert(try Identifier(parsing: text)) }
        var authorities = try store.authorities().map(\.identity)
        var policies: [TrustPolicy] = []
        if !identifiers.isEmpty { policies.append(.identifiers(identifiers)) }
        for authority in config.trust.authorities {
            let identity = try CredentialCommands.decodeIdentity(authority.identity, what: "authority \(authority.name)")
            authorities.append(identity)
            policies.append(.credential(authority: identity.identifier, required: config.trust.requireAttributes))
        }
        let policy: TrustPolicy = policies.isEmpty ? .everyone : (policies.count == 1 ? policies[0] : .any(policies))
        return TrustContext(policy: policy, authorities: authorities)
    }

    static func start(config: AgentConfig, configPath: String) async throws -> Agent {
        var logger = Logger(label: "ockam-edge")
        logger[metadataKey: "node"] = "\(config.node.name)"
        let vaultPath = config.vault.path.map { FilePath($0) } ?? Vault.defaultPath()
        guard let vaultPath else { throw CommandFailure("no vault path: set vault.path") }
        let options = try config.vault.keyFile.map { VaultOptions(encryptionKey: try Vault.loadEncryptionKey(from: FilePath($0))) }
            ?? VaultOptions()
        let store = IdentityStore(vault: try Vault.open(at: vaultPath, options: options))
        let storedDefault = try store.defaultName()
        let identityName = config.identity ?? storedDefault ?? "default"
        if (try? store.get(identityName)) == nil {
            let created = try store.create(name: identityName)
            logger.notice("created identity \(created.identity.identifier) (\(identityName)) in \(vaultPath)")
        }
        let local = try store.secureChannelCredentials(for: identityName)
        let trust = try trustContext(config, store: store)
        if case .everyone = trust.policy {
            logger.notice("secure channels accept every identity that proves itself; restrict with trust: in \(configPath)")
        }
        let group = Commands.makeEventLoopGroup()
        let node = Node(logger: logger, options: Node.Options(forwardTransportMessages: config.node.forwarding))
        try node.startDefaultServices()
        let tcp = TCPTransport(node: node, group: group)
        let channels = SecureChannels(node: node, local: local, logger: logger)
        let directory = NodeDirectory(stateDirectory: Support.stateDirectory(config.node.stateDirectory))
        let agent = Agent(
            logger: logger, configPath: configPath, group: group, node: node, tcp: tcp, channels: channels, store: store,
            directory: directory, name: config.node.name, trust: trust)

        for listener in config.secureChannelListeners {
            try channels.startListener(name: listener.name, options: try agent.listenerOptions(listener))
        }
        if config.relayService { try node.startRelayService() }
        var bound: [String] = []
        for listen in config.tcpListen {
            let (host, port) = try Support.parseHostPort(listen)
            let address = try await tcp.listen(host: host, port: port)
            bound.append("\(address.ipAddress ?? host):\(address.port ?? port)")
        }
        try directory.record(name: config.node.name, address: bound.first ?? "")
        let controller = NodeController(
            name: config.node.name, node: node, tcp: tcp, channels: channels,
            options: try agent.listenerOptions(config.secureChannelListeners.first ?? AgentConfig.SecureChannelListener()),
            listen: bound.first ?? "", directory: directory, listeners: config.secureChannelListeners.map(\.name))
        let control = try await ControlServer.start(
            path: directory.socketPath(name: config.node.name).string, group: group, logger: logger,
            handler: { request in
                if request.command == "metrics" { return .ok(agent.renderMetrics()) }
                return await controller.handle(request)
            })
        var metrics: MetricsServer?
        if let listen = config.metricsListen {
            let (host, port) = try Support.parseHostPort(listen)
            metrics = try await MetricsServer.start(host: host, port: port, group: group, render: { agent.renderMetrics() })
            logger.info("metrics on http://\(listen)/metrics")
        }
        agent.live.withLock {
            $0.control = control
            $0.metrics = metrics
        }
        try await agent.apply(config)
        print("listening \(bound.joined(separator: " "))")
        fflush(nil)
        logger.info("agent '\(config.node.name)' running as \(local.identity.identifier) (config \(configPath))")
        return agent
    }

    func listenerOptions(_ listener: AgentConfig.SecureChannelListener) throws -> SecureChannelOptions {
        SecureChannelOptions(
            trust: trustState.withLock { $0 }, suite: ChannelSuite(rawValue: listener.cipher) ?? .aes256GCM,
            handshakeTimeout: try Support.parseDuration(listener.handshakeTimeout), maxHalfOpenHandshakes: listener.maxHalfOpen)
    }

    // MARK: Applying (start and SIGHUP)

    /// Brings relays, outlets and inlets in line with `config`, touching only what changed.
    func apply(_ config: AgentConfig) async throws {
        let previous = live.withLock { $0.config }
        // Relays.
        let wantedRelays = Dictionary(config.relays.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for relay in previous.relays where wantedRelays[relay.name] != relay {
            if let session = live.withLock({ $0.relaySessions.removeValue(forKey: relay.name) }) { await session.stop() }
        }
        for relay in config.relays where live.withLock({ $0.relaySessions[relay.name] }) == nil {
            let session = relaySession(relay)
            live.withLock { $0.relaySessions[relay.name] = session }
            session.start()
        }
        // Outlets.
        for outlet in previous.outlets where !config.outlets.contains(outlet) {
            await node.stopWorker(at: .local(outlet.address))
            _ = live.withLock { $0.outlets.removeValue(forKey: outlet.address) }
        }
        for outlet in config.outlets where live.withLock({ $0.outlets[outlet.address] }) == nil {
            let allowed = Set(try outlet.allow.map { try Identifier(parsing: $0) })
            let policy: TrustPolicy = allowed.isEmpty ? trustState.withLock { $0.policy } : .identifiers(allowed)
            try node.startWorker(
                try OutletListener(target: outlet.target, group: group), at: .local(outlet.address),
                options: WorkerOptions(accessControl: channels.accessControl(policy)))
            live.withLock { $0.outlets[outlet.address] = outlet }
        }
        // Inlets.
        for inlet in previous.inlets where !config.inlets.contains(inlet) {
            if let (running, session) = live.withLock({ $0.inlets.removeValue(forKey: inlet.listen) }) {
                await session.stop()
                await running.stop()
            }
        }
        for inlet in config.inlets where live.withLock({ $0.inlets[inlet.listen] }) == nil {
            let (host, port) = try Support.parseHostPort(inlet.listen)
            let running = try await Inlet.start(node: node, listen: host, port: port, outletRoute: [], group: group)
            let session = inletSession(inlet, running)
            live.withLock { $0.inlets[inlet.listen] = (running, session) }
            session.start()
        }
        live.withLock { $0.config = config }
    }

    /// Resolves a multiaddr (opening secure channels for `/secure/` hops) with the agent's trust.
    func resolve(_ text: String) async throws -> Route {
        let segments = try Multiaddr(parsing: text).routeSegments(resolveNode: { self.directory.lookup(name: $0) })
        let options = SecureChannelOptions(trust: trustState.withLock { $0 })
        return try await channels.route(for: segments, options: options).route
    }

    /// Pings the node at the end of `route` (its `echo` service), as Ockam's sessions do.
    func pingNode(_ route: Route) async throws {
        let nonce = (0..<8).map { _ in UInt8.random(in: 0...255) }
        let reply = try await node.request(to: route.appending([.local("echo")]), payload: nonce, timeout: .seconds(5))
        guard reply.payload == nonce else { throw NodeError.timeout(.seconds(5)) }
    }

    func relaySession(_ relay: AgentConfig.Relay) -> Session {
        Session(
            name: "relay \(relay.name)", logger: logger,
            establish: { [self] in
                let hub = try await resolve(relay.hub)
                _ = try await node.registerRelay(name: relay.name, hubRoute: hub)
                return hub
            },
            ping: { [self] hub in try await pingNode(hub) })
    }

    func inletSession(_ inlet: AgentConfig.Inlet, _ running: Inlet) -> Session {
        Session(
            name: "inlet \(inlet.listen)", logger: logger,
            establish: { [self] in try await resolve(inlet.to) },
            ping: { [self] route in try await pingNode(Route(route.addresses.dropLast())) },
            onChange: { route in if let route { running.updateOutletRoute(route) } })
    }

    /// SIGHUP: re-read the file; apply it if valid, otherwise keep running as before.
    func reload() async {
        do {
            let config = try AgentCommand.load(configPath)
            let old = live.withLock { $0.config }
            if config.tcpListen != old.tcpListen || config.secureChannelListeners != old.secureChannelListeners
                || config.vault != old.vault || config.identity != old.identity || config.node != old.node
                || config.metricsListen != old.metricsListen
            {
                logger.warning("reload: node, vault, identity, listener and metrics settings need a restart; applying the rest")
            }
            let trust = try Agent.trustContext(config, store: store)
            trustState.withLock { $0 = trust }
            // Revocation: channels whose peer the new policy no longer admits are closed at once.
            for channel in channels.channels {
                let peer = PeerInfo(identifier: channel.peer, attributes: channels.attributes(of: channel.peer))
                if !trust.policy.allows(peer) {
                    logger.notice("reload: closing channel \(channel.encryptor) with \(channel.peer) (no longer trusted)")
                    await channels.close(channel.encryptor)
                }
            }
            for listener in old.secureChannelListeners {
                await node.stopWorker(at: .local(listener.name))
                try channels.startListener(name: listener.name, options: try listenerOptions(listener))
            }
            try await apply(config)
            live.withLock { $0.reloads += 1 }
            logger.info("reloaded \(configPath)")
        } catch {
            live.withLock { $0.reloadFailures += 1 }
            logger.error("reload failed, keeping the running configuration: \(error)")
        }
    }

    // MARK: Lifecycle

    func runUntilTerminated() async {
        let (signals, continuation) = AsyncStream<Int32>.makeStream()
        let queue = DispatchQueue(label: "ockam-edge.signals")
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGHUP, SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            sources.append(source)
        }
        for await number in signals {
            if number == SIGHUP {
                await reload()
            } else {
                logger.info("received signal \(number), draining")
                break
            }
        }
        _ = sources
        await shutdown()
    }

    func shutdown() async {
        let (control, metrics, sessions, inlets) = live.withLock { l in
            (l.control, l.metrics, Array(l.relaySessions.values), Array(l.inlets.values))
        }
        for session in sessions { await session.stop() }
        for (inlet, session) in inlets {
            await session.stop()
            await inlet.stop()
        }
        await channels.closeAll()
        await control?.shutdown()
        await metrics?.stop()
        await tcp.shutdown()
        await node.shutdown()
        directory.remove(name: name)
        store.vault.close()
        try? await group.shutdownGracefully()
        logger.info("agent stopped")
    }

    // MARK: Metrics

    func renderMetrics() -> String {
        let counters = node.counters
        let sc = channels.counters
        let (relays, inlets, reloads, reloadFailures) = live.withLock { l in
            (Array(l.relaySessions.values), Array(l.inlets.values.map(\.1)), l.reloads, l.reloadFailures)
        }
        var p = PrometheusText()
        p.metric(
            "ockam_edge_messages_delivered_total", help: "Messages delivered to workers.", value: Double(counters.delivered))
        p.metric(
            "ockam_edge_messages_dropped_total", type: "counter", help: "Messages dropped, by reason.",
            samples: [
                ([("reason", "unknown_address")], Double(counters.droppedUnknownAddress)),
                ([("reason", "access_denied")], Double(counters.droppedAccessDenied)),
                ([("reason", "worker_stopped")], Double(counters.droppedWorkerStopped)),
                ([("reason", "heartbeat")], Double(counters.droppedHeartbeat)),
                ([("reason", "forwarding_disabled")], Double(counters.droppedForwardingDisabled)),
            ])
        p.metric("ockam_edge_worker_errors_total", help: "Messages a worker failed to handle.", value: Double(counters.workerErrors))
        p.metric(
            "ockam_edge_link_up", type: "gauge", help: "Transport links currently up, by transport.",
            samples: [([("transport", "tcp")], Double(tcp.connections.count))])
        p.metric(
            "ockam_edge_handshakes_total", help: "Secure channel handshakes, by result.",
            samples: [
                ([("result", "ok")], Double(sc.handshakesCompleted)),
                ([("result", "failed")], Double(sc.handshakesFailed)),
                ([("result", "refused_trust")], Double(sc.handshakesRefusedTrust)),
                ([("result", "timeout")], Double(sc.handshakesTimedOut)),
                ([("result", "over_cap")], Double(sc.handshakesDroppedOverCap)),
            ])
        p.metric("ockam_edge_secure_channels_open", type: "gauge", help: "Open secure channels.", value: Double(channels.channels.count))
        p.metric(
            "ockam_edge_secure_channel_messages_total", help: "Secure channel messages, by direction.",
            samples: [
                ([("direction", "encrypted")], Double(sc.messagesEncrypted)),
                ([("direction", "decrypted")], Double(sc.messagesDecrypted)),
            ])
        p.metric(
            "ockam_edge_decryption_failures_total", help: "Rejected secure channel messages (replay, tamper, window).",
            value: Double(sc.decryptionFailures))
        p.metric(
            "ockam_edge_session_up", type: "gauge", help: "Supervised sessions (relays, inlets): 1 up, 0 down.",
            samples: (relays + inlets).map { ([("session", $0.name)], $0.status == .up ? 1 : 0) })
        p.metric(
            "ockam_edge_session_replacements_total", help: "Times a session's route was rebuilt after failing.",
            samples: (relays + inlets).map { ([("session", $0.name)], Double($0.replacements)) })
        p.metric("ockam_edge_config_reloads_total", help: "Successful SIGHUP reloads.", value: Double(reloads))
        p.metric("ockam_edge_config_reload_failures_total", help: "Rejected SIGHUP reloads.", value: Double(reloadFailures))
        return p.text
    }
}
