import Testing

@testable import EdgeConfig

@Suite("Agent configuration")
struct AgentConfigTests {
    static let complete = """
        node:
          name: gateway
          state_dir: /var/lib/ockam-edge
          log_level: debug
          forwarding: true
        vault:
          path: /var/lib/ockam-edge/vault
          key_file: /run/credentials/ockam-edge.service/vault-key
        identity: gateway
        trust:
          identities:
            - I923829d0397a06fa862be5a87b7966959b8ef99ab6455b843ca9131a747b4819
          authorities:
            - name: acme
              identity: 8182583783010158
          require_attributes:
            role: sensor
        transports:
          tcp:
            listen: [0.0.0.0:4000, "[::]:4000"]
            frame_timeout: 10s
            frame_min_rate: 2000
            max_connections: 64
            max_connections_per_host: 16
            outgoing_idle_timeout: 1.5m
        secure_channels:
          listeners:
            - name: api
              handshake_timeout: 20s
              idle_timeout: "off"
            - name: api-chacha
              cipher: chacha20-poly1305
              max_half_open: 64
              max_half_open_per_source: 8
              idle_timeout: 2h
              max_channels: 100
        relays:
          serve: true
          register:
            - name: gateway-1
              hub: /ip4/10.0.0.5/tcp/4000/secure/api
        portals:
          outlets:
            - target: 127.0.0.1:8080
              allow: [I923829d0397a06fa862be5a87b7966959b8ef99ab6455b843ca9131a747b4819]
          inlets:
            - listen: 127.0.0.1:7000
              to: /ip4/10.0.0.5/tcp/4000/secure/api/service/outlet
        sessions:
          ping_interval: 2s
          ping_timeout: 1500ms
          max_backoff: 1m
        metrics:
          listen: 127.0.0.1:9464
        """

    @Test func completeExampleDecodes() throws {
        let config = try AgentConfig.parse(Self.complete, file: "agent.yaml")
        #expect(config.node.name == "gateway")
        #expect(config.node.logLevel == "debug")
        #expect(config.vault.keyFile == "/run/credentials/ockam-edge.service/vault-key")
        #expect(config.trust.identities.count == 1)
        #expect(config.trust.authorities == [AgentConfig.Authority(name: "acme", identity: "8182583783010158")])
        #expect(config.trust.requireAttributes == ["role": "sensor"])
        #expect(config.tcpListen == ["0.0.0.0:4000", "[::]:4000"])
        #expect(config.secureChannelListeners.map(\.name) == ["api", "api-chacha"])
        #expect(config.secureChannelListeners[1].cipher == "chacha20-poly1305")
        #expect(config.secureChannelListeners[1].maxHalfOpen == 64)
        #expect(config.secureChannelListeners[1].maxHalfOpenPerSource == 8)
        #expect(config.secureChannelListeners[1].idleTimeout == .seconds(7200))
        #expect(config.secureChannelListeners[1].maxChannels == 100)
        #expect(config.secureChannelListeners[0].idleTimeout == nil)
        #expect(config.tcp.frameTimeout == .seconds(10))
        #expect(config.tcp.frameMinRate == 2000)
        #expect(config.tcp.maxConnections == 64)
        #expect(config.tcp.maxConnectionsPerHost == 16)
        // Durations are decoded once, here, into Durations the runtime uses as they are.
        #expect(config.tcp.outgoingIdleTimeout == .seconds(90))
        #expect(config.secureChannelListeners[0].handshakeTimeout == .seconds(20))
        #expect(config.sessions.pingInterval == .seconds(2) && config.sessions.pingTimeout == .milliseconds(1500))
        #expect(config.sessions.maxBackoff == .seconds(60))
        #expect(config.relayService)
        #expect(config.relays == [AgentConfig.Relay(name: "gateway-1", hub: "/ip4/10.0.0.5/tcp/4000/secure/api")])
        #expect(config.outlets.first?.target == "127.0.0.1:8080")
        #expect(config.outlets.first?.address == "outlet")
        #expect(config.inlets.first?.listen == "127.0.0.1:7000")
        #expect(config.metricsListen == "127.0.0.1:9464")
    }

    @Test func theDocumentedExampleFileIsValid() throws {
        let text = Self.readDoc("docs/agent.example.yaml")
        #expect(!text.isEmpty, "docs/agent.example.yaml missing")
        _ = try AgentConfig.parse(text, file: "agent.example.yaml")
    }

