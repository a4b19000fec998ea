// `node run`, `message send` and `secure-channel …`: a running node, its control socket, and clients of both.
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
                    try CredentialCommands.decodeIdentity(String(value.dropFirst("authority:".count)), what: "--trust authority:"))
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
    /// A vault whose identity records are gone but whose keys are not: refuse to mint a new default identity over them.
    static func refuseOverLostIdentities(_ store: IdentityStore) throws {
        let lost = try store.keysOfLostIdentities()
        guard !lost.isEmpty else { return }
        throw CommandFailure(
            "the vault at \(store.vault.path) holds \(lost.count) keys but no identity records (were records/ deleted?): "
                + "refusing to create a new identity over them, as peers and authorities know the lost one. Restore the "
                + "vault's records/ from a backup; or, to start afresh on purpose, create one yourself: ockam-edge "
                + "identity create default --vault \(store.vault.path)")
    }

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
        let name = arguments.value("name") ?? "default"
        try NodeDirectory.validate(name: name)
        let (host, port) = try Support.parseHostPort(arguments.value("tcp-listen") ?? "127.0.0.1:4000")
        try NodeDirectory(stateDirectory: Support.stateDirectory(arguments.value("state-dir"))).refuseIfRunning(name: name)
        var forwardRules: [TCPForwardRule] = []
        for text in arguments.values("forward-to") {
            do { forwardRules.append(try TCPForwardRule(parsing: text)) } catch { throw CommandFailure("--forward-to: \(error)") }
        }
        var logger = Logger(label: "ockam-edge")
        logger[metadataKey: "node"] = "\(name)"
        umask(0o077)  // everything the node creates is private to its user

        // Identity: the vault's (created on first start), held for the node's lifetime (the vault is locked).
        let store = try VaultOptionsCLI.openStore(arguments)
        defer { store.vault.close() }
        if try store.defaultName() == nil && arguments.value("identity") == nil {
            if let existing = try? store.get("default") {
                // A first start cut off (kill -9, power loss) between saving 'default' and making it the default:
                // finish the job instead of refusing to start forever ("an identity named 'default' already exists").
                try store.setDefault("default")
                logger.notice("made the existing identity 'default' (\(existing.identity.identifier)) the vault's default")
            } else {
                try Self.refuseOverLostIdentities(store)
                let created = try store.create(name: "default")
                logger.notice("created identity \(created.identity.identifier) in \(store.vault.path)")
            }
        }
        let local = try store.secureChannelCredentials(for: arguments.value("identity"))
        let trust = try TrustOptions.context(arguments, storedAuthorities: store.authorities().map(\.identity))
        var options = RuntimeOptions.listener(try listenerSettings(), trust: trust, suite: try TrustOptions.suite(arguments))
        if case .everyone = trust.policy {
            logger.notice("secure channels accept every identity that proves itself; restrict with --trust")
        }

        let group = Commands.makeEventLoopGroup()
        let forwarding = ForwardingPolicy.tcp(TCPForwardAllowList(forwardRules), enabled: !arguments.flag("no-forwarding"))
        let node = Node(logger: logger, options: Node.Options(forwarding: forwarding))
        try node.startDefaultServices(public: !arguments.flag("private-services"))
        let tcp = TCPTransport(node: node, group: group, options: RuntimeOptions.tcp(try tcpSettings()))
        let channels = SecureChannels(node: node, local: local, logger: logger)
        let pairing = PairingService(store: store, channels: channels, logger: logger)
        try pairing.load()
        options.trustProvider = { [pairing, trust] in pairing.trust(trust) }  // paired devices, live (docs/pairing.md)
        if !arguments.flag("no-secure-listener") {
            for listener in arguments.values("secure-listener") {
                try channels.startListener(name: listener, options: options)
            }
        }
        let links = try await DeviceLinks.attach(
            node: node, group: group, logger: logger,
            serial: arguments.values("serial").map { DeviceLinkSpec(spec: $0, origin: "--serial") },
            bleListen: arguments.values("ble-listen").map { DeviceLinkSpec(spec: $0, origin: "--ble-listen") },
            bleConnect: arguments.values("ble-connect").map { DeviceLinkSpec(spec: $0, origin: "--ble-connect") })
        let bound: String
        do {
            let address = try await tcp.listen(host: host, port: port)
            bound = RuntimeOptions.listenerText(address, host: host, port: port)
        } catch {
            throw CommandFailure("cannot listen on \(host):\(port): \(error)")
        }
        let directory = NodeDirectory(stateDirectory: Support.stateDirectory(arguments.value("state-dir")))
        try directory.record(name: name, address: bound)
        pairing.attach(serial: links.serial, ble: links.ble)
        let controller = NodeController(
            name: name, node: node, tcp: tcp, channels: channels, options: options, listen: bound,
            directory: directory, statusExtras: { links.statusFields }, pairing: pairing, serial: links.serial,
            listeners: arguments.flag("no-secure-listener") ? [] : arguments.values("secure-listener"))
        let control = try await ControlServer.start(
            path: directory.socketPath(name: name).string, group: group, logger: logger, handler: controller.handle)

        print("listening \(bound)")
        fflush(nil)
        logger.info(
            "node '\(name)' running as \(local.identity.identifier); workers: \(node.workerAddresses.map(\.description).joined(separator: ", "))")

        let signal = await terminationSignals.wait()
        logger.info("received signal \(signal), shutting down")
        await control.shutdown()
        await channels.closeAll()
        await links.shutdown()
        await tcp.shutdown()
        await node.shutdown()
        directory.remove(name: name)
        try? await group.shutdownGracefully()
        return 0
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

