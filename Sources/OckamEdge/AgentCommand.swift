// `ockam-edge agent`: the gateway agent driven by a YAML configuration, with reload, drain and metrics.
import EdgeSync
import Dispatch
import EdgeBridge
import EdgeCLI
import EdgeConfig
import EdgeControl
import EdgeIdentity
import EdgeIdentityStore
import EdgeNode
import EdgeQueue
import EdgeRouting
import EdgeSecureChannel
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

    static func load(_ path: String) throws -> AgentConfig {
        let text = try Support.readRegularFile(FilePath(path), limit: YAML.maxBytes + 1)
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
        for bridge in config.bridges {
            do { _ = try Multiaddr(parsing: bridge.to) } catch { throw CommandFailure("\(path): bridges \(bridge.name).to: \(error)") }
            let limits = BridgeQueueStore.limits(bridge.queue)
            let minimum = 2 * (limits.segmentBytes + limits.maxRecordBytes + 17)
            if bridge.queue.diskBytes < minimum {
                throw CommandFailure(
                    "\(path): bridges \(bridge.name).queue.disk_bytes: at least \(minimum) with memory_bytes \(bridge.queue.memoryBytes) (two segments)")
            }
        }
        try DeviceLinks.validate(
            serial: deviceLinks(config.serialPorts, path), bleListen: deviceLinks(config.bleListen, path),
            bleConnect: deviceLinks(config.bleConnect, path))
        _ = try forwardRules(config, path, lookup: { _ in nil })
        return config
    }

    /// What a link's or secure channel's messages may be forwarded to: `forwarding.allow`, and the TCP hop each
    /// configured uplink starts with (bridges' `to`, relay hubs, inlets' `to`), so a gateway's devices reach the
    /// uplinks its own configuration names and nothing else (docs/routing.md "Flow control").
    static func forwardRules(
        _ config: AgentConfig, _ path: String, lookup: (String) -> String?
    ) throws -> [TCPForwardRule] {
        var rules: [TCPForwardRule] = []
        for rule in config.forwardAllow {
            do { rules.append(try TCPForwardRule(parsing: rule.text)) } catch {
                throw CommandFailure("\(path):\(rule.line): forwarding.allow: \(error)")
            }
        }
        return rules + uplinks(config, lookup: lookup).map { TCPForwardRule(exactly: $0) }
    }

    /// The TCP hop each configured uplink starts with: bridges' `to`, relay hubs, inlets' `to`.
    static func uplinks(_ config: AgentConfig, lookup: (String) -> String?) -> [TCPDestination] {
        (config.bridges.map(\.to) + config.relays.map(\.hub) + config.inlets.map(\.to)).compactMap { text in
            guard case .address(let first)? = (try? Multiaddr(parsing: text).routeSegments(resolveNode: lookup))?.first,
                first.transportType == .tcp
            else { return nil }
            return try? TCPDestination(parsing: first.valueString)
        }
    }

    static func deviceLinks(_ links: [AgentConfig.DeviceLink], _ path: String) -> [DeviceLinkSpec] {
        links.map { DeviceLinkSpec(spec: $0.spec, origin: "\(path):\($0.line): \($0.key)") }
    }

    func run() async throws -> Int32 {
        let path = arguments.value("config") ?? "/etc/ockam-edge/agent.yaml"
        let config = try Self.load(path)
        if arguments.flag("check-config") {
            print("\(path): ok")
            return 0
        }
        _ = try Support.bootstrapLogging(level: config.node.logLevel, format: arguments.value("log-format"))
        umask(0o077)
        // Signals are caught before anything starts (and before `listening …` is printed): a supervisor that stops
        // or reloads the agent right after start gets a drain, not the default action (finding F5).
        let signals = AgentSignals()
        let agent = try await Agent.start(config: config, configPath: path)
        await agent.runUntilTerminated(signals)
        return 0
    }
}

/// SIGHUP, SIGINT and SIGTERM, caught from the moment this is created (see ``SignalStream``).
final class AgentSignals: Sendable {
    private let signals = SignalStream([SIGHUP, SIGINT, SIGTERM])
    var stream: AsyncStream<Int32> { signals.stream }
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
    let links: DeviceLinks
    let stateDirectory: FilePath
    let name: String
    let pairing: PairingService
    /// Where links' and secure channels' messages may be forwarded; follows the configuration on reload.
    let forwardAllowList: TCPForwardAllowList
    private let trustState: EdgeMutex<TrustContext>
    private let live = EdgeMutex(Live())