    /// The configuration the Debian package installs is valid and secure as shipped: loopback only, nothing forwarded
    /// beyond configured uplinks (there are none), no metrics endpoint, no relay service, state where the unit keeps it.
    @Test func thePackagedConfigurationIsValidAndSecureByDefault() throws {
        let text = Self.readDoc("packaging/agent.yaml")
        #expect(!text.isEmpty, "packaging/agent.yaml missing")
        let config = try AgentConfig.parse(text, file: "agent.yaml")
        #expect(config.tcpListen == ["127.0.0.1:4000"])
        #expect(config.forwardAllow.isEmpty && config.bridges.isEmpty && config.relays.isEmpty && config.inlets.isEmpty)
        #expect(config.metricsListen == nil)
        #expect(!config.relayService && config.outlets.isEmpty && config.serialPorts.isEmpty)
        #expect(config.node.stateDirectory == "/var/lib/ockam-edge" && config.vault.path == "/var/lib/ockam-edge/vault")
    }

    /// A file of the package, read whole ("" if it is missing).
    static func readDoc(_ relative: String) -> String {
        let path = #filePath.split(separator: "/").dropLast(3).joined(separator: "/")
        var bytes: [UInt8] = []
        if let handle = fopen("/" + path + "/" + relative, "r") {
            defer { fclose(handle) }
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = fread(&buffer, 1, buffer.count, handle)
                if count == 0 { break }
                bytes += buffer.prefix(count)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// docs/configuration.md's "Keys" table is `AgentConfig.keys`, row for row (the table the decoder checks keys
    /// against and the manual page is made from). On a mismatch the expected table is printed, ready to paste.
    @Test func theDocumentedKeysAreTheDecodersKeys() {
        let doc = Self.readDoc("docs/configuration.md")
        #expect(!doc.isEmpty, "docs/configuration.md missing")
        let lines = doc.split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(of: "| key | type | default | meaning |") else {
            Issue.record("docs/configuration.md has no Keys table")
            return
        }
        let table = lines[start...].prefix { $0.hasPrefix("|") }.map { $0 + "\n" }.joined()
        let expected = AgentConfig.keysMarkdownTable()
        #expect(table == expected, "docs/configuration.md's Keys table differs from AgentConfig.keys; it should be:\n\(expected)")
        #expect(AgentConfig.keys.count >= 60)
    }

    /// Each default the key table documents is the decoder's: writing a key with its documented default changes
    /// nothing (keys whose default is a single value; list items need a few fields of their own).
    @Test func everyDocumentedDefaultIsTheDecodersDefault() throws {
        let itemFields: [String: [(String, String)]] = [
            "secure_channels.listeners[]": [("name", "api")],
            "bridges[]": [("name", "b"), ("to", "/ip4/10.0.0.5/tcp/4000/secure/api/service/ingest")],
            "ingest[]": [("address", "ingest")],
        ]
        // Mappings whose other keys mean something only with these (a JetStream sink's keys need its type).
        let mappingFields: [String: [(String, String)]] = [
            "ingest[].sink": [("type", "jetstream"), ("servers", "nats://127.0.0.1:4222")],
        ]
        /// The YAML for `path` set to `value`, or (nil) only the list items and required mappings on the way to it.
        func yaml(_ path: String, _ value: String?) -> String? {
            var lines: [String] = []
            var indent = ""
            var prefix = ""
            let components = path.split(separator: ".").map(String.init)
            let prefixes = components.indices.map { components[...$0].joined(separator: ".") }
            let lastList = components.indices.last { components[$0].hasSuffix("[]") || mappingFields[prefixes[$0]] != nil } ?? -1
            for (index, component) in components.enumerated() {
                if value == nil && index > lastList { break }
                prefix += (prefix.isEmpty ? "" : ".") + component
                if let fields = mappingFields[prefix], index < components.count - 1 {
                    if fields.contains(where: { $0.0 == components.last }) { return nil }
                    lines.append(indent + component + ":")
                    indent += "  "
                    for (key, text) in fields { lines.append(indent + key + ": " + text) }
                } else if component.hasSuffix("[]") {
                    guard let fields = itemFields[prefix] else { return nil }
                    lines.append(indent + component.dropLast(2) + ":")
                    // A key the item needs anyway (a listener's name) is not checked here.
                    if index == components.count - 2, fields.contains(where: { $0.0 == components.last }) { return nil }
                    for (number, (key, text)) in fields.enumerated() {
                        lines.append(indent + (number == 0 ? "  - " : "    ") + key + ": " + text)
                    }
                    indent += "    "
                } else if index == components.count - 1 {
                    if let value { lines.append(indent + component + ": " + value) }
                } else {
                    lines.append(indent + component + ":")
                    indent += "  "
                }
            }
            return lines.joined(separator: "\n")
        }
        var checked = 0
        for key in AgentConfig.keys {
            let parts = key.defaultValue.split(separator: "`", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0].isEmpty, parts[2].isEmpty else { continue }
            guard let with = yaml(key.path, String(parts[1])), let without = yaml(key.path, nil) else { continue }
            let written = try AgentConfig.parse(with, file: "with.yaml")
            let omitted = try AgentConfig.parse(without, file: "without.yaml")
            #expect(written == omitted, "\(key.path): documented default \(key.defaultValue) is not the decoder's\n\(with)")
            checked += 1
        }
        #expect(checked >= 30, "\(checked) defaults checked")
    }

    /// Every mapping refuses a key the table does not list below it, and the error names the keys it does.
    @Test(arguments: [
        ("", "colour: blue", "colour"),
        ("node", "node:\n  colour: blue", "node.colour"),
        ("transports.tcp", "transports:\n  tcp:\n    colour: blue", "transports.tcp.colour"),
        ("bridges[]", "bridges:\n  - name: b\n    colour: blue", "bridges[].colour"),
        ("bridges[].queue", "bridges:\n  - name: b\n    queue:\n      colour: blue", "bridges[].queue.colour"),
        ("relays.register[]", "relays:\n  register:\n    - colour: blue", "relays.register[].colour"),
        ("sessions", "sessions:\n  colour: blue", "sessions.colour"),
        ("ingest[].sink", "ingest:\n  - sink:\n      colour: blue", "ingest[].sink.colour"),
    ])
    func unknownKeysAreRefusedWithTheKeysTheTableAllows(parent: String, text: String, path: String) {
        let allowed = AgentConfig.keys(under: parent)
        #expect(!allowed.isEmpty && !allowed.contains("colour"))
        do {
            _ = try AgentConfig.parse(text, file: "agent.yaml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.key == path, "\(error.description)")
            #expect(error.description.contains("expected one of: \(allowed.joined(separator: ", "))"), "\(error.description)")
        }
    }

    @Test func keysUnderAParentFollowTheTable() {
        #expect(AgentConfig.keys(under: "").prefix(3) == ["node", "forwarding", "vault"])
        #expect(AgentConfig.keys(under: "secure_channels") == ["listeners"])
        #expect(AgentConfig.keys(under: "bridges[]") == ["name", "to", "ack_timeout", "window", "reply", "require_attributes", "queue"])
        #expect(AgentConfig.keys(under: "portals.inlets[]") == ["listen", "to"])
        #expect(AgentConfig.keys(under: "metrics") == ["listen"])
    }

    @Test func defaults() throws {
        let config = try AgentConfig.parse("", file: "empty.yaml")
        #expect(config.tcpListen == ["127.0.0.1:4000"])
        #expect(config.tcp == AgentConfig.TCPSettings())
        #expect(config.tcp.maxConnections == 512 && config.tcp.frameTimeout == .seconds(30) && config.tcp.frameMinRate == 10_000)
        #expect(config.tcp.maxConnectionsPerHost == 64)
        let off = try AgentConfig.parse("transports:\n  tcp:\n    max_connections_per_host: \"off\"\n", file: "agent.yaml")
        #expect(off.tcp.maxConnectionsPerHost == nil)
        #expect(config.secureChannelListeners.map(\.name) == ["api"])
        #expect(config.secureChannelListeners[0].maxHalfOpenPerSource == 64)
        #expect(config.secureChannelListeners[0].idleTimeout == .seconds(6 * 3600) && config.secureChannelListeners[0].maxChannels == 1024)
        #expect(!config.relayService)
    }

    @Test func addressesAreReadByHostPortAndKeptCanonical() throws {
        let config = try AgentConfig.parse(
            """
            transports:
              tcp:
                listen: ["[::1]:04000", 127.0.0.1:0]
            portals:
              outlets:
                - target: "[FE80::1%eth0]:80"
            metrics:
              listen: localhost:09464
            """, file: "agent.yaml")
        #expect(config.tcpListen == ["[::1]:4000", "127.0.0.1:0"])
        #expect(config.outlets.map(\.target) == ["[FE80::1%eth0]:80"])
        #expect(config.metricsListen == "localhost:9464")
        // A file names the host (`0.0.0.0:4000`); only the CLI reads `:4000` as 0.0.0.0.
        for bad in ["::1:4000", ":4000", "[]:4000", "h:65536", "h:+80", " h:80", "h:80 "] {
            #expect(
                throws: ConfigError(file: "agent.yaml", line: 2, key: "metrics.listen", message: "expected host:port (e.g. 0.0.0.0:4000)"),
                "\(bad)"
            ) {
                try AgentConfig.parse("metrics:\n  listen: \"\(bad)\"\n", file: "agent.yaml")
            }
        }
    }

    @Test(arguments: [
        ("nodes:\n  name: x", "agent.yaml:1: nodes: unknown key"),
        ("node:\n  name: x\n  colour: blue", "agent.yaml:3: node.colour: unknown key"),
        ("transports:\n  tcp:\n    listen: [4000]", "agent.yaml:3: transports.tcp.listen: expected host:port"),
        ("trust:\n  identities: [Iabc]", "agent.yaml:2: trust.identities: expected an identifier"),
        ("secure_channels:\n  listeners:\n    - cipher: rot13", "agent.yaml:3: secure_channels.listeners[].cipher: expected aes-gcm"),
        ("relays:\n  register:\n    - name: x", "agent.yaml:3: relays.register[]: needs both name and hub"),
        ("transports:\n  tcp:\n    max_connections: 0", "agent.yaml:3: transports.tcp.max_connections: expected a whole number"),
        ("transports:\n  tcp:\n    max_connections_per_host: lots", "agent.yaml:3: transports.tcp.max_connections_per_host: expected a whole number"),
        ("transports:\n  tcp:\n    frame_timeout: soon", "agent.yaml:3: transports.tcp.frame_timeout: expected a duration"),
        ("secure_channels:\n  listeners:\n    - idle_timeout: never", "agent.yaml:3: secure_channels.listeners[].idle_timeout: expected a duration"),
        ("node:\n  forwarding: maybe", "agent.yaml:2: node.forwarding: expected true or false"),
        ("node:\n\tname: x", "agent.yaml:2: tab in indentation"),
        ("portals:\n  inlets:\n    - listen: 127.0.0.1:7000\n      to: outlet", "agent.yaml:4: portals.inlets[].to: expected a multiaddr"),
    ])
    func errorsNameFileLineAndKey(text: String, expected: String) {
        do {
            _ = try AgentConfig.parse(text, file: "agent.yaml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.hasPrefix(expected), "\(error.description)")
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

@Suite("Agent configuration: device links, bridges, ingest")
struct BridgeConfigTests {
    @Test func deviceLinksBecomeTransportSpecsWithTheirLines() throws {
        let config = try AgentConfig.parse(
            """
            transports:
              serial:
                - /dev/ttyUSB0,mode=listen,name=a
                - path: /dev/ttyAMA0
                  name: b
                  max_frame: 4096
              ble:
                listen:
                  - adapter: hci0
                    psm: "0x81"
                  - psm: auto
                connect:
                  - address: C0:FF:EE:00:00:01/random
                    psm: "0x81"
            """, file: "a.yaml")
        #expect(config.serialPorts.map(\.spec) == ["/dev/ttyUSB0,mode=listen,name=a", "/dev/ttyAMA0,name=b,max-frame=4096"])
        #expect(config.serialPorts.map(\.line) == [3, 4])
        #expect(config.bleListen.map(\.spec) == ["hci0,psm=0x81", "psm=auto"])
        #expect(config.bleConnect.map(\.spec) == ["C0:FF:EE:00:00:01/random,psm=0x81"])
        #expect(throws: ConfigError(file: "a.yaml", line: 3, key: "transports.serial[]", message: "needs path")) {
            try AgentConfig.parse("transports:\n  serial:\n    - name: x\n", file: "a.yaml")
        }
    }

    @Test func bridgesAndIngestWithDefaultsAndErrors() throws {
        let config = try AgentConfig.parse(
            """
            bridges:
              - name: sensors
                to: /ip4/10.0.0.5/tcp/4000/secure/api/service/ingest
              - name: meters
                to: [/node/cloud/secure/api/service/ingest, /node/cloud2/secure/api/service/ingest]
                ack_timeout: 2s
                window: 32
                reply: false
                queue:
                  memory_messages: 10
                  disk_bytes: 10485760
                  durability: always
                require_attributes:
                  room: lab
                  kind: meter
            ingest:
              - output: /var/lib/ockam-edge/ingest.jsonl
                sync: true
            """, file: "b.yaml")
        #expect(config.bridges.count == 2)
        #expect(config.bridges[0].queue == AgentConfig.QueueSettings())
        #expect(config.bridges[0].reply && config.bridges[0].ackTimeout == .seconds(5))
        #expect(config.bridges[0].to == ["/ip4/10.0.0.5/tcp/4000/secure/api/service/ingest"] && config.bridges[0].window == 256)
        #expect(config.bridges[1].to == ["/node/cloud/secure/api/service/ingest", "/node/cloud2/secure/api/service/ingest"])
        #expect(config.bridges[1].window == 32)
        #expect(throws: ConfigError(file: "b.yaml", line: 3, key: "bridges[].window", message: "expected a whole number in 1...4096")) {
            try AgentConfig.parse("bridges:\n  - name: s\n    window: 0\n    to: /node/x\n", file: "b.yaml")
        }
        #expect(throws: ConfigError(file: "b.yaml", line: 3, key: "bridges[].to", message: "expected 1 to 8 ingest services, got 0")) {
            try AgentConfig.parse("bridges:\n  - name: s\n    to: []\n", file: "b.yaml")
        }
        #expect(throws: ConfigError.self) { try AgentConfig.parse("bridges:\n  - name: s\n    to: [x]\n", file: "b.yaml") }
        #expect(config.bridges[1].queue.durability == "always" && config.bridges[1].queue.memoryMessages == 10)
        #expect(!config.bridges[1].reply)
        #expect(config.bridges[0].requireAttributes.isEmpty)
        #expect(config.bridges[1].requireAttributes == ["room": "lab", "kind": "meter"])
        #expect(
            throws: ConfigError(
                file: "b.yaml", line: 4, key: "bridges[].require_attributes",
                message: "expected a non-empty mapping of attribute: value")
        ) {
            try AgentConfig.parse("bridges:\n  - name: s\n    to: /node/x\n    require_attributes: lab\n", file: "b.yaml")
        }
        #expect(config.ingest == [AgentConfig.Ingest(address: "ingest", output: "/var/lib/ockam-edge/ingest.jsonl", sync: true)])
        #expect(throws: ConfigError(file: "b.yaml", line: 5, key: "bridges[].queue.durability", message: "expected spill or always")) {
            try AgentConfig.parse("bridges:\n  - name: s\n    to: /node/x\n    queue:\n      durability: never\n", file: "b.yaml")
        }
        #expect(throws: ConfigError.self) { try AgentConfig.parse("bridges:\n  - name: s\n", file: "b.yaml") }
        #expect(throws: ConfigError.self) {
            try AgentConfig.parse("bridges:\n  - name: s\n    to: /node/x\n  - name: s\n    to: /node/y\n", file: "b.yaml")
        }
    }

