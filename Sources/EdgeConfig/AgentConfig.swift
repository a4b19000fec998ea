// The agent configuration model (docs/configuration.md), decoded from YAML with errors naming file, line and key.

/// A configuration error: `file:line: key.path: message`.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var key: String
    public var message: String
    public var description: String { "\(file):\(line): \(key.isEmpty ? "" : key + ": ")\(message)" }
}

extension String {
    /// `max_frame` → `max-frame` (YAML keys use underscores, CLI specs hyphens).
    var replacingUnderscores: String { String(map { $0 == "_" ? "-" : $0 }) }
}

/// `ockam-edge agent` configuration. Every key is documented in docs/configuration.md.
public struct AgentConfig: Equatable, Sendable {
    public struct Node: Equatable, Sendable {
        public var name = "agent"
        public var stateDirectory: String?
        public var logLevel = "info"
        /// Master switch: forward messages from links and secure channels to remote hops at all.
        public var forwarding = true
        /// Whether `echo` and `uppercase` are reachable from plain links (else only through secure channels).
        public var publicServices = true
    }

    /// An entry of `forwarding.allow` (`host:port`, `host:*`, `a.b.c.d/len:port`, `[v6/len]:port`), with its line;
    /// the agent validates it with the TCP transport's parser.
    public struct ForwardRule: Equatable, Sendable {
        public var text: String
        public var line: Int
        public init(text: String, line: Int) {
            self.text = text
            self.line = line
        }
    }

    public struct VaultSettings: Equatable, Sendable {
        public var path: String?
        public var keyFile: String?
    }

    public struct Authority: Equatable, Sendable {
        public var name: String
        /// Change history, hex.
        public var identity: String
        public init(name: String, identity: String) {
            self.name = name
            self.identity = identity
        }
    }

    public struct Trust: Equatable, Sendable {
        public var identities: [String] = []
        public var authorities: [Authority] = []
        public var requireAttributes: [String: String] = [:]
        public init() {}
    }

    /// Limits of the TCP listeners (finding F2 in docs/security.md).
    public struct TCPSettings: Equatable, Sendable {
        /// Time every inbound frame is allowed from its first byte; a frame of n bytes gets this + n / frame_min_rate.
        public var frameTimeout: Duration = .seconds(30)
        /// Bytes per second an inbound frame must at least average beyond frame_timeout.
        public var frameMinRate = 10_000
        /// Connections each listener serves at once; more are closed at accept and counted.
        public var maxConnections = 512
        /// Connections each listener serves at once from one IPv4 address or IPv6 /64 (loopback exempt); nil: `off`.
        public var maxConnectionsPerHost: Int? = 64
        /// Outgoing connections open or being opened at once.
        public var maxOutgoing = 256
        /// Outgoing connections idle this long are closed (configured uplinks excepted); nil: `off`.
        public var outgoingIdleTimeout: Duration? = .seconds(15 * 60)
        /// Bytes of unfinished inbound frames each listener's connections may hold together.
        public var maxUnfinishedBytes = 64 << 20
        /// The same per host; nil: `off`.
        public var maxUnfinishedBytesPerHost: Int? = 24 << 20
        public init() {}
    }

    public struct SecureChannelListener: Equatable, Sendable {
        public var name = "api"
        public var cipher = "aes-gcm"
        public var handshakeTimeout: Duration = .seconds(30)
        public var maxHalfOpen = 256
        public var maxHalfOpenPerSource = 64
        /// nil: `off`.
        public var idleTimeout: Duration? = .seconds(6 * 3600)
        public var maxChannels = 1024
        public init() {}
    }

    public struct Relay: Equatable, Sendable {
        public var name: String
        /// Multiaddr of the hub (e.g. `/ip4/10.0.0.5/tcp/4000/secure/api`).
        public var hub: String
    }

    public struct Outlet: Equatable, Sendable {
        public var address = "outlet"
        public var target: String
        /// Identifiers allowed to use it (empty = any peer the node's trust policy admits).
        public var allow: [String] = []
    }

    public struct Inlet: Equatable, Sendable {
        public var listen: String
        /// Multiaddr of the outlet, e.g. `/ip4/10.0.0.5/tcp/4000/secure/api/service/outlet`.
        public var to: String
    }

    /// A device link in the CLI's spec form (`--serial`, `--ble-listen`, `--ble-connect`), with the line it came
    /// from; the agent validates it with the transport's own parser.
    public struct DeviceLink: Equatable, Sendable {
        public var spec: String
        public var line: Int
        public var key: String
        public init(spec: String, line: Int, key: String) {
            self.spec = spec
            self.line = line
            self.key = key
        }
    }