/// `ockam-edge ble list`.
enum BLECommands {
    static let spec = CommandSpec(
        "ble", abstract: "Bluetooth LE adapters.",
        subcommands: [
            CommandSpec(
                "list", abstract: "List Bluetooth adapters and their addresses (kernel HCI interface).",
                examples: ["ockam-edge ble list", "ockam-edge ble list --json"], options: [VaultOptionsCLI.json])
        ])

    static func run(_ arguments: ParsedArguments) throws -> Int32 {
        let adapters: [BLEAdapterInfo]
        do {
            adapters = try BLEAdapters.list()
        } catch {
            throw CommandFailure("\(error)")
        }
        if arguments.flag("json") {
            print(
                JSON.array(
                    adapters.map {
                        .object([
                            ("index", .int(Int64($0.index))), ("name", .string($0.name)),
                            ("address", .string($0.address.description)), ("up", .bool($0.isUp)),
                        ])
                    }
                ).serialized())
        } else if adapters.isEmpty {
            print("no Bluetooth adapters")
        } else {
            for adapter in adapters { print("\(adapter.name)\t\(adapter.address)\t\(adapter.isUp ? "up" : "down")") }
        }
        return 0
    }
}

/// `ockam-edge serial list`.
enum SerialCommands {
    static let spec = CommandSpec(
        "serial", abstract: "Serial ports.",
        subcommands: [
            CommandSpec(
                "list", abstract: "List candidate serial ports with their stable names and USB identities.",
                discussion: "Prefer the stable names (/dev/ockam-edge/…, /dev/serial/by-id/…) in configuration: they survive re-plugging.",
                examples: ["ockam-edge serial list", "ockam-edge serial list --json"], options: [VaultOptionsCLI.json])
        ])

    static func run(_ arguments: ParsedArguments) -> Int32 {
        let ports = SerialPorts.list()
        if arguments.flag("json") {
            print(
                JSON.array(
                    ports.map { port in
                        var members: [(String, JSON)] = [
                            ("path", .string(port.path.string)), ("aliases", .array(port.aliases.map { .string($0.string) })),
                            ("driver", port.driver.map { .string($0) } ?? .null),
                        ]
                        if let usb = port.usb {
                            members.append(
                                (
                                    "usb",
                                    .object([
                                        ("vendor_id", .string(Hex.encode([UInt8(usb.vendorID >> 8), UInt8(usb.vendorID & 0xff)]))),
                                        ("product_id", .string(Hex.encode([UInt8(usb.productID >> 8), UInt8(usb.productID & 0xff)]))),
                                        ("manufacturer", usb.manufacturer.map { .string($0) } ?? .null),
                                        ("product", usb.product.map { .string($0) } ?? .null),
                                        ("serial", usb.serialNumber.map { .string($0) } ?? .null),
                                    ])
                                ))
                        }
                        return .object(members)
                    }
                ).serialized())
        } else if ports.isEmpty {
            print("no serial ports found")
        } else {
            for port in ports {
                var line = port.path.string
                if let driver = port.driver { line += "  (\(driver))" }
                if let usb = port.usb {
                    line += "  \(usb.manufacturer ?? "") \(usb.product ?? "")"
                }
                print(line)
                for alias in port.aliases { print("    \(alias)") }
            }
        }
        return 0
    }
}

