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
        public init(name: String, hub: String) {
            self.name = name
            self.hub = hub
        }
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
        /// The ingest service; with several, the others in turn when one cannot be reached or stops acknowledging.
        public var to: [String]
        public var ackTimeout: Duration = .seconds(5)
        /// Most envelopes in flight once the ingest service keeps their order (docs/bridge.md).
        public var window = 256
        public var reply = true
        public var queue = QueueSettings()
        /// When set, only paired devices whose pairing attributes include all of these may use the bridge (through
        /// their secure channel); link-only messages are refused.
        public var requireAttributes: [String: String] = [:]
        public init(name: String, to: String...) {
            self.name = name
            self.to = to
        }
    }

    /// An ingest service: acknowledges bridge envelopes and stores each once through its sink.
    public struct Ingest: Equatable, Sendable {
        public var address = "ingest"
        /// A file (appended to, 0600) or `-` for standard output.
        public var output = "-"
        public var sync = false
        public var allow: [String] = []
        public var sink = SinkSettings()
    }

    /// Where an ingest service stores readings: `file` (the JSON lines of `output`) or `jetstream`.
    public struct SinkSettings: Equatable, Sendable {
        public var type = "file"
        /// The line of `type:` (else of `sink:`; 0 without a `sink:` section), for errors found after decoding.
        public var line = 0
        public var jetStream: JetStreamSinkSettings?
        public init() {}
    }

    /// A JetStream sink (docs/fleet.md). Secrets are named by file; the agent reads and checks the files.
    public struct JetStreamSinkSettings: Equatable, Sendable {
        public var servers: [String] = []
        public var stream = "OCKAM_EDGE"
        public var subjectPrefix = "ockam-edge"
        public var replicas = 1
        /// Limits of a stream the sink creates (nil: none).
        public var maxAge: Duration?
        public var maxBytes: Int?
        public var duplicateWindow: Duration = .seconds(120)
        public var timeout: Duration = .seconds(5)
        /// A file holding `user:password` (one line).
        public var userPasswordFile: PathSetting?
        public var tokenFile: PathSetting?
        /// A NATS `.creds` file (user JWT and nkey seed).
        public var credsFile: PathSetting?
        public var tlsCAFile: PathSetting?
        public init() {}
    }

    /// A file path with the line it was given on, so the agent's checks of the file can name it.
    public struct PathSetting: Equatable, Sendable {
        public var path: String
        public var line: Int
        public var key: String
        public init(path: String, line: Int, key: String) {
            self.path = path
            self.line = line
            self.key = key
        }
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
        return try Decoder(file: file).decode(root)
    }
}