    /// The configuration example in docs/fleet.md decodes.
    @Test func theFleetExampleIsValid() throws {
        let doc = AgentConfigTests.readDoc("docs/fleet.md")
        let lines = doc.split(separator: "\n", omittingEmptySubsequences: false)
        let start = try #require(lines.firstIndex(of: "```yaml"))
        let example = lines[(start + 1)...].prefix { $0 != "```" }.joined(separator: "\n")
        let config = try AgentConfig.parse(example.replacing("I6c3f…", with: "I" + String(repeating: "6c", count: 32)), file: "fleet.md")
        #expect(config.ingest.first?.sink.jetStream?.servers.count == 3)
        #expect(config.ingest.first?.sink.jetStream?.credsFile?.path == "/etc/ockam-edge/nats/ingest.creds")
    }

    @Test func ingestSinks() throws {
        let config = try AgentConfig.parse(
            """
            ingest:
              - address: ingest
              - address: fleet
                sink:
                  type: jetstream
                  servers:
                    - nats://10.0.0.7:4222
                    - tls://nats.example:04222
                  stream: READINGS
                  subject_prefix: fleet.readings
                  replicas: 3
                  timeout: 2s
                  token_file: /etc/ockam-edge/nats.token
                  tls_ca_file: /etc/ockam-edge/nats-ca.pem
                  max_age: 720h
                  max_bytes: 10737418240
                  duplicate_window: 10m
            """, file: "i.yaml")
        #expect(config.ingest[0].sink == AgentConfig.SinkSettings())
        let sink = config.ingest[1].sink
        #expect(sink.type == "jetstream" && sink.line == 5)
        var expected = AgentConfig.JetStreamSinkSettings()
        expected.servers = ["nats://10.0.0.7:4222", "tls://nats.example:4222"]
        expected.stream = "READINGS"
        expected.subjectPrefix = "fleet.readings"
        expected.replicas = 3
        expected.timeout = .seconds(2)
        expected.tokenFile = AgentConfig.PathSetting(path: "/etc/ockam-edge/nats.token", line: 13, key: "ingest[].sink.token_file")
        expected.tlsCAFile = AgentConfig.PathSetting(path: "/etc/ockam-edge/nats-ca.pem", line: 14, key: "ingest[].sink.tls_ca_file")
        expected.maxAge = .seconds(30 * 86_400)
        expected.maxBytes = 10 << 30
        expected.duplicateWindow = .seconds(600)
        #expect(sink.jetStream == expected)
        let one = try AgentConfig.parse(
            "ingest:\n  - sink:\n      type: jetstream\n      servers: nats://127.0.0.1:4222\n", file: "i.yaml")
        #expect(one.ingest[0].sink.jetStream?.servers == ["nats://127.0.0.1:4222"])
        #expect(one.ingest[0].sink.jetStream?.stream == "OCKAM_EDGE" && one.ingest[0].sink.jetStream?.subjectPrefix == "ockam-edge")
        #expect(one.ingest[0].sink.jetStream?.maxAge == nil && one.ingest[0].sink.jetStream?.maxBytes == nil)
        #expect(one.ingest[0].sink.jetStream?.duplicateWindow == .seconds(120))
    }