    struct Live: ~Copyable {
        var config = AgentConfig()
        var control: ControlServer?
        var metrics: MetricsServer?
        var relaySessions: [String: Session] = [:]  // by relay name
        var inlets: [String: (Inlet, Session)] = [:]  // by listen address
        var outlets: [String: AgentConfig.Outlet] = [:]  // by address
        var bridges: [String: (Bridge, BridgeQueueStore)] = [:]  // by name
        var ingest: [String: IngestService] = [:]  // by address
        var reloads: UInt64 = 0
        var reloadFailures: UInt64 = 0
    }

    private init(
        logger: Logger, configPath: String, group: MultiThreadedEventLoopGroup, node: Node, tcp: TCPTransport,
        channels: SecureChannels, store: IdentityStore, directory: NodeDirectory, links: DeviceLinks,
        stateDirectory: FilePath, name: String, trust: TrustContext, forwardAllowList: TCPForwardAllowList
    ) {
        self.forwardAllowList = forwardAllowList
        self.logger = logger
        self.configPath = configPath
        self.group = group
        self.node = node
        self.tcp = tcp
        self.channels = channels
        self.store = store
        self.directory = directory
        self.links = links
        self.stateDirectory = stateDirectory
        self.name = name
        pairing = PairingService(store: store, channels: channels, logger: logger)
        trustState = EdgeMutex(trust)
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
        try NodeDirectory(stateDirectory: Support.stateDirectory(config.node.stateDirectory))
            .refuseIfRunning(name: config.node.name)
        let vaultPath = config.vault.path.map { FilePath($0) } ?? Vault.defaultPath()
        guard let vaultPath else { throw CommandFailure("no vault path: set vault.path") }
        let options = try config.vault.keyFile.map { VaultOptions(encryptionKey: try Vault.loadEncryptionKey(from: FilePath($0))) }
            ?? VaultOptions()
        let store = IdentityStore(vault: try Vault.open(at: vaultPath, options: options))
        let storedDefault = try store.defaultName()
        let identityName = config.identity ?? storedDefault ?? "default"
        if (try? store.get(identityName)) == nil {
            if config.identity == nil { try NodeRunCommand.refuseOverLostIdentities(store) }
            let created = try store.create(name: identityName)
            logger.notice("created identity \(created.identity.identifier) (\(identityName)) in \(vaultPath)")
        }
        let local = try store.secureChannelCredentials(for: identityName)
        let trust = try trustContext(config, store: store)
        if case .everyone = trust.policy {
            logger.notice("secure channels accept every identity that proves itself; restrict with trust: in \(configPath)")
        }
        let group = Commands.makeEventLoopGroup()
        let stateDirectory = Support.stateDirectory(config.node.stateDirectory)
        let directory = NodeDirectory(stateDirectory: stateDirectory)
        let forwardAllowList = TCPForwardAllowList(
            try AgentCommand.forwardRules(config, configPath, lookup: { directory.lookup(name: $0) }))
        let node = Node(
            logger: logger,
            options: Node.Options(forwarding: .tcp(forwardAllowList, enabled: config.node.forwarding)))
        try node.startDefaultServices(public: config.node.publicServices)
        let tcp = TCPTransport(node: node, group: group, options: RuntimeOptions.tcp(config.tcp))
        let channels = SecureChannels(node: node, local: local, logger: logger)
        let links = try await DeviceLinks.attach(
            node: node, group: group, logger: logger, serial: AgentCommand.deviceLinks(config.serialPorts, configPath),
            bleListen: AgentCommand.deviceLinks(config.bleListen, configPath),
            bleConnect: AgentCommand.deviceLinks(config.bleConnect, configPath))
        let agent = Agent(
            logger: logger, configPath: configPath, group: group, node: node, tcp: tcp, channels: channels, store: store,
            directory: directory, links: links, stateDirectory: stateDirectory, name: config.node.name, trust: trust,
            forwardAllowList: forwardAllowList)
        try agent.pairing.load()
        agent.pairing.attach(serial: links.serial, ble: links.ble)

        for listener in config.secureChannelListeners {
            try channels.startListener(name: listener.name, options: agent.listenerOptions(listener))
        }
        if config.relayService { try node.startRelayService() }
        var bound: [String] = []
        for listen in config.tcpListen {
            let (host, port) = try Support.parseHostPort(listen)
            let address = try await tcp.listen(host: host, port: port)
            bound.append(RuntimeOptions.listenerText(address, host: host, port: port))
        }
        try directory.record(name: config.node.name, address: bound.first ?? "")
        let controller = NodeController(
            name: config.node.name, node: node, tcp: tcp, channels: channels,
            options: agent.listenerOptions(config.secureChannelListeners.first ?? AgentConfig.SecureChannelListener()),
            listen: bound.first ?? "", directory: directory, statusExtras: { agent.statusFields() },
            pairing: agent.pairing, serial: links.serial, listeners: config.secureChannelListeners.map(\.name))
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
        try agent.startBridgesAndIngest(config)
        print("listening \(bound.joined(separator: " "))")
        fflush(nil)
        logger.info("agent '\(config.node.name)' running as \(local.identity.identifier) (config \(configPath))")
        return agent
    }