    public struct QueueSettings: Equatable, Sendable {
        public var memoryMessages = 1024
        public var memoryBytes = 1 << 20
        public var diskBytes = 64 << 20
        /// `spill` (memory first, disk when full or the uplink stays down) or `always` (every message on disk first).
        public var durability = "spill"
        public init() {}
    }

    /// A bridge: devices send to `/service/<name>` on the gateway; messages go, queued, to `to`.
    public struct Bridge: Equatable, Sendable {
        public var name: String
        public var to: String
        public var ackTimeout: Duration = .seconds(5)
        public var reply = true
        public var queue = QueueSettings()
        /// When set, only paired devices whose pairing attributes include all of these may use the bridge (through
        /// their secure channel); link-only messages are refused.
        public var requireAttributes: [String: String] = [:]
        public init(name: String, to: String) {
            self.name = name
            self.to = to
        }
    }

    /// An ingest service: acknowledges bridge envelopes and writes each once as a JSON line.
    public struct Ingest: Equatable, Sendable {
        public var address = "ingest"
        /// A file (appended to, 0600) or `-` for standard output.
        public var output = "-"
        public var sync = false
        public var allow: [String] = []
    }

    /// Supervision of relay registrations and inlet routes.
    public struct Sessions: Equatable, Sendable {
        public var pingInterval: Duration = .seconds(10)
        public var pingTimeout: Duration = .seconds(5)
        public var failuresBeforeReplace = 3
        public var maxBackoff: Duration = .seconds(30)
        public init() {}
    }

    public var node = Node()
    public var sessions = Sessions()
    public var vault = VaultSettings()
    public var identity: String?
    public var trust = Trust()
    public var tcpListen: [String] = []
    public var tcp = TCPSettings()
    public var secureChannelListeners: [SecureChannelListener] = [SecureChannelListener()]
    public var relayService = false
    public var relays: [Relay] = []
    public var outlets: [Outlet] = []
    public var inlets: [Inlet] = []
    public var metricsListen: String?
    public var serialPorts: [DeviceLink] = []
    public var bleListen: [DeviceLink] = []
    public var bleConnect: [DeviceLink] = []
    public var bridges: [Bridge] = []
    public var ingest: [Ingest] = []
    /// TCP destinations a link's or secure channel's messages may be forwarded to, besides the configured uplinks.
    public var forwardAllow: [ForwardRule] = []

    public init() {}

    // MARK: Decoding