    @Test(arguments: [
        ("      type: kafka\n", 3, "ingest[].sink.type", "expected file or jetstream"),
        ("      type: jetstream\n", 3, "ingest[].sink.servers", "type jetstream needs servers"),
        ("      servers: nats://h:4222\n", 3, "ingest[].sink.servers", "only with type: jetstream"),
        ("      type: jetstream\n      servers: http://h:4222\n", 4, "ingest[].sink.servers",
         "expected nats://host:port or tls://host:port (credentials come from the *_file keys)"),
        ("      type: jetstream\n      servers: nats://user:pw@h:4222\n", 4, "ingest[].sink.servers",
         "expected nats://host:port or tls://host:port (credentials come from the *_file keys)"),
        ("      type: jetstream\n      servers: nats://h:4222\n      stream: a.b\n", 5, "ingest[].sink.stream",
         "ASCII letters, digits, '-' and '_'; at most 64"),
        ("      type: jetstream\n      servers: nats://h:4222\n      subject_prefix: fleet.>\n", 5, "ingest[].sink.subject_prefix",
         "dot-separated tokens of ASCII letters, digits, '-' and '_' (no wildcards); at most 200"),
        ("      type: jetstream\n      servers: nats://h:4222\n      subject_prefix: a..b\n", 5, "ingest[].sink.subject_prefix",
         "dot-separated tokens of ASCII letters, digits, '-' and '_' (no wildcards); at most 200"),
        ("      type: jetstream\n      servers: nats://h:4222\n      replicas: 7\n", 5, "ingest[].sink.replicas",
         "expected a whole number in 1...5"),
        ("      type: jetstream\n      servers: nats://h:4222\n      token_file: /t\n      creds_file: /c\n", 6,
         "ingest[].sink.creds_file", "at most one of user_password_file, token_file and creds_file"),
    ])
    func ingestSinkErrorsNameTheLineAndKey(text: String, line: Int, key: String, message: String) {
        #expect(throws: ConfigError(file: "s.yaml", line: line, key: key, message: message)) {
            try AgentConfig.parse("ingest:\n  - sink:\n" + text, file: "s.yaml")
        }
    }
}

