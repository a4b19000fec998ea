// Decodes AgentConfig from the YAML tree: one function per section, each naming every key it reads.

extension AgentConfig {
    /// Turns a parsed file into an ``AgentConfig``, one section of docs/configuration.md per function. Errors name the
    /// file, the line and the key path (`bridges[].queue.durability`). `mapping(_:_:)` rejects every key that
    /// ``AgentConfig/keys`` does not list under the mapping's path, so the `default:` of each switch is never reached.
    struct Decoder {
        let file: String

        func decode(_ root: YAMLNode) throws(ConfigError) -> AgentConfig {
            var config = AgentConfig()
            for (key, value, _) in try mapping(root, "") {
                switch key {
                case "node": config.node = try node(value)
                case "forwarding": config.forwardAllow = try forwarding(value)
                case "vault": config.vault = try vault(value)
                case "identity": config.identity = try nonEmpty(value, "identity")
                case "trust": config.trust = try trust(value)
                case "transports": try transports(value, into: &config)
                case "secure_channels": try secureChannels(value, into: &config)
                case "relays": try relays(value, into: &config)
                case "portals": try portals(value, into: &config)
                case "bridges": config.bridges = try bridges(value)
                case "ingest": config.ingest = try list(value, "ingest", each: ingest)
                case "sessions": config.sessions = try sessions(value)
                case "metrics": config.metricsListen = try metrics(value)
                default: break
                }
            }
            if config.tcpListen.isEmpty { config.tcpListen = ["127.0.0.1:4000"] }
            return config
        }

        // MARK: Sections

        func node(_ yaml: YAMLNode) throws(ConfigError) -> Node {
            var node = Node()
            for (key, value, _) in try mapping(yaml, "node") {
                let path = "node.\(key)"
                switch key {
                case "name": node.name = try shortName(value, path)
                case "state_dir": node.stateDirectory = try nonEmpty(value, path)
                case "log_level":
                    node.logLevel = try oneOf(value, path, ["trace", "debug", "info", "notice", "warning", "error", "critical"])
                case "forwarding": node.forwarding = try bool(value, path)
                case "public_services": node.publicServices = try bool(value, path)
                default: break
                }
            }
            return node
        }

        func forwarding(_ yaml: YAMLNode) throws(ConfigError) -> [ForwardRule] {
            var rules: [ForwardRule] = []
            for (key, value, _) in try mapping(yaml, "forwarding") {
                let path = "forwarding.\(key)"
                switch key {
                case "allow":
                    rules = try list(value, path) { (item) throws(ConfigError) in
                        ForwardRule(text: try nonEmpty(item, path + "[]"), line: item.line)
                    }
                default: break
                }
            }
            return rules
        }

        func vault(_ yaml: YAMLNode) throws(ConfigError) -> VaultSettings {
            var vault = VaultSettings()
            for (key, value, _) in try mapping(yaml, "vault") {
                let path = "vault.\(key)"
                switch key {
                case "path": vault.path = try nonEmpty(value, path)
                case "key_file": vault.keyFile = try nonEmpty(value, path)
                default: break
                }
            }
            return vault
        }

        func trust(_ yaml: YAMLNode) throws(ConfigError) -> Trust {
            var trust = Trust()
            for (key, value, _) in try mapping(yaml, "trust") {
                let path = "trust.\(key)"
                switch key {
                case "identities": trust.identities = try identifiers(value, path)
                case "authorities": trust.authorities = try list(value, path, each: authority)
                case "require_attributes": trust.requireAttributes = try attributes(value, path, otherwise: "expected a mapping")
                default: break
                }
            }
            return trust
        }

        func authority(_ yaml: YAMLNode) throws(ConfigError) -> Authority {
            var authority = Authority(name: "", identity: "")
            for (key, value, _) in try mapping(yaml, "trust.authorities[]") {
                let path = "trust.authorities[].\(key)"
                switch key {
                case "name": authority.name = try nonEmpty(value, path)
                case "identity":
                    let hex = try nonEmpty(value, path)
                    guard hex.count % 2 == 0, hex.allSatisfy(\.isHexDigit) else {
                        throw fail(value, path, "expected a change history in hex ('identity show --full')")
                    }
                    authority.identity = hex
                default: break
                }
            }
            guard !authority.name.isEmpty, !authority.identity.isEmpty else {
                throw fail(yaml, "trust.authorities[]", "needs both name and identity")
            }
            return authority
        }

