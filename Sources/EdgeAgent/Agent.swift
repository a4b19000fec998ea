// EdgeAgent: the runtime — a node with its vault, transports, channels, pairing, device links, relays, portals,
// bridges, metrics and control socket — started from one `AgentConfig`, whether a file or `node run`'s flags made it.
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

/// The running runtime: node, transports, channels, pairing, device links, relays, portals, sessions, bridges,
/// ingest, metrics and control socket. ``start(config:launch:)`` builds it; ``run(signals:)`` or ``shutdown()`` end it.
package final class Agent: Sendable {
    let logger: Logger
    package let launch: AgentLaunch
    let group: MultiThreadedEventLoopGroup
    package let node: Node
    package let tcp: TCPTransport
    package let channels: SecureChannels
    let store: IdentityStore
    package let directory: NodeDirectory
    let links: DeviceLinks
    let stateDirectory: FilePath
    package let name: String
    let pairing: PairingService
    /// Where links' and secure channels' messages may be forwarded; follows the configuration on reload.
    let forwardAllowList: TCPForwardAllowList
    /// The TCP listeners' bound addresses, as printed after `listening` (IPv6 in brackets).
    package var listening: [String] { live.withLock { $0.listening } }
    private let trustState: EdgeMutex<TrustContext>
    let live = EdgeMutex(Live())

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
        var listening: [String] = []
    }

    private init(
        logger: Logger, launch: AgentLaunch, group: MultiThreadedEventLoopGroup, node: Node, tcp: TCPTransport,
        channels: SecureChannels, store: IdentityStore, directory: NodeDirectory, links: DeviceLinks, name: String,
        trust: TrustContext, forwardAllowList: TCPForwardAllowList
    ) {
        self.logger = logger
        self.launch = launch
        self.group = group
        self.node = node
        self.tcp = tcp
        self.channels = channels
        self.store = store
        self.directory = directory
        self.links = links
        self.name = name
        self.forwardAllowList = forwardAllowList
        stateDirectory = directory.stateDirectory
        pairing = PairingService(store: store, channels: channels, logger: logger)
        trustState = EdgeMutex(trust)
    }

    /// Answers one control-socket request (docs/control-socket.md): what the control socket calls, and tests can too.
    package func handle(_ command: ControlCommand) async -> ControlResponse {
        if command == .metrics { return .ok(.metrics(renderMetrics())) }
        return await controller.handle(command)
    }

    var controller: NodeController {
        let listeners = live.withLock { $0.config.secureChannelListeners }
        let outgoing = launch.outgoingChannels ?? listeners.first ?? AgentConfig.SecureChannelListener()
        return NodeController(
            name: name, node: node, tcp: tcp, channels: channels, options: listenerOptions(outgoing),
            listen: listening.first ?? "", directory: directory, statusExtras: { [self] in statusFields() },
            pairing: pairing, serial: links.serial, listeners: listeners.map(\.name))
    }

    static func trustContext(_ config: AgentConfig, store: IdentityStore) throws -> TrustContext {
        var identifiers = Set<Identifier>()
        for text in config.trust.identities { identifiers.insert(try Identifier(parsing: text)) }
        var authorities = try store.authorities().map(\.identity)
        var policies: [TrustPolicy] = []
        if !identifiers.isEmpty { policies.append(.identifiers(identifiers)) }
        for authority in config.trust.authorities {
            let identity = try Identity.decoding(hex: authority.identity, what: "authority \(authority.name)")
            authorities.append(identity)
            policies.append(.credential(authority: identity.identifier, required: config.trust.requireAttributes))
        }
        let policy: TrustPolicy = policies.isEmpty ? .everyone : (policies.count == 1 ? policies[0] : .any(policies))
        return TrustContext(policy: policy, authorities: authorities)
    }

    /// A vault whose identity records are gone but whose keys are not: refuse to mint a new default identity over them.
    package static func refuseOverLostIdentities(_ store: IdentityStore) throws {
        let lost = try store.keysOfLostIdentities()
        guard !lost.isEmpty else { return }
        throw CommandFailure(
            "the vault at \(store.vault.path) holds \(lost.count) keys but no identity records (were records/ deleted?): "
                + "refusing to create a new identity over them, as peers and authorities know the lost one. Restore the "
                + "vault's records/ from a backup; or, to start afresh on purpose, create one yourself: ockam-edge "
                + "identity create default --vault \(store.vault.path)")
    }

    /// The identity the node runs as: the configured one, else the vault's default, else `default`, created on first
    /// start (as Ockam does) but never over the keys of lost identity records.
    static func identityName(_ config: AgentConfig, _ launch: AgentLaunch, store: IdentityStore, logger: Logger) throws -> String {
        if let configured = config.identity {
            if (try? store.get(configured)) == nil && launch.createsNamedIdentity {
                let created = try store.create(name: configured)
                logger.notice("created identity \(created.identity.identifier) (\(configured)) in \(store.vault.path)")
            }
            return configured
        }
        if let stored = try store.defaultName() { return stored }
        if let existing = try? store.get("default") {
            // A first start cut off (kill -9, power loss) between saving 'default' and making it the default: finish
            // the job instead of refusing to start forever ("an identity named 'default' already exists").
            try store.setDefault("default")
            logger.notice("made the existing identity 'default' (\(existing.identity.identifier)) the vault's default")
        } else {
            try refuseOverLostIdentities(store)
            let created = try store.create(name: "default")
            logger.notice("created identity \(created.identity.identifier) in \(store.vault.path)")
        }
        return "default"
    }

    /// Opens the vault, starts every part `config` describes and the control socket, and returns once the TCP
    /// listeners are bound (``listening``). The caller sets the process's umask and logging, and prints `listening`.
    package static func start(config: AgentConfig, launch: AgentLaunch) async throws -> Agent {
        var logger = launch.logger
        logger[metadataKey: "node"] = "\(config.node.name)"
        let stateDirectory = Support.stateDirectory(config.node.stateDirectory)
        let directory = NodeDirectory(stateDirectory: stateDirectory)
        try directory.refuseIfRunning(name: config.node.name)
        let vaultPath = config.vault.path.map { FilePath($0) } ?? Vault.defaultPath()
        guard let vaultPath else { throw CommandFailure("no vault path: set vault.path") }
        let options = try config.vault.keyFile.map { VaultOptions(encryptionKey: try Vault.loadEncryptionKey(from: FilePath($0))) }
            ?? VaultOptions()
        let store = IdentityStore(vault: try Vault.open(at: vaultPath, options: options))
        do {
            return try await start(config: config, launch: launch, store: store, directory: directory, logger: logger)
        } catch {
            store.vault.close()
            throw error
        }
    }

    private static func start(
        config: AgentConfig, launch: AgentLaunch, store: IdentityStore, directory: NodeDirectory, logger: Logger
    ) async throws -> Agent {
        let local = try store.secureChannelCredentials(for: try identityName(config, launch, store: store, logger: logger))
        let trust = try trustContext(config, store: store)
        if case .everyone = trust.policy {
            logger.notice("secure channels accept every identity that proves itself; restrict with \(launch.describesTrust)")
        }
        let forwardAllowList = TCPForwardAllowList(
            try AgentConfigFile.forwardRules(config, launch, lookup: { directory.lookup(name: $0) }))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)  // I/O bound, and small boards
        let node = Node(
            logger: logger,
            options: Node.Options(forwarding: .tcp(forwardAllowList, enabled: config.node.forwarding)))
        let tcp = TCPTransport(node: node, group: group, options: RuntimeOptions.tcp(config.tcp))
        let channels = SecureChannels(node: node, local: local, logger: logger)
        let links: DeviceLinks
        do {
            try node.startDefaultServices(public: config.node.publicServices)
            links = try await DeviceLinks.attach(
                node: node, group: group, logger: logger, serial: AgentConfigFile.deviceLinks(config.serialPorts, launch),
                bleListen: AgentConfigFile.deviceLinks(config.bleListen, launch),
                bleConnect: AgentConfigFile.deviceLinks(config.bleConnect, launch))
        } catch {
            await tcp.shutdown()
            await node.shutdown()
            try? await group.shutdownGracefully()
            throw error
        }
        let agent = Agent(
            logger: logger, launch: launch, group: group, node: node, tcp: tcp, channels: channels, store: store,
            directory: directory, links: links, name: config.node.name, trust: trust, forwardAllowList: forwardAllowList)
        do {
            try await agent.startListeners(config)
        } catch {
            await agent.shutdown()
            throw error
        }
        return agent
    }

    /// Pairing, secure channel listeners, the relay service, TCP listeners, the node's record and control socket,
    /// metrics, then what ``apply(_:)`` manages and the bridges.
    private func startListeners(_ config: AgentConfig) async throws {
        try pairing.load()
        pairing.attach(serial: links.serial, ble: links.ble)
        live.withLock { $0.config.secureChannelListeners = config.secureChannelListeners }
        for listener in config.secureChannelListeners {
            try channels.startListener(name: listener.name, options: listenerOptions(listener))
        }
        if config.relayService { try node.startRelayService() }
        var bound: [String] = []
        for listen in config.tcpListen {
            let (host, port) = try Support.parseHostPort(listen)
            do {
                let address = try await tcp.listen(host: host, port: port)
                bound.append(RuntimeOptions.listenerText(address, host: host, port: port))
            } catch {
                throw CommandFailure("cannot listen on \(listen): \(error)")
            }
        }
        live.withLock { $0.listening = bound }
        try directory.record(name: name, address: bound.first ?? "")
        let control = try await ControlServer.start(
            path: directory.socketPath(name: name).string, group: group, logger: logger,
            handler: { [self] request in await handle(request) })
        live.withLock { $0.control = control }
        if let listen = config.metricsListen {
            let (host, port) = try Support.parseHostPort(listen)
            let metrics = try await MetricsServer.start(host: host, port: port, group: group, render: { [self] in renderMetrics() })
            live.withLock { $0.metrics = metrics }
            logger.info("metrics on http://\(listen)/metrics")
        }
        try await apply(config)
        try startBridgesAndIngest(config)
        switch launch.source {
        case .file(let path):
            logger.info("agent '\(name)' running as \(channels.local.identity.identifier) (config \(path))")
        case .commandLine:
            logger.info(
                "node '\(name)' running as \(channels.local.identity.identifier); workers: \(node.workerAddresses.map(\.description).joined(separator: ", "))")
        }
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
            options.window = settings.window
            let uplinks = BridgeUplinks(settings.to)
            let bridge = Bridge(
                name: settings.name, store: queue, node: node, logger: logger, options: options,
                describeLink: { [links] in links.describe($0) },
                resolve: { [self] in try await uplinks.resolve { try await resolve($0) } },
                discard: { [self] route in
                    uplinks.failed()
                    await discard(route)
                })
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
            try bridge.start()
            logger.info(
                "bridge \(settings.name): devices send to /service/\(settings.name); delivering to \(settings.to.joined(separator: ", then "))")
        }
        for settings in config.ingest {
            let (sink, destination) = try IngestSinks.make(settings, launch: launch, logger: logger)
            let service = IngestService(sink: sink, logger: logger)
            let allowed = Set(try settings.allow.map { try Identifier(parsing: $0) })
            let policy: TrustPolicy = allowed.isEmpty ? trustState.withLock { $0.policy } : .identifiers(allowed)
            try node.startWorker(
                service, at: .local(settings.address), options: WorkerOptions(accessControl: channels.accessControl(policy)))
            live.withLock { $0.ingest[settings.address] = service }
            logger.info("ingest service at \(settings.address) storing to \(destination)")
        }
    }

    /// A bridge's ingest services in failover order: resolving starts at the current one and goes round the list;
    /// a route that stopped working moves the start to the next, so a reachable ingest service that no longer
    /// acknowledges (its sink is down) is left for another.
    final class BridgeUplinks: Sendable {
        let destinations: [String]
        private let current = EdgeMutex(0)
        init(_ destinations: [String]) { self.destinations = destinations }

        func resolve(_ build: (String) async throws -> Route) async throws -> Route {
            let start = current.withLock { $0 }
            var lastError: (any Error)?
            for offset in destinations.indices {
                let index = (start + offset) % destinations.count
                do {
                    let route = try await build(destinations[index])
                    current.withLock { $0 = index }
                    return route
                } catch {
                    lastError = error
                }
            }
            throw lastError ?? CommandFailure("no ingest service configured")
        }

        func failed() { current.withLock { $0 = ($0 + 1) % max(1, destinations.count) } }
    }

    /// Closes the secure channels a broken route went through, so the next resolve builds fresh ones.
    func discard(_ route: Route) async {
        for address in route.addresses where channels.channel(address) != nil { await channels.close(address) }
    }

    // MARK: Applying (start and SIGHUP)

    /// Brings relays, outlets and inlets in line with `config`, touching only what changed.
    func apply(_ config: AgentConfig) async throws {
        forwardAllowList.replace(with: try AgentConfigFile.forwardRules(config, launch, lookup: { directory.lookup(name: $0) }))
        // Configured uplinks stay connected however quiet they are; other outgoing connections close when idle.
        tcp.pin(AgentConfigFile.uplinks(config, lookup: { directory.lookup(name: $0) }).map(\.description))
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

    /// SIGHUP: re-read the file; apply it if valid, otherwise keep running as before. A runtime started from
    /// `node run`'s flags has no file to re-read: it says so and keeps running.
    package func reload() async {
        guard case .file(let configPath) = launch.source else {
            logger.warning("reload: this node was started from command-line flags; there is no configuration file to re-read")
            return
        }
        do {
            let config = try AgentConfigFile.load(configPath)
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

    /// Runs until a signal other than SIGHUP arrives on `signals` (SIGHUP reloads), then shuts down.
    package func run(signals: AsyncStream<Int32>) async {
        for await number in signals {
            if number == SIGHUP {
                await reload()
            } else {
                logger.info("received signal \(number), draining")
                break
            }
        }
        await shutdown()
    }

    /// Drains and stops everything: sessions, bridges (their queues keep what was not acknowledged), links, portals,
    /// channels (each closed with Close), the control socket, metrics, TCP, the node; removes the node's record and
    /// closes the vault.
    package func shutdown() async {
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
        logger.info("\(launch.source == .commandLine ? "node" : "agent") stopped")
    }
}