/// Answers control-socket requests for a running node (see docs/control-socket.md).
struct NodeController: Sendable {
    let name: String
    let node: Node
    let tcp: TCPTransport
    let channels: SecureChannels
    let options: SecureChannelOptions
    let listen: String
    let directory: NodeDirectory
    /// More fields for `status` (device links, bridges, queues).
    var statusExtras: @Sendable () -> [(String, JSON)] = { [] }
    /// Pairing and paired devices (docs/pairing.md); nil where the node cannot pair.
    var pairing: PairingService? = nil
    /// The node's serial ports, shown by `status` (nil: none).
    var serial: SerialTransport? = nil
    /// Secure channel listener names whose half-open handshakes `status` shows.
    var listeners: [String] = []

    static func json(_ port: SerialPortStatus) -> JSON {
        let c = port.counters
        return .object([
            ("name", .string(port.name)), ("path", .string(port.configuration.path.string)),
            ("phase", .string(port.phase.rawValue)), ("sender", port.senderAddress.map { .string($0.description) } ?? .null),
            ("last_error", port.lastError.map { .string($0) } ?? .null),
            (
                "counters",
                .object([
                    ("frames_in", .uint(c.framesIn)), ("frames_out", .uint(c.framesOut)), ("bytes_in", .uint(c.bytesIn)),
                    ("bytes_out", .uint(c.bytesOut)), ("messages_in", .uint(c.messagesIn)),
                    ("messages_out", .uint(c.messagesOut)), ("rejected_too_large", .uint(c.rejectedTooLarge)),
                    ("rejected_over_limit", .uint(c.rejectedOverLimit)),
                    ("link_ups", .uint(c.linkUps)), ("link_downs", .uint(c.linkDowns)),
                    ("hello_retries", .uint(c.helloRetries)), ("opens", .uint(c.opens)),
                    ("open_failures", .uint(c.openFailures)), ("dropped_total", .uint(c.droppedTotal)),
                    ("dropped", .object(SerialDropReason.allCases.map { ($0.rawValue, .uint(c.dropped($0))) })),
                ])
            ),
        ])
    }

    /// `status --json`'s `flow_control`: whether and where links' and channels' messages may be forwarded, and which
    /// workers plain links may reach (docs/routing.md "Flow control").
    var flowControlJSON: JSON {
        let summary = node.flowControlSummary
        return .object([
            ("forwarding", .bool(summary.forwarding)),
            ("forward_to", .array(summary.forwardTo.map { .string($0) })),
            ("reachable_from_links", .array(summary.reachableFromLinks.map { .string($0.description) })),
        ])
    }

    static func json(_ info: SecureChannelInfo) -> JSON {
        .object([
            ("address", .string("/service/\(info.encryptor.valueString)")), ("encryptor", .string(info.encryptor.description)),
            ("decryptor", .string(info.decryptor.description)), ("role", .string(info.role.rawValue)),
            ("peer", .string(info.peer.description)), ("remote_route", .string(info.remoteRoute.description)),
            ("listener", info.listener.map { .string($0) } ?? .null), ("cipher", .string(info.suite.rawValue)),
            ("verification_code", .string(info.verificationCode.description)),
        ])
    }

    @Sendable func handle(_ request: ControlRequest) async -> ControlResponse {
        do {
            return try await dispatch(request)
        } catch {
            return .error("\(error)")
        }
    }