        func transports(_ yaml: YAMLNode, into config: inout AgentConfig) throws(ConfigError) {
            for (key, value, _) in try mapping(yaml, "transports") {
                let path = "transports.\(key)"
                switch key {
                case "tcp": (config.tcpListen, config.tcp) = try tcp(value)
                case "serial":
                    config.serialPorts = try list(value, path) { (item) throws(ConfigError) in
                        try deviceLink(item, path + "[]", first: "path")
                    }
                case "ble": (config.bleListen, config.bleConnect) = try ble(value)
                default: break
                }
            }
        }

        /// The listeners (empty when not given: the caller supplies the default) and the limits.
        func tcp(_ yaml: YAMLNode) throws(ConfigError) -> (listen: [String], settings: TCPSettings) {
            var listen: [String] = []
            var tcp = TCPSettings()
            for (key, value, _) in try mapping(yaml, "transports.tcp") {
                let path = "transports.tcp.\(key)"
                switch key {
                case "listen":
                    if case .scalar = value {
                        listen = [try hostPort(value, path)]
                    } else {
                        listen = try list(value, path) { (item) throws(ConfigError) in try hostPort(item, path) }
                    }
                case "frame_timeout": tcp.frameTimeout = try duration(value, path)
                case "frame_min_rate": tcp.frameMinRate = try int(value, path, range: 1...1 << 30)
                case "max_connections": tcp.maxConnections = try int(value, path, range: 1...1_000_000)
                case "max_connections_per_host": tcp.maxConnectionsPerHost = try intOrOff(value, path, range: 1...1_000_000)
                case "max_unfinished_bytes": tcp.maxUnfinishedBytes = try int(value, path, range: (16 << 20) + 4...1 << 40)
                case "max_unfinished_bytes_per_host":
                    tcp.maxUnfinishedBytesPerHost = try intOrOff(value, path, range: (16 << 20) + 4...1 << 40)
                case "outgoing_idle_timeout": tcp.outgoingIdleTimeout = try optionalDuration(value, path)
                case "max_outgoing": tcp.maxOutgoing = try int(value, path, range: 1...1_000_000)
                default: break
                }
            }
            return (listen, tcp)
        }

        func ble(_ yaml: YAMLNode) throws(ConfigError) -> (listen: [DeviceLink], connect: [DeviceLink]) {
            var links: (listen: [DeviceLink], connect: [DeviceLink]) = ([], [])
            for (key, value, _) in try mapping(yaml, "transports.ble") {
                let path = "transports.ble.\(key)"
                switch key {
                case "listen":
                    links.listen = try list(value, path) { (item) throws(ConfigError) in
                        try deviceLink(item, path + "[]", first: "adapter")
                    }
                case "connect":
                    links.connect = try list(value, path) { (item) throws(ConfigError) in
                        try deviceLink(item, path + "[]", first: "address")
                    }
                default: break
                }
            }
            return links
        }

        func secureChannels(_ yaml: YAMLNode, into config: inout AgentConfig) throws(ConfigError) {
            for (key, value, _) in try mapping(yaml, "secure_channels") {
                switch key {
                case "listeners":
                    config.secureChannelListeners = try list(value, "secure_channels.listeners", each: secureChannelListener)
                default: break
                }
            }
        }

        func secureChannelListener(_ yaml: YAMLNode) throws(ConfigError) -> SecureChannelListener {
            var listener = SecureChannelListener()
            for (key, value, _) in try mapping(yaml, "secure_channels.listeners[]") {
                let path = "secure_channels.listeners[].\(key)"
                switch key {
                case "name": listener.name = try nonEmpty(value, path)
                case "cipher": listener.cipher = try oneOf(value, path, ["aes-gcm", "chacha20-poly1305"])
                case "handshake_timeout": listener.handshakeTimeout = try duration(value, path)
                case "max_half_open": listener.maxHalfOpen = try int(value, path, range: 1...100_000)
                case "max_half_open_per_source": listener.maxHalfOpenPerSource = try int(value, path, range: 1...100_000)
                case "idle_timeout": listener.idleTimeout = try optionalDuration(value, path)
                case "max_channels": listener.maxChannels = try int(value, path, range: 1...1_000_000)
                default: break
                }
            }
            return listener
        }

        func relays(_ yaml: YAMLNode, into config: inout AgentConfig) throws(ConfigError) {
            for (key, value, _) in try mapping(yaml, "relays") {
                let path = "relays.\(key)"
                switch key {
                case "serve": config.relayService = try bool(value, path)
                case "register": config.relays = try list(value, path, each: relay)
                default: break
                }
            }
        }