    func listenerOptions(_ listener: AgentConfig.SecureChannelListener) -> SecureChannelOptions {
        var options = RuntimeOptions.listener(
            listener, trust: trustState.withLock { $0 }, suite: ChannelSuite(rawValue: listener.cipher) ?? .aes256GCM)
        options.trustProvider = { [self] in pairing.trust(trustState.withLock { $0 }) }  // paired devices, live
        return options
    }

    // MARK: Bridges and ingest (started once; changing them needs a restart)

    func startBridgesAndIngest(_ config: AgentConfig) throws {
        for settings in config.bridges {
            let directory = stateDirectory.appending("queues").appending(settings.name)
            let queue = try BridgeQueueStore.open(directory: directory, settings: settings.queue)
            if queue.pending > 0 { logger.notice("bridge \(settings.name): \(queue.pending) message(s) from before the restart") }
            var options = Bridge.Options()
            options.ackTimeout = settings.ackTimeout
            options.replyToDevices = settings.reply
            let bridge = Bridge(
                name: settings.name, store: queue, node: node, logger: logger, options: options,
                describeLink: { [links] in links.describe($0) },
                resolve: { [self] in try await resolve(settings.to) },
                discard: { [self] route in await discard(route) })
            // Devices reach the bridge over their link (serial, BLE) or through a secure channel the trust policy
            // admits; a TCP peer cannot inject readings in a device's name.
            // With require_attributes, only paired devices whose pairing attributes match, through their channel.
            let links = links
            let required = settings.requireAttributes
            try node.startWorker(
                bridge.worker, at: .local(settings.name),
                options: WorkerOptions(reach: .links, accessControl: { [self] message in
                    if let peer = SecureChannelLocalInfo.identifier(of: message) {
                        if !required.isEmpty {
                            guard let paired = pairing.attributes(of: peer) else { return false }
                            return required.allSatisfy { paired[$0.key] == $0.value }
                        }
                        let info = PeerInfo(identifier: peer, attributes: channels.attributes(of: peer))
                        return pairing.trust(trustState.withLock { $0 }).policy.allows(info)  // paired devices too
                    }
                    guard required.isEmpty, let first = message.returnRoute.addresses.first else { return false }
                    return links.describe(first) != nil
                }))
            live.withLock { $0.bridges[settings.name] = (bridge, queue) }
            bridge.start()
            logger.info("bridge \(settings.name): devices send to /service/\(settings.name); delivering to \(settings.to)")
        }
        for settings in config.ingest {
            let sink = try LineSink(path: settings.output, sync: settings.sync)
            let service = IngestService(sink: sink, logger: logger)
            let allowed = Set(try settings.allow.map { try Identifier(parsing: $0) })
            let policy: TrustPolicy = allowed.isEmpty ? trustState.withLock { $0.policy } : .identifiers(allowed)
            try node.startWorker(
                service, at: .local(settings.address), options: WorkerOptions(accessControl: channels.accessControl(policy)))
            live.withLock { $0.ingest[settings.address] = service }
            logger.info("ingest service at \(settings.address) writing to \(settings.output)")
        }
    }