    func channelAddress(_ text: String?) throws -> Address {
        guard var text else { throw CommandFailure("missing channel address") }
        if text.hasPrefix("/service/") { text = String(text.dropFirst("/service/".count)) }
        if text.hasPrefix("0#") { text = String(text.dropFirst(2)) }
        return .local(text)
    }

    func dispatch(_ request: ControlRequest) async throws -> ControlResponse {
        switch request.command {
        case "ping":
            return .ok("\"pong\"")
        case "status":
            let counters = node.counters
            let sc = channels.counters
            let tcpCounters = tcp.counters
            return .ok(
                JSON.object([
                    ("name", .string(name)), ("identifier", .string(channels.local.identity.identifier.description)),
                    ("tcp_listener", .string(listen)),
                    ("workers", .array(node.workerAddresses.map { .string($0.description) })),
                    (
                        "tcp_connections",
                        .array(
                            tcp.connections.map {
                                .object([
                                    ("peer", .string($0.peer)), ("sender", .string($0.senderAddress.description)),
                                    ("outgoing", .bool($0.outgoing)),
                                ])
                            })
                    ),
                    ("secure_channels", .array(channels.channels.map(Self.json))),
                    ("flow_control", flowControlJSON),
                ] + statusExtras() + [
                    (
                        "half_open_handshakes",
                        .object(listeners.map { ($0, .uint(UInt64(channels.halfOpenHandshakes(listener: $0)))) })
                    ),
                    ("serial_ports", .array((serial?.ports ?? []).map(Self.json))),
                    (
                        "counters",
                        CounterRegistry.statusJSON(CounterSources(node: counters, tcp: tcpCounters, channels: sc))
                    ),
                ]).serialized())
        case "secure-channel/create":
            guard let to = request.arguments["to"] else { return .error("missing 'to'") }
            var segments = try Multiaddr(parsing: to).routeSegments(resolveNode: { directory.lookup(name: $0) })
            if !segments.contains(where: { if case .secureChannel = $0 { return true } else { return false } }) {
                segments.append(.secureChannel(listener: "api"))  // `--to /ip4/…/tcp/…` means its `api` listener
            }
            var options = self.options
            if let timeout = request.arguments["timeout"] { options.handshakeTimeout = try Support.parseDuration(timeout) }
            let (_, opened) = try await channels.route(for: segments, options: options)
            guard let channel = opened.last else { return .error("no secure channel in \(to)") }
            return .ok(Self.json(channel).serialized())
        case "secure-channel/list":
            return .ok(JSON.array(channels.channels.map(Self.json)).serialized())
        case "secure-channel/show":
            let address = try channelAddress(request.arguments["address"])
            guard let info = channels.channel(address) else { return .error("no secure channel \(address)") }
            return .ok(Self.json(info).serialized())
        case "secure-channel/delete":
            let address = try channelAddress(request.arguments["address"])
            guard channels.channel(address) != nil else { return .error("no secure channel \(address)") }
            await channels.close(address)
            return .ok(JSON.object([("deleted", .string("/service/\(address.valueString)"))]).serialized())
        case "message/send":
            guard let to = request.arguments["to"], let text = request.arguments["message"] else {
                return .error("missing 'to' or 'message'")
            }
            let timeout = try Support.parseDuration(request.arguments["timeout"] ?? "10s")
            let segments = try Multiaddr(parsing: to).routeSegments(resolveNode: { directory.lookup(name: $0) })
            let (route, opened) = try await channels.route(for: segments, options: options)
            let raw = request.arguments["raw"] == "true"
            // Channels opened for this one message are closed after it (their addresses are never returned, so
            // nobody can use them again): otherwise every `message send --from … /secure/…` leaves a channel, its
            // workers and keys behind on both nodes, and channels to peers that went away are never reclaimed.
            let reply: LocalMessage
            do {
                reply = try await channels.request(
                    to: route, payload: raw ? Array(text.utf8) : BARE.encodeString(text), timeout: timeout, through: opened)
            } catch {
                for channel in opened.reversed() { await channels.close(channel.encryptor) }
                if case SecureChannelError.closedBeforeReply(let peer, let reason) = error, reason.hasPrefix("closed by peer") {
                    throw CommandFailure(
                        "\(peer) closed the secure channel right after the handshake: its trust policy refused this node's "
                            + "identity (\(channels.local.identity.identifier))")
                }
                throw error
            }
            for channel in opened.reversed() { await channels.close(channel.encryptor) }
            let body = (!raw ? try? BARE.decodeString(reply.payload) : nil) ?? String(decoding: reply.payload, as: UTF8.self)
            return .ok(JSON.object([("reply", .string(body))]).serialized())
        case let command where PairingService.commands.contains(command):
            guard let pairing else { return .error("this node cannot pair devices") }
            return await pairing.dispatch(request, options: options)
        default:
            return .error("unknown command '\(request.command)'")
        }
    }
}