        func relay(_ yaml: YAMLNode) throws(ConfigError) -> Relay {
            var relay = Relay(name: "", hub: "")
            for (key, value, _) in try mapping(yaml, "relays.register[]") {
                let path = "relays.register[].\(key)"
                switch key {
                case "name": relay.name = try nonEmpty(value, path)
                case "hub": relay.hub = try multiaddr(value, path)
                default: break
                }
            }
            guard !relay.name.isEmpty, !relay.hub.isEmpty else { throw fail(yaml, "relays.register[]", "needs both name and hub") }
            return relay
        }

        func portals(_ yaml: YAMLNode, into config: inout AgentConfig) throws(ConfigError) {
            for (key, value, _) in try mapping(yaml, "portals") {
                let path = "portals.\(key)"
                switch key {
                case "outlets": config.outlets = try list(value, path, each: outlet)
                case "inlets": config.inlets = try list(value, path, each: inlet)
                default: break
                }
            }
        }

        func outlet(_ yaml: YAMLNode) throws(ConfigError) -> Outlet {
            var outlet = Outlet(target: "")
            for (key, value, _) in try mapping(yaml, "portals.outlets[]") {
                let path = "portals.outlets[].\(key)"
                switch key {
                case "address": outlet.address = try nonEmpty(value, path)
                case "target": outlet.target = try hostPort(value, path)
                case "allow": outlet.allow = try identifiers(value, path)
                default: break
                }
            }
            guard !outlet.target.isEmpty else { throw fail(yaml, "portals.outlets[]", "needs a target host:port") }
            return outlet
        }

        func inlet(_ yaml: YAMLNode) throws(ConfigError) -> Inlet {
            var inlet = Inlet(listen: "", to: "")
            for (key, value, _) in try mapping(yaml, "portals.inlets[]") {
                let path = "portals.inlets[].\(key)"
                switch key {
                case "listen": inlet.listen = try hostPort(value, path)
                case "to": inlet.to = try multiaddr(value, path)
                default: break
                }
            }
            guard !inlet.listen.isEmpty, !inlet.to.isEmpty else { throw fail(yaml, "portals.inlets[]", "needs listen and to") }
            return inlet
        }

        /// The bridges, whose names must differ (each is a worker address).
        func bridges(_ yaml: YAMLNode) throws(ConfigError) -> [Bridge] {
            var bridges: [Bridge] = []
            for item in try list(yaml, "bridges") {
                let bridge = try self.bridge(item)
                guard !bridges.contains(where: { $0.name == bridge.name }) else {
                    throw fail(item, "bridges[].name", "'\(bridge.name)' is used twice")
                }
                bridges.append(bridge)
            }
            return bridges
        }

        func bridge(_ yaml: YAMLNode) throws(ConfigError) -> Bridge {
            var bridge = Bridge(name: "")
            for (key, value, _) in try mapping(yaml, "bridges[]") {
                let path = "bridges[].\(key)"
                switch key {
                case "name": bridge.name = try shortName(value, path)
                case "to":
                    // One multiaddr, or a list of them (failover in order).
                    if case .sequence = value {
                        bridge.to = try list(value, path) { (item) throws(ConfigError) in try multiaddr(item, path) }
                        guard (1...8).contains(bridge.to.count) else {
                            throw fail(value, path, "expected 1 to 8 ingest services, got \(bridge.to.count)")
                        }
                    } else {
                        bridge.to = [try multiaddr(value, path)]
                    }
                case "ack_timeout": bridge.ackTimeout = try duration(value, path)
                case "window": bridge.window = try int(value, path, range: 1...4096)
                case "reply": bridge.reply = try bool(value, path)
                case "require_attributes":
                    bridge.requireAttributes = try attributes(
                        value, path, otherwise: "expected a non-empty mapping of attribute: value")
                case "queue": bridge.queue = try queue(value)
                default: break
                }
            }
            guard !bridge.name.isEmpty, !bridge.to.isEmpty else {
                throw fail(yaml, "bridges[]", "needs a name and a destination (to)")
            }
            return bridge
        }