    /// Closes the secure channels a broken route went through, so the next resolve builds fresh ones.
    func discard(_ route: Route) async {
        for address in route.addresses where channels.channel(address) != nil { await channels.close(address) }
    }

    func statusFields() -> [(String, JSON)] {
        let (bridges, ingest) = live.withLock { l in (Array(l.bridges.values), Array(l.ingest)) }
        return links.statusFields + [
            (
                "bridges",
                .array(
                    bridges.sorted { $0.0.name < $1.0.name }.map { bridge, queue in
                        let c = bridge.counters
                        return .object([
                            ("name", .string(bridge.name)), ("uplink_up", .bool(bridge.uplinkUp)),
                            ("queued", .uint(UInt64(queue.pending))), ("queued_bytes", .uint(UInt64(queue.pendingBytes))),
                            ("accepted", .uint(c.accepted)), ("delivered", .uint(c.delivered)), ("refused", .uint(c.refused)),
                            ("dropped_oldest", .uint(c.droppedOldest)), ("dropped_corrupt", .uint(c.droppedCorrupt)),
                            ("delivery_failures", .uint(c.deliveryFailures)),
                            ("last_error", bridge.lastError.map { .string($0) } ?? .null),
                        ])
                    })
            ),
            (
                "ingest",
                .array(
                    ingest.sorted { $0.key < $1.key }.map { address, service in
                        let c = service.counters
                        return .object([
                            ("address", .string(address)), ("accepted", .uint(c.accepted)), ("duplicates", .uint(c.duplicates)),
                            ("skipped", .uint(c.skipped)), ("malformed", .uint(c.malformed)),
                        ])
                    })
            ),
        ]
    }

    // MARK: Applying (start and SIGHUP)