extension NodeDirectory {
    func socketPath(name: String) -> FilePath { directory.appending("\(name).sock") }
}

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
            var request = ControlRequest(
                command: "message/send", arguments: ["to": to, "message": text, "timeout": "\(Quantity.milliseconds(of: timeout))ms"])
            if raw { request.arguments["raw"] = "true" }
            for i in 0..<count {
                try await pause(before: i)
                request.arguments["message"] = message(i)
                let body = try await SecureChannelCommands.call(request, node: from, directory: directory)
                print(JSONText.field("reply", in: body) ?? body)
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
            // Say what happened to the connection, if it closed: a wrong version byte, garbage, an immediate close.
            let closed = segments.lazy.compactMap { segment -> String? in
                guard case .address(let hop) = segment, hop.transportType == .tcp else { return nil }
                return tcp.closeReason(peer: hop.valueString).map { "the connection to \(hop.valueString) closed: \($0)" }
            }.first
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

    /// Sends a request to a node's control socket; returns the body of an `ok` response.
    static func call(_ request: ControlRequest, node: String, directory: NodeDirectory) async throws -> String {
        try NodeDirectory.validate(name: node)
        try directory.checkSafe()
        try directory.checkSocket(name: node)
        let group = Commands.makeEventLoopGroup()
        let response: ControlResponse
        do {
            defer { group.shutdownGracefully { _ in } }
            response = try await ControlClient.send(
                request, path: directory.socketPath(name: node).string, group: group, timeout: .seconds(120))
        } catch let error as ControlError {
            if case .notRunning = error {
                throw CommandFailure("node '\(node)' is not running (no control socket in \(directory.directory))")
            }
            throw CommandFailure("\(error)")
        }
        guard response.status == .ok else { throw CommandFailure(response.body) }
        return response.body
    }

    static func run(_ sub: String, _ arguments: ParsedArguments) async throws -> Int32 {
        let directory = NodeDirectory(stateDirectory: Support.stateDirectory(arguments.value("state-dir")))
        let node = arguments.value("from") ?? "default"
        let asJSON = arguments.flag("json")
        switch sub {
        case "create":
            guard let to = arguments.value("to") else { throw CommandFailure("missing --to <multiaddr>", status: 2) }
            let body = try await call(
                ControlRequest(command: "secure-channel/create", arguments: ["to": to, "timeout": arguments.value("timeout") ?? "30s"]),
                node: node, directory: directory)
            print(asJSON ? body : JSONText.field("address", in: body) ?? body)
        case "list":
            let body = try await call(ControlRequest(command: "secure-channel/list"), node: node, directory: directory)
            print(body)
        case "show", "delete":
            let body = try await call(
                ControlRequest(command: "secure-channel/\(sub)", arguments: ["address": arguments.value("address") ?? ""]),
                node: node, directory: directory)
            print(body)
        case "status":
            print(try await call(ControlRequest(command: "status"), node: node, directory: directory))
        default:
            throw CommandFailure("unknown secure-channel command \(sub)", status: 2)
        }
        return 0
    }
}

/// Pulls one string field out of our own JSON output (no parser needed for the few places the CLI prints one).
enum JSONText {
    static func field(_ name: String, in json: String) -> String? {
        guard let range = json.firstRange(of: "\"\(name)\": \"") else { return nil }
        var out = ""
        var escaped = false
        for c in json[range.upperBound...] {
            if escaped {
                out.append(c == "n" ? "\n" : c)
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else if c == "\"" {
                return out
            } else {
                out.append(c)
            }
        }
        return nil
    }
}