        func queue(_ yaml: YAMLNode) throws(ConfigError) -> QueueSettings {
            var queue = QueueSettings()
            for (key, value, _) in try mapping(yaml, "bridges[].queue") {
                let path = "bridges[].queue.\(key)"
                switch key {
                case "memory_messages": queue.memoryMessages = try int(value, path, range: 1...1_000_000)
                case "memory_bytes": queue.memoryBytes = try int(value, path, range: 65_536...1 << 30)
                case "disk_bytes": queue.diskBytes = try int(value, path, range: 1 << 20...1 << 40)
                case "durability": queue.durability = try oneOf(value, path, ["spill", "always"])
                default: break
                }
            }
            return queue
        }

        func ingest(_ yaml: YAMLNode) throws(ConfigError) -> Ingest {
            var ingest = Ingest()
            for (key, value, _) in try mapping(yaml, "ingest[]") {
                let path = "ingest[].\(key)"
                switch key {
                case "address": ingest.address = try nonEmpty(value, path)
                case "output": ingest.output = try nonEmpty(value, path)
                case "sync": ingest.sync = try bool(value, path)
                case "allow": ingest.allow = try identifiers(value, path)
                case "sink": ingest.sink = try ingestSink(value)
                default: break
                }
            }
            return ingest
        }