    /// Brings relays, outlets and inlets in line with `config`, touching only what changed.
    func apply(_ config: AgentConfig) async throws {
        forwardAllowList.replace(with: try AgentCommand.forwardRules(config, configPath, lookup: { directory.lookup(name: $0) }))
        // Configured uplinks stay connected however quiet they are; other outgoing connections close when idle.
        tcp.pin(AgentCommand.uplinks(config, lookup: { directory.lookup(name: $0) }).map(\.description))
        let previous = live.withLock { l in
            defer { l.config.sessions = config.sessions }  // new sessions below use the new settings
            return l.config
        }
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

    /// Session supervision from the `sessions:` settings.
    func sessionOptions() -> Session.Options {
        let settings = live.withLock { $0.config.sessions }
        var options = Session.Options()
        options.pingInterval = settings.pingInterval
        options.pingTimeout = settings.pingTimeout
        options.maxBackoff = settings.maxBackoff
        options.failuresBeforeReplace = settings.failuresBeforeReplace
        return options
    }

    func relaySession(_ relay: AgentConfig.Relay) -> Session {
        Session(
            name: "relay \(relay.name)", options: sessionOptions(), logger: logger,
            establish: { [self] in
                let hub = try await resolve(relay.hub)
                _ = try await node.registerRelay(name: relay.name, hubRoute: hub)
                return hub
            },
            ping: { [self] hub in try await pingNode(hub) })
    }

    func inletSession(_ inlet: AgentConfig.Inlet, _ running: Inlet) -> Session {
        Session(
            name: "inlet \(inlet.listen)", options: sessionOptions(), logger: logger,
            establish: { [self] in try await resolve(inlet.to) },
            ping: { [self] route in try await pingNode(Route(route.addresses.dropLast())) },
            onChange: { route in if let route { running.updateOutletRoute(route) } })
    }

    /// SIGHUP: re-read the file; apply it if valid, otherwise keep running as before.
    func reload() async {
        do {
            let config = try AgentCommand.load(configPath)
            let old = live.withLock { $0.config }
            if config.tcpListen != old.tcpListen || config.tcp != old.tcp || config.secureChannelListeners != old.secureChannelListeners
                || config.vault != old.vault || config.identity != old.identity || config.node != old.node
                || config.metricsListen != old.metricsListen || config.serialPorts.map(\.spec) != old.serialPorts.map(\.spec)
                || config.bleListen.map(\.spec) != old.bleListen.map(\.spec) || config.bleConnect.map(\.spec) != old.bleConnect.map(\.spec)
                || config.bridges != old.bridges || config.ingest != old.ingest
            {
                logger.warning(
                    "reload: node, vault, identity, listener (TCP and secure channel), metrics, device link, bridge and ingest settings need a restart; applying the rest")
            }
            let trust = try Agent.trustContext(config, store: store)
            trustState.withLock { $0 = trust }
            // Revocation: channels whose peer the new policy no longer admits are closed at once.
            for channel in channels.channels {
                let peer = PeerInfo(identifier: channel.peer, attributes: channels.attributes(of: channel.peer))
                if !pairing.trust(trust).policy.allows(peer) {
                    logger.notice("reload: closing channel \(channel.encryptor) with \(channel.peer) (no longer trusted)")
                    await channels.close(channel.encryptor)
                }
            }
            for listener in old.secureChannelListeners {
                await node.stopWorker(at: .local(listener.name))
                try channels.startListener(name: listener.name, options: listenerOptions(listener))
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

    func runUntilTerminated(_ signals: AgentSignals) async {
        for await number in signals.stream {
            if number == SIGHUP {
                await reload()
            } else {
                logger.info("received signal \(number), draining")
                break
            }
        }
        _ = signals
        await shutdown()
    }

    func shutdown() async {
        let (control, metrics, sessions, inlets) = live.withLock { l in
            (l.control, l.metrics, Array(l.relaySessions.values), Array(l.inlets.values))
        }
        for session in sessions { await session.stop() }
        // Bridges stop delivering first; their queues then keep (on disk) whatever was not acknowledged.
        let bridges = live.withLock { Array($0.bridges.values) }
        for (bridge, queue) in bridges {
            await bridge.stop()
            do { try queue.close() } catch { logger.error("bridge \(bridge.name): closing its queue failed: \(error)") }
        }
        await links.shutdown()
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
        let tc = tcp.counters
        CounterRegistry.metrics(CounterSources(node: counters, tcp: tc, channels: sc), into: &p)
        let (serialUp, bleUp) = links.linksUp
        p.metric(
            "ockam_edge_link_up", type: "gauge", help: "Transport links currently up, by transport.",
            samples: [
                ([("transport", "tcp")], Double(tcp.connections.count)), ([("transport", "serial")], Double(serialUp)),
                ([("transport", "ble")], Double(bleUp)),
            ])
        let (bridges, ingest) = live.withLock { l in (Array(l.bridges.values), Array(l.ingest)) }
        p.metric(
            "ockam_edge_bridge_queue_depth", type: "gauge", help: "Device messages waiting for delivery, by bridge.",
            samples: bridges.map { ([("bridge", $0.0.name)], Double($0.1.pending)) })
        p.metric(
            "ockam_edge_bridge_queue_bytes", type: "gauge", help: "Bytes of device messages waiting, by bridge.",
            samples: bridges.map { ([("bridge", $0.0.name)], Double($0.1.pendingBytes)) })
        p.metric(
            "ockam_edge_bridge_uplink_up", type: "gauge", help: "Whether each bridge's uplink route works (1) or not (0).",
            samples: bridges.map { ([("bridge", $0.0.name)], $0.0.uplinkUp ? 1 : 0) })
        p.metric(
            "ockam_edge_bridge_messages_total", help: "Device messages through each bridge, by outcome.",
            samples: bridges.flatMap { bridge, _ -> [([(String, String)], Double)] in
                let c = bridge.counters
                return [
                    ("accepted", c.accepted), ("delivered", c.delivered), ("refused", c.refused),
                    ("dropped_oldest", c.droppedOldest), ("dropped_corrupt", c.droppedCorrupt),
                    ("delivery_failed", c.deliveryFailures),
                ].map { ([("bridge", bridge.name), ("outcome", $0.0)], Double($0.1)) }
            })
        p.metric(
            "ockam_edge_ingest_messages_total", help: "Bridge envelopes received by each ingest service, by outcome.",
            samples: ingest.flatMap { address, service -> [([(String, String)], Double)] in
                let c = service.counters
                return [("accepted", c.accepted), ("duplicate", c.duplicates), ("skipped", c.skipped), ("malformed", c.malformed)]
                    .map { ([("service", address), ("outcome", $0.0)], Double($0.1)) }
            })
        p.metric("ockam_edge_secure_channels_open", type: "gauge", help: "Open secure channels.", value: Double(channels.channels.count))
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