    /// Parses and validates a configuration file's text. `file` is used in error messages.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> AgentConfig {
        let root: YAMLNode
        do {
            root = try YAML.parse(text)
        } catch {
            throw ConfigError(file: file, line: error.line, key: "", message: error.message)
        }
        var decoder = Decoder(file: file)
        return try decoder.decode(root)
    }

    struct Decoder {
        let file: String

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

        func string(_ node: YAMLNode, _ key: String) throws(ConfigError) -> String {
            guard case .scalar(let value, _) = node else { throw fail(node, key, "expected a single value") }
            return value
        }

        func nonEmpty(_ node: YAMLNode, _ key: String) throws(ConfigError) -> String {
            let value = try string(node, key)
            guard !value.isEmpty else { throw fail(node, key, "must not be empty") }
            return value
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

        func list(_ node: YAMLNode, _ key: String) throws(ConfigError) -> [YAMLNode] {
            switch node {
            case .sequence(let items, _): return items
            case .scalar(let s, _) where s.isEmpty: return []
            default: throw fail(node, key, "expected a list")
            }
        }

        func hostPort(_ node: YAMLNode, _ key: String) throws(ConfigError) -> String {
            let value = try nonEmpty(node, key)
            guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]),
                (0...65535).contains(port), colon != value.startIndex
            else { throw fail(node, key, "expected host:port (e.g. 0.0.0.0:4000)") }
            return value
        }

        func duration(_ node: YAMLNode, _ key: String) throws(ConfigError) -> Duration {
            let value = try nonEmpty(node, key)
            guard let parsed = Quantity.duration(value), parsed > .zero else {
                throw fail(node, key, "expected a duration above 0 and at most a year (e.g. 30s, 500ms, 2m, 6h)")
            }
            return parsed
        }

        /// A whole number in `range`, or nil for `off`.
        func intOrOff(_ node: YAMLNode, _ key: String, range: ClosedRange<Int>) throws(ConfigError) -> Int? {
            if case .scalar(let text, _) = node, text == "off" { return nil }
            return try int(node, key, range: range)
        }

        /// A duration, or `off`.
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

        mutating func decode(_ root: YAMLNode) throws(ConfigError) -> AgentConfig {
            var config = AgentConfig()
            let top = try mapping(root, "")
            for (key, value, _) in top {
                switch key {
                case "node":
                    for (k, v, _) in try mapping(value, "node") {
                        switch k {
                        case "name":
                            let name = try nonEmpty(v, "node.name")
                            guard name.utf8.count <= 64, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                                throw fail(v, "node.name", "letters, digits, '-', '_', '.'; at most 64")
                            }
                            config.node.name = name
                        case "state_dir": config.node.stateDirectory = try nonEmpty(v, "node.state_dir")
                        case "log_level":
                            let level = try nonEmpty(v, "node.log_level")
                            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(level) else {
                                throw fail(v, "node.log_level", "expected trace, debug, info, notice, warning, error or critical")
                            }
                            config.node.logLevel = level
                        case "public_services": config.node.publicServices = try bool(v, "node.public_services")
                        default: config.node.forwarding = try bool(v, "node.forwarding")
                        }
                    }
                case "forwarding":
                    for (_, v, _) in try mapping(value, "forwarding") {
                        for item in try list(v, "forwarding.allow") {
                            let text = try nonEmpty(item, "forwarding.allow[]")
                            config.forwardAllow.append(ForwardRule(text: text, line: item.line))
                        }
                    }
                case "vault":
                    for (k, v, _) in try mapping(value, "vault") {
                        if k == "path" { config.vault.path = try nonEmpty(v, "vault.path") } else { config.vault.keyFile = try nonEmpty(v, "vault.key_file") }
                    }
                case "identity":
                    config.identity = try nonEmpty(value, "identity")
                case "trust":
                    for (k, v, _) in try mapping(value, "trust") {
                        switch k {
                        case "identities":
                            config.trust.identities = try list(v, "trust.identities").map { (item) throws(ConfigError) -> String in
                                try identifier(item, "trust.identities")
                            }
                        case "authorities":
                            for item in try list(v, "trust.authorities") {
                                var name: String?
                                var identity: String?
                                for (ak, av, _) in try mapping(item, "trust.authorities[]") {
                                    if ak == "name" { name = try nonEmpty(av, "trust.authorities[].name") } else {
                                        let hex = try nonEmpty(av, "trust.authorities[].identity")
                                        guard hex.count % 2 == 0, hex.allSatisfy(\.isHexDigit) else {
                                            throw fail(av, "trust.authorities[].identity", "expected a change history in hex ('identity show --full')")
                                        }
                                        identity = hex
                                    }
                                }
                                guard let name, let identity else {
                                    throw fail(item, "trust.authorities[]", "needs both name and identity")
                                }
                                config.trust.authorities.append(Authority(name: name, identity: identity))
                            }
                        default:
                            guard case .mapping(let entries, _) = v else { throw fail(v, "trust.require_attributes", "expected a mapping") }
                            for entry in entries {
                                config.trust.requireAttributes[entry.key] = try string(entry.value, "trust.require_attributes.\(entry.key)")
                            }
                        }
                    }
                case "transports":
                    for (k, v, _) in try mapping(value, "transports") {
                        if k == "serial" {
                            config.serialPorts = try list(v, "transports.serial").map { (item) throws(ConfigError) -> DeviceLink in
                                try deviceLink(item, "transports.serial[]", first: "path")
                            }
                            continue
                        }
                        if k == "ble" {
                            for (bk, bv, _) in try mapping(v, "transports.ble") {
                                let links = try list(bv, "transports.ble.\(bk)").map { (item) throws(ConfigError) -> DeviceLink in
                                    try deviceLink(item, "transports.ble.\(bk)[]", first: bk == "connect" ? "address" : "adapter")
                                }
                                if bk == "listen" { config.bleListen = links } else { config.bleConnect = links }
                            }
                            continue
                        }
                        for (tk, tv, _) in try mapping(v, "transports.tcp") {
                            switch tk {
                            case "frame_timeout":
                                config.tcp.frameTimeout = try duration(tv, "transports.tcp.frame_timeout")
                                continue
                            case "frame_min_rate":
                                config.tcp.frameMinRate = try int(tv, "transports.tcp.frame_min_rate", range: 1...1 << 30)
                                continue
                            case "max_connections":
                                config.tcp.maxConnections = try int(tv, "transports.tcp.max_connections", range: 1...1_000_000)
                                continue
                            case "max_unfinished_bytes":
                                config.tcp.maxUnfinishedBytes = try int(
                                    tv, "transports.tcp.max_unfinished_bytes", range: (16 << 20) + 4...1 << 40)
                                continue
                            case "max_unfinished_bytes_per_host":
                                config.tcp.maxUnfinishedBytesPerHost = try intOrOff(
                                    tv, "transports.tcp.max_unfinished_bytes_per_host", range: (16 << 20) + 4...1 << 40)
                                continue
                            case "outgoing_idle_timeout":
                                config.tcp.outgoingIdleTimeout = try optionalDuration(tv, "transports.tcp.outgoing_idle_timeout")
                                continue
                            case "max_outgoing":
                                config.tcp.maxOutgoing = try int(tv, "transports.tcp.max_outgoing", range: 1...1_000_000)
                                continue
                            case "max_connections_per_host":
                                config.tcp.maxConnectionsPerHost = try intOrOff(
                                    tv, "transports.tcp.max_connections_per_host", range: 1...1_000_000)
                                continue
                            default: break
                            }
                            if case .scalar = tv {
                                config.tcpListen = [try hostPort(tv, "transports.tcp.listen")]
                            } else {
                                config.tcpListen = try list(tv, "transports.tcp.listen").map { (item) throws(ConfigError) -> String in
                                    try hostPort(item, "transports.tcp.listen")
                                }
                            }
                        }
                    }
                case "secure_channels":
                    for (k, v, _) in try mapping(value, "secure_channels") where k == "listeners" {
                        config.secureChannelListeners = []
                        for item in try list(v, "secure_channels.listeners") {
                            var listener = SecureChannelListener()
                            for (lk, lv, _) in try mapping(item, "secure_channels.listeners[]") {
                                switch lk {
                                case "name": listener.name = try nonEmpty(lv, "secure_channels.listeners[].name")
                                case "cipher":
                                    let cipher = try nonEmpty(lv, "secure_channels.listeners[].cipher")
                                    guard ["aes-gcm", "chacha20-poly1305"].contains(cipher) else {
                                        throw fail(lv, "secure_channels.listeners[].cipher", "expected aes-gcm or chacha20-poly1305")
                                    }
                                    listener.cipher = cipher
                                case "handshake_timeout":
                                    listener.handshakeTimeout = try duration(lv, "secure_channels.listeners[].handshake_timeout")
                                case "idle_timeout":
                                    listener.idleTimeout = try optionalDuration(lv, "secure_channels.listeners[].idle_timeout")
                                case "max_channels":
                                    listener.maxChannels = try int(lv, "secure_channels.listeners[].max_channels", range: 1...1_000_000)
                                case "max_half_open_per_source":
                                    listener.maxHalfOpenPerSource = try int(
                                        lv, "secure_channels.listeners[].max_half_open_per_source", range: 1...100_000)
                                default:
                                    listener.maxHalfOpen = try int(lv, "secure_channels.listeners[].max_half_open", range: 1...100_000)
                                }
                            }
                            config.secureChannelListeners.append(listener)
                        }
                    }
                case "relays":
                    for (k, v, _) in try mapping(value, "relays") {
                        if k == "serve" {
                            config.relayService = try bool(v, "relays.serve")
                            continue
                        }
                        for item in try list(v, "relays.register") {
                            var name: String?
                            var hub: String?
                            for (rk, rv, _) in try mapping(item, "relays.register[]") {
                                if rk == "name" { name = try nonEmpty(rv, "relays.register[].name") } else { hub = try multiaddr(rv, "relays.register[].hub") }
                            }
                            guard let name, let hub else { throw fail(item, "relays.register[]", "needs both name and hub") }
                            config.relays.append(Relay(name: name, hub: hub))
                        }
                    }
                case "portals":
                    for (k, v, _) in try mapping(value, "portals") {
                        for item in try list(v, "portals.\(k)") {
                            if k == "outlets" {
                                var outlet = Outlet(target: "")
                                for (ok, ov, _) in try mapping(item, "portals.outlets[]") {
                                    switch ok {
                                    case "address": outlet.address = try nonEmpty(ov, "portals.outlets[].address")
                                    case "target": outlet.target = try hostPort(ov, "portals.outlets[].target")
                                    default:
                                        outlet.allow = try list(ov, "portals.outlets[].allow").map { (i) throws(ConfigError) -> String in
                                            try identifier(i, "portals.outlets[].allow")
                                        }
                                    }
                                }
                                guard !outlet.target.isEmpty else { throw fail(item, "portals.outlets[]", "needs a target host:port") }
                                config.outlets.append(outlet)
                            } else {
                                var listen: String?
                                var to: String?
                                for (ik, iv, _) in try mapping(item, "portals.inlets[]") {
                                    if ik == "listen" { listen = try hostPort(iv, "portals.inlets[].listen") } else { to = try multiaddr(iv, "portals.inlets[].to") }
                                }
                                guard let listen, let to else { throw fail(item, "portals.inlets[]", "needs listen and to") }
                                config.inlets.append(Inlet(listen: listen, to: to))
                            }
                        }
                    }
                case "bridges":
                    for item in try list(value, "bridges") {
                        var name: String?
                        var to: String?
                        var bridge = Bridge(name: "", to: "")
                        for (bk, bv, _) in try mapping(item, "bridges[]") {
                            switch bk {
                            case "name":
                                let value = try nonEmpty(bv, "bridges[].name")
                                guard value.utf8.count <= 64, value.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                                    throw fail(bv, "bridges[].name", "letters, digits, '-', '_', '.'; at most 64")
                                }
                                name = value
                            case "to": to = try multiaddr(bv, "bridges[].to")
                            case "ack_timeout": bridge.ackTimeout = try duration(bv, "bridges[].ack_timeout")
                            case "reply": bridge.reply = try bool(bv, "bridges[].reply")
                            case "require_attributes":
                                guard case .mapping(let entries, _) = bv, !entries.isEmpty else {
                                    throw fail(bv, "bridges[].require_attributes", "expected a non-empty mapping of attribute: value")
                                }
                                for entry in entries {
                                    bridge.requireAttributes[entry.key] = try string(
                                        entry.value, "bridges[].require_attributes.\(entry.key)")
                                }
                            default:
                                for (qk, qv, _) in try mapping(bv, "bridges[].queue") {
                                    switch qk {
                                    case "memory_messages":
                                        bridge.queue.memoryMessages = try int(qv, "bridges[].queue.memory_messages", range: 1...1_000_000)
                                    case "memory_bytes":
                                        bridge.queue.memoryBytes = try int(qv, "bridges[].queue.memory_bytes", range: 65_536...1 << 30)
                                    case "disk_bytes":
                                        bridge.queue.diskBytes = try int(qv, "bridges[].queue.disk_bytes", range: 1 << 20...1 << 40)
                                    default:
                                        let value = try nonEmpty(qv, "bridges[].queue.durability")
                                        guard value == "spill" || value == "always" else {
                                            throw fail(qv, "bridges[].queue.durability", "expected spill or always")
                                        }
                                        bridge.queue.durability = value
                                    }
                                }
                            }
                        }
                        guard let name, let to else { throw fail(item, "bridges[]", "needs a name and a destination (to)") }
                        guard !config.bridges.contains(where: { $0.name == name }) else {
                            throw fail(item, "bridges[].name", "'\(name)' is used twice")
                        }
                        bridge.name = name
                        bridge.to = to
                        config.bridges.append(bridge)
                    }
                case "ingest":
                    for item in try list(value, "ingest") {
                        var ingest = Ingest()
                        for (ik, iv, _) in try mapping(item, "ingest[]") {
                            switch ik {
                            case "address": ingest.address = try nonEmpty(iv, "ingest[].address")
                            case "output": ingest.output = try nonEmpty(iv, "ingest[].output")
                            case "sync": ingest.sync = try bool(iv, "ingest[].sync")
                            default:
                                ingest.allow = try list(iv, "ingest[].allow").map { (i) throws(ConfigError) -> String in
                                    try identifier(i, "ingest[].allow")
                                }
                            }
                        }
                        config.ingest.append(ingest)
                    }
                case "sessions":
                    for (k, v, _) in try mapping(value, "sessions") {
                        switch k {
                        case "ping_interval": config.sessions.pingInterval = try duration(v, "sessions.ping_interval")
                        case "ping_timeout": config.sessions.pingTimeout = try duration(v, "sessions.ping_timeout")
                        case "max_backoff": config.sessions.maxBackoff = try duration(v, "sessions.max_backoff")
                        default:
                            config.sessions.failuresBeforeReplace = try int(v, "sessions.failures_before_replace", range: 1...100)
                        }
                    }
                default:  // metrics
                    for (k, v, _) in try mapping(value, "metrics") where k == "listen" {
                        config.metricsListen = try hostPort(v, "metrics.listen")
                    }
                }
            }
            if config.tcpListen.isEmpty { config.tcpListen = ["127.0.0.1:4000"] }
            return config
        }
    }
}