        /// `ingest[].sink`: the type, and for `jetstream` where and how to publish.
        func ingestSink(_ yaml: YAMLNode) throws(ConfigError) -> SinkSettings {
            var sink = SinkSettings()
            sink.line = yaml.line
            var jetStream = JetStreamSinkSettings()
            var jetStreamKey: (key: String, node: YAMLNode)?
            for (key, value, _) in try mapping(yaml, "ingest[].sink") {
                let path = "ingest[].sink.\(key)"
                if key != "type" && jetStreamKey == nil { jetStreamKey = (path, value) }
                switch key {
                case "type":
                    sink.type = try oneOf(value, path, ["file", "jetstream"])
                    sink.line = value.line
                case "servers":
                    let servers: [String]
                    if case .scalar = value {
                        servers = [try natsURL(value, path)]
                    } else {
                        servers = try list(value, path) { (item) throws(ConfigError) in try natsURL(item, path) }
                    }
                    guard !servers.isEmpty, servers.count <= 32 else { throw fail(value, path, "expected 1 to 32 server URLs") }
                    jetStream.servers = servers
                case "stream":
                    let name = try nonEmpty(value, path)
                    guard name.utf8.count <= 64, name.utf8.allSatisfy(Self.isSubjectTokenByte) else {
                        throw fail(value, path, "ASCII letters, digits, '-' and '_'; at most 64")
                    }
                    jetStream.stream = name
                case "subject_prefix":
                    let prefix = try nonEmpty(value, path)
                    let tokens = prefix.split(separator: ".", omittingEmptySubsequences: false)
                    guard prefix.utf8.count <= 200,
                        tokens.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy(Self.isSubjectTokenByte) })
                    else {
                        throw fail(value, path, "dot-separated tokens of ASCII letters, digits, '-' and '_' (no wildcards); at most 200")
                    }
                    jetStream.subjectPrefix = prefix
                case "replicas": jetStream.replicas = try int(value, path, range: 1...5)
                case "max_age": jetStream.maxAge = try optionalDuration(value, path)
                case "max_bytes": jetStream.maxBytes = try intOrOff(value, path, range: 1 << 20...1 << 50)
                case "duplicate_window": jetStream.duplicateWindow = try duration(value, path)
                case "timeout": jetStream.timeout = try duration(value, path)
                case "user_password_file": jetStream.userPasswordFile = try pathSetting(value, path)
                case "token_file": jetStream.tokenFile = try pathSetting(value, path)
                case "creds_file": jetStream.credsFile = try pathSetting(value, path)
                case "tls_ca_file": jetStream.tlsCAFile = try pathSetting(value, path)
                default: break
                }
            }
            switch sink.type {
            case "jetstream":
                guard !jetStream.servers.isEmpty else { throw fail(yaml, "ingest[].sink.servers", "type jetstream needs servers") }
                let credentials = [jetStream.userPasswordFile, jetStream.tokenFile, jetStream.credsFile].compactMap { $0 }
                if credentials.count > 1 {
                    throw ConfigError(
                        file: file, line: credentials[1].line, key: credentials[1].key,
                        message: "at most one of user_password_file, token_file and creds_file")
                }
                sink.jetStream = jetStream
            default:
                if let (key, node) = jetStreamKey { throw fail(node, key, "only with type: jetstream") }
            }
            return sink
        }

        /// A NATS server URL: `nats://host:port` or `tls://host:port` (no credentials in it: they come from files).
        func natsURL(_ node: YAMLNode, _ key: String) throws(ConfigError) -> String {
            let value = try nonEmpty(node, key)
            let schemes = ["nats://", "tls://"]
            guard let scheme = schemes.first(where: { value.hasPrefix($0) }),
                let address = HostPort.parse(String(value.dropFirst(scheme.count))), !address.host.isEmpty
            else {
                throw fail(node, key, "expected nats://host:port or tls://host:port (credentials come from the *_file keys)")
            }
            return scheme + address.description
        }

        func pathSetting(_ node: YAMLNode, _ key: String) throws(ConfigError) -> PathSetting {
            PathSetting(path: try nonEmpty(node, key), line: node.line, key: key)
        }

        static func isSubjectTokenByte(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                true
            default: false
            }
        }

        func sessions(_ yaml: YAMLNode) throws(ConfigError) -> Sessions {
            var sessions = Sessions()
            for (key, value, _) in try mapping(yaml, "sessions") {
                let path = "sessions.\(key)"
                switch key {
                case "ping_interval": sessions.pingInterval = try duration(value, path)
                case "ping_timeout": sessions.pingTimeout = try duration(value, path)
                case "failures_before_replace": sessions.failuresBeforeReplace = try int(value, path, range: 1...100)
                case "max_backoff": sessions.maxBackoff = try duration(value, path)
                default: break
                }
            }
            return sessions
        }

        func metrics(_ yaml: YAMLNode) throws(ConfigError) -> String? {
            var listen: String?
            for (key, value, _) in try mapping(yaml, "metrics") {
                switch key {
                case "listen": listen = try hostPort(value, "metrics.listen")
                default: break
                }
            }
            return listen
        }

        // MARK: Values

        func fail(_ node: YAMLNode, _ key: String, _ message: String) -> ConfigError {
            ConfigError(file: file, line: node.line, key: key, message: message)
        }

        /// The entries of the mapping at `key`, which may hold the keys `AgentConfig.keys` lists below it and no others.
        func mapping(_ node: YAMLNode, _ key: String) throws(ConfigError) -> [(key: String, value: YAMLNode, line: Int)] {
            guard case .mapping(let entries, _) = node else { throw fail(node, key, "expected a mapping") }
            let allowed = AgentConfig.keys(under: key)
            for entry in entries where !allowed.contains(entry.key) {
                let path = key.isEmpty ? entry.key : "\(key).\(entry.key)"
                throw ConfigError(
                    file: file, line: entry.line, key: path,
                    message: "unknown key (expected one of: \(allowed.joined(separator: ", ")))")
            }
            return entries
        }

        /// A mapping of attributes to values: any names (they are the operator's), each value a single scalar.
        func attributes(_ node: YAMLNode, _ key: String, otherwise message: String) throws(ConfigError) -> [String: String] {
            guard case .mapping(let entries, _) = node, !entries.isEmpty else { throw fail(node, key, message) }
            var attributes: [String: String] = [:]
            for entry in entries {
                attributes[entry.key] = try string(entry.value, "\(key).\(entry.key)")
            }
            return attributes
        }

        func string(_ node: YAMLNode, _ key: String) throws(ConfigError) -> String {
            guard case .scalar(let value, _) = node else { throw fail(node, key, "expected a single value") }
            return value
        }

        func nonEmpty(_ node: YAMLNode, _ key: String) throws(ConfigError) -> String {
            let value = try string(node, key)
            guard !value.isEmpty else { throw fail(node, key, "must not be empty") }
            return value
        }

        /// One of `allowed`, which the error lists (`expected a, b or c`).
        func oneOf(_ node: YAMLNode, _ key: String, _ allowed: [String]) throws(ConfigError) -> String {
            let value = try nonEmpty(node, key)
            guard allowed.contains(value) else {
                throw fail(node, key, "expected \(allowed.dropLast().joined(separator: ", ")) or \(allowed.last ?? "")")
            }
            return value
        }

        /// A node or bridge name, which becomes part of an address and a file name.
        func shortName(_ node: YAMLNode, _ key: String) throws(ConfigError) -> String {
            let name = try nonEmpty(node, key)
            guard name.utf8.count <= 64, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                throw fail(node, key, "letters, digits, '-', '_', '.'; at most 64")
            }
            return name
        }

        func bool(_ node: YAMLNode, _ key: String) throws(ConfigError) -> Bool {
            switch try string(node, key) {
            case "true", "yes", "on": return true
            case "false", "no", "off": return false
            default: throw fail(node, key, "expected true or false")
            }
        }

        func int(_ node: YAMLNode, _ key: String, range: ClosedRange<Int>) throws(ConfigError) -> Int {
            guard let value = Quantity.count(try string(node, key), in: range) else {
                throw fail(node, key, "expected a whole number in \(range.lowerBound)...\(range.upperBound)")
            }
            return value
        }

        /// A whole number in `range`, or nil for `off`.
        func intOrOff(_ node: YAMLNode, _ key: String, range: ClosedRange<Int>) throws(ConfigError) -> Int? {
            if case .scalar(let text, _) = node, text == "off" { return nil }
            return try int(node, key, range: range)
        }

        /// The items of a list; an empty value is an empty list.
        func list(_ node: YAMLNode, _ key: String) throws(ConfigError) -> [YAMLNode] {
            switch node {
            case .sequence(let items, _): return items
            case .scalar(let s, _) where s.isEmpty: return []
            default: throw fail(node, key, "expected a list")
            }
        }

        /// The items of a list, each decoded by `each`.
        func list<Item>(
            _ node: YAMLNode, _ key: String, each: (YAMLNode) throws(ConfigError) -> Item
        ) throws(ConfigError) -> [Item] {
            var items: [Item] = []
            for item in try list(node, key) { items.append(try each(item)) }
            return items
        }

        /// A ``HostPort`` with a host, in its canonical form (`04000` is kept as `4000`).
        func hostPort(_ node: YAMLNode, _ key: String) throws(ConfigError) -> String {
            let value = try nonEmpty(node, key)
            guard let address = HostPort.parse(value), !address.host.isEmpty else {
                throw fail(node, key, "expected host:port (e.g. 0.0.0.0:4000)")
            }
            return address.description
        }

        func duration(_ node: YAMLNode, _ key: String) throws(ConfigError) -> Duration {
            let value = try nonEmpty(node, key)
            guard let parsed = Quantity.duration(value), parsed > .zero else {
                throw fail(node, key, "expected a duration above 0 and at most a year (e.g. 30s, 500ms, 2m, 6h)")
            }
            return parsed
        }

        /// A duration, or nil for `off`.
        func optionalDuration(_ node: YAMLNode, _ key: String) throws(ConfigError) -> Duration? {
            if case .scalar(let text, _) = node, text == "off" { return nil }
            return try duration(node, key)
        }

        func identifier(_ node: YAMLNode, _ key: String) throws(ConfigError) -> String {
            let value = try nonEmpty(node, key)
            guard value.hasPrefix("I"), value.utf8.count == 65, value.dropFirst().allSatisfy(\.isHexDigit) else {
                throw fail(node, key, "expected an identifier (I followed by 64 hex characters)")
            }
            return value
        }

        /// A list of identifiers; an item's error names the list's key.
        func identifiers(_ node: YAMLNode, _ key: String) throws(ConfigError) -> [String] {
            try list(node, key) { (item) throws(ConfigError) in try identifier(item, key) }
        }

        /// A device link: either the CLI spec as one string, or a mapping whose `first` key (path, address, adapter)
        /// leads and whose other keys become `,key=value` options.
        func deviceLink(_ node: YAMLNode, _ key: String, first: String) throws(ConfigError) -> DeviceLink {
            switch node {
            case .scalar:
                return DeviceLink(spec: try nonEmpty(node, key), line: node.line, key: key)
            case .mapping(let entries, _):
                var head: String?
                var options: [String] = []
                for entry in entries {
                    let value = try string(entry.value, "\(key).\(entry.key)")
                    if entry.key == first { head = value } else { options.append("\(entry.key.replacingUnderscores)=\(value)") }
                }
                if head == nil && first == "adapter" { head = "" }
                guard let head else { throw fail(node, key, "needs \(first)") }
                let spec = ([head].filter { !$0.isEmpty } + options).joined(separator: ",")
                return DeviceLink(spec: spec, line: node.line, key: key)
            default:
                throw fail(node, key, "expected a spec string or a mapping")
            }
        }

        func multiaddr(_ node: YAMLNode, _ key: String) throws(ConfigError) -> String {
            let value = try nonEmpty(node, key)
            guard value.hasPrefix("/") else { throw fail(node, key, "expected a multiaddr such as /ip4/10.0.0.5/tcp/4000/secure/api") }
            return value
        }
    }
}
