// The agent configuration's key table: what the decoder accepts, docs/configuration.md shows and ockam-edge-agent.yaml(5) lists.

/// One documented key of the agent configuration. `AgentConfig.keys` is the one table that the decoder's unknown-key
/// check, the "Keys" table in docs/configuration.md (a test keeps them equal) and the manual page
/// ockam-edge-agent.yaml(5) are all made from, so none of them can name a key the others do not.
public struct ConfigKey: Sendable, Equatable {
    /// Dotted path from the top of the file; `[]` marks a list whose items are mappings (`bridges[].name`).
    public let path: String
    public let type: String
    /// Markdown (code in backticks), as the meaning.
    public let defaultValue: String
    public let meaning: String

    public init(_ path: String, type: String, default defaultValue: String, _ meaning: String) {
        self.path = path
        self.type = type
        self.defaultValue = defaultValue
        self.meaning = meaning
    }
}

extension AgentConfig {
    /// The keys a configuration file may hold, in the order the documentation lists them.
    public static let keys: [ConfigKey] = [
        ConfigKey("node.name", type: "name", default: "`agent`",
                  "node name (`/node/<name>`, control socket `<state_dir>/nodes/<name>.sock`)"),
        ConfigKey("node.state_dir", type: "path", default: "`$OCKAM_EDGE_STATE_DIR`, `$XDG_STATE_HOME/ockam-edge`, `~/.local/state/ockam-edge`",
                  "node records and control socket"),
        ConfigKey("node.log_level", type: "level", default: "`info`",
                  "trace, debug, info, notice, warning, error, critical"),
        ConfigKey("node.forwarding", type: "bool", default: "`true`",
                  "master switch: forward messages from links and secure channels to remote hops at all; `false` forwards nothing, whatever `forwarding.allow` says"),
        ConfigKey("node.public_services", type: "bool", default: "`true`",
                  "`echo` and `uppercase` reachable from plain links (as on a stock Ockam node; sessions ping `echo`); `false`: only through secure channels"),
        ConfigKey("forwarding.allow", type: "list", default: "none",
                  "TCP destinations a link's or secure channel's messages may be forwarded to, besides the TCP hop each uplink starts with (`bridges[].to`, `relays.register[].hub`, `portals.inlets[].to`, always allowed): `host:port`, `host:*`, `a.b.c.d/len:port`, `[v6/len]:port`. Everything else is dropped and counted (`dropped_forward_not_allowed`); see routing.md \"Flow control\""),
        ConfigKey("vault.path", type: "path", default: "`$OCKAM_EDGE_VAULT`, `$XDG_DATA_HOME/ockam-edge/vault`, `~/.local/share/ockam-edge/vault`",
                  "the file vault (see vault.md); `/var/lib/ockam-edge/vault` for the service"),
        ConfigKey("vault.key_file", type: "path", default: "none",
                  "key for a vault encrypted at rest (32 raw bytes or 64 hex), e.g. a systemd credential"),
        ConfigKey("identity", type: "name", default: "the vault's default, else `default`",
                  "vault identity; created on first start if missing"),
        ConfigKey("trust.identities", type: "list of `I…`", default: "none",
                  "identifiers allowed to open secure channels"),
        ConfigKey("trust.authorities", type: "list of `{name, identity}`", default: "none",
                  "authorities (change history hex) whose credential holders are trusted"),
        ConfigKey("trust.authorities[].name", type: "name", default: "–",
                  "a name for the authority, used in error messages"),
        ConfigKey("trust.authorities[].identity", type: "hex", default: "–",
                  "the authority's change history in hex (`identity show --full`)"),
        ConfigKey("trust.require_attributes", type: "mapping", default: "none",
                  "attributes such a credential must carry (e.g. `role: sensor`)"),
        ConfigKey("transports.tcp.listen", type: "host:port or list", default: "`127.0.0.1:4000`",
                  "TCP listeners (port 0 picks one; the first bound address is printed)"),
        ConfigKey("transports.tcp.frame_timeout", type: "duration", default: "`30s`",
                  "a connection that started a frame (first byte of its length prefix) and did not finish it within `frame_timeout + length / frame_min_rate` is closed and counted (`tcp_frame_timeouts`; see routing.md \"TCP transport\")"),
        ConfigKey("transports.tcp.frame_min_rate", type: "bytes/s", default: "`10000`",
                  "the slowest average rate a frame may arrive at beyond `frame_timeout` (16 MiB: 28.5 min); lower it only for uplinks slower than that carrying large frames"),
        ConfigKey("transports.tcp.max_connections", type: "count", default: "`512`",
                  "connections each listener serves at once; more are closed at accept, counted (`tcp_connections_refused_over_cap`) and logged (half the default `LimitNOFILE` of 1024)"),
        ConfigKey("transports.tcp.max_connections_per_host", type: "count or `off`", default: "`64`",
                  "connections each listener serves at once from one IPv4 address or IPv6 /64; more are closed at accept, counted (`tcp_connections_refused_over_host_cap`) and logged. Loopback peers are exempt. Raise it for a relay whose gateways share one NAT address"),
        ConfigKey("transports.tcp.max_unfinished_bytes", type: "bytes", default: "`67108864`",
                  "bytes of unfinished inbound frames each listener's connections may hold together; past it the connection holding the most is closed and counted (`tcp_connections_cut_unfinished_frames`); at least 16777220"),
        ConfigKey("transports.tcp.max_unfinished_bytes_per_host", type: "bytes or `off`", default: "`25165824`",
                  "the same per IPv4 address or IPv6 /64 (loopback included); at least 16777220 (one maximum frame)"),
        ConfigKey("transports.tcp.outgoing_idle_timeout", type: "duration or `off`", default: "`15m`",
                  "close an outgoing connection on which nothing was read or written for this long (`tcp_outgoing_closed_idle`); the configured uplinks (bridges' and inlets' `to`, relay hubs) are never closed for being idle"),
        ConfigKey("transports.tcp.max_outgoing", type: "count", default: "`256`",
                  "outgoing connections open or being opened at once (one per destination); a route to one more fails and is counted (`tcp_outgoing_refused_over_cap`)"),
        ConfigKey("transports.serial", type: "list", default: "none",
                  "serial ports (see Device links); each a `--serial` spec string or a mapping with `path`"),
        ConfigKey("transports.ble.listen", type: "list", default: "none",
                  "BLE L2CAP listeners; a `--ble-listen` spec string or a mapping (`adapter`, `psm`, `mtu`, `security`)"),
        ConfigKey("transports.ble.connect", type: "list", default: "none",
                  "BLE devices to keep a link to; a `--ble-connect` spec string or a mapping with `address`"),
        ConfigKey("secure_channels.listeners", type: "list", default: "one `api`",
                  "secure channel listeners"),
        ConfigKey("secure_channels.listeners[].name", type: "address", default: "`api`",
                  "listener address"),
        ConfigKey("secure_channels.listeners[].cipher", type: "suite", default: "`aes-gcm`",
                  "`aes-gcm` (Ockam-compatible) or `chacha20-poly1305`"),
        ConfigKey("secure_channels.listeners[].handshake_timeout", type: "duration", default: "`30s`",
                  "both sides give up on a handshake after this"),
        ConfigKey("secure_channels.listeners[].max_half_open", type: "count", default: "`256`",
                  "concurrent handshakes in progress; when full, the oldest handshake of the source holding the most is evicted for a new one (`handshakes_evicted`)"),
        ConfigKey("secure_channels.listeners[].max_half_open_per_source", type: "count", default: "`64`",
                  "concurrent handshakes from one source (the transport connection message 1 came in on); more are dropped and counted (`handshakes_dropped_over_cap`)"),
        ConfigKey("secure_channels.listeners[].idle_timeout", type: "duration or `off`", default: "`6h`",
                  "close (with a `Close` to the peer) an established channel on which nothing was decrypted for this long (`channels_closed_idle`); 6 h lets a sensor that reports hourly miss five reports; sessions ping every `ping_interval`, so they are never idle"),
        ConfigKey("secure_channels.listeners[].max_channels", type: "count", default: "`1024`",
                  "established channels; one more closes the least recently used (last decrypted message) with a `Close` (`channels_evicted_over_cap`); about 34 KiB each"),
        ConfigKey("relays.serve", type: "bool", default: "`false`",
                  "act as a relay hub (`static_forwarding_service`, `forwarding_service`)"),
        ConfigKey("relays.register", type: "list of `{name, hub}`", default: "none",
                  "register `forward_to_<name>` on the hub at multiaddr `hub`; supervised (see Sessions)"),
        ConfigKey("relays.register[].name", type: "name", default: "–",
                  "the relay name: the hub forwards `forward_to_<name>` to this node"),
        ConfigKey("relays.register[].hub", type: "multiaddr", default: "–",
                  "the hub, e.g. `/ip4/10.0.0.5/tcp/4000`"),
        ConfigKey("portals.outlets", type: "list", default: "none",
                  "TCP services exposed through secure channels"),
        ConfigKey("portals.outlets[].address", type: "address", default: "`outlet`",
                  "worker address (`/service/outlet`)"),
        ConfigKey("portals.outlets[].target", type: "host:port", default: "–",
                  "the TCP service"),
        ConfigKey("portals.outlets[].allow", type: "list of `I…`", default: "the node's trust policy",
                  "who may use it; only messages that came out of a secure channel are accepted"),
        ConfigKey("portals.inlets", type: "list of `{listen, to}`", default: "none",
                  "local TCP port → outlet at multiaddr `to` (e.g. `/ip4/…/tcp/4000/secure/api/service/outlet`); supervised"),
        ConfigKey("portals.inlets[].listen", type: "host:port", default: "–",
                  "the local TCP port to accept on"),
        ConfigKey("portals.inlets[].to", type: "multiaddr", default: "–",
                  "the outlet, e.g. `/ip4/…/tcp/4000/secure/api/service/outlet`"),
        ConfigKey("bridges", type: "list", default: "none",
                  "device bridges with store-and-forward (see Bridges)"),
        ConfigKey("bridges[].name", type: "name", default: "–",
                  "the bridge's worker address: devices send to `/service/<name>` over their link"),
        ConfigKey("bridges[].to", type: "multiaddr or list", default: "–",
                  "the ingest service, e.g. `/ip4/10.0.0.5/tcp/4000/secure/api/service/ingest`; a list of up to 8 is tried in turn: the next one when the current one cannot be reached or stops acknowledging"),
        ConfigKey("bridges[].ack_timeout", type: "duration", default: "`5s`",
                  "messages in flight and no acknowledgement for this long: the uplink is considered down and rebuilt"),
        ConfigKey("bridges[].window", type: "count (1–4096)", default: "`256`",
                  "most messages in flight (sent, not yet acknowledged) once the ingest service says it keeps their order; one at a time with one that does not (see bridge.md \"Pipelined delivery\")"),
        ConfigKey("bridges[].reply", type: "bool", default: "`true`",
                  "answer each device message with the BARE string `ok <sequence>` once it is stored"),
        ConfigKey("bridges[].require_attributes", type: "mapping", default: "none",
                  "only paired devices whose pairing attributes (`pair … --attribute k=v`) include all of these may use the bridge, through their secure channel to the gateway; link-only messages are then refused (see pairing.md)"),
        ConfigKey("bridges[].queue.memory_messages", type: "count", default: "`1024`",
                  "messages kept in memory before spilling to disk"),
        ConfigKey("bridges[].queue.memory_bytes", type: "bytes", default: "`1048576`",
                  "bytes kept in memory before spilling"),
        ConfigKey("bridges[].queue.disk_bytes", type: "bytes", default: "`67108864`",
                  "cap on the queue's files in `<state_dir>/queues/<name>/`; the oldest are dropped beyond it"),
        ConfigKey("bridges[].queue.durability", type: "`spill`/`always`", default: "`spill`",
                  "`always` writes and fsyncs every message before accepting it (see store-and-forward.md)"),
        ConfigKey("ingest", type: "list", default: "none",
                  "ingest services (the cloud side of bridges)"),
        ConfigKey("ingest[].address", type: "address", default: "`ingest`",
                  "worker address (`/service/ingest`)"),
        ConfigKey("ingest[].output", type: "path or `-`", default: "`-`",
                  "JSON lines appended here (created 0600), or standard output (sink `file`)"),
        ConfigKey("ingest[].sync", type: "bool", default: "`false`",
                  "fsync each line before acknowledging it (sink `file`)"),
        ConfigKey("ingest[].allow", type: "list of `I…`", default: "the node's trust policy",
                  "which gateways may deliver; only messages that came out of a secure channel are accepted"),
        ConfigKey("ingest[].sink.type", type: "`file`/`jetstream`", default: "`file`",
                  "where readings are stored: `file` (JSON lines, `output`) or `jetstream` (a NATS JetStream stream; needs a build with trait `JetStream`, see fleet.md)"),
        ConfigKey("ingest[].sink.servers", type: "URL or list", default: "–",
                  "NATS servers, `nats://host:port` or `tls://host:port` (jetstream)"),
        ConfigKey("ingest[].sink.stream", type: "name", default: "`OCKAM_EDGE`",
                  "the stream; created (file storage, subjects `<subject_prefix>.>`) if missing, else used as it is"),
        ConfigKey("ingest[].sink.subject_prefix", type: "subject", default: "`ockam-edge`",
                  "readings go to `<subject_prefix>.<gateway I…>.<bridge>`, names escaped (fleet.md \"Subjects and headers\")"),
        ConfigKey("ingest[].sink.replicas", type: "count", default: "`1`",
                  "replicas of a stream the sink creates (1–5); a publish is acknowledged once a quorum stored it"),
        ConfigKey("ingest[].sink.max_age", type: "duration or `off`", default: "`off`",
                  "a stream the sink creates discards readings older than this (`off`: kept until max_bytes or for ever)"),
        ConfigKey("ingest[].sink.max_bytes", type: "bytes or `off`", default: "`off`",
                  "a stream the sink creates discards its oldest readings beyond this size"),
        ConfigKey("ingest[].sink.duplicate_window", type: "duration", default: "`2m`",
                  "a stream the sink creates recognises a repeated `Nats-Msg-Id` within this window (beyond it the sink's own check does, fleet.md)"),
        ConfigKey("ingest[].sink.timeout", type: "duration", default: "`5s`",
                  "wait this long for a publish acknowledgement or a stream lookup; past it the reading stays unacknowledged"),
        ConfigKey("ingest[].sink.user_password_file", type: "path", default: "none",
                  "a file holding `user:password`; owned by the agent's user or root, no group or other access"),
        ConfigKey("ingest[].sink.token_file", type: "path", default: "none",
                  "a file holding a NATS token (same checks); at most one of the three credentials"),
        ConfigKey("ingest[].sink.creds_file", type: "path", default: "none",
                  "a NATS `.creds` file (user JWT and nkey seed; same checks)"),
        ConfigKey("ingest[].sink.tls_ca_file", type: "path", default: "none",
                  "CA certificates (PEM) to verify the servers with, not writable by group or others; turns TLS on"),
        ConfigKey("sessions.ping_interval", type: "duration", default: "`10s`",
                  "how often relay registrations and inlet routes are pinged"),
        ConfigKey("sessions.ping_timeout", type: "duration", default: "`5s`",
                  "a ping without an answer in this time failed"),
        ConfigKey("sessions.failures_before_replace", type: "count", default: "`3`",
                  "consecutive failed pings before the route is rebuilt"),
        ConfigKey("sessions.max_backoff", type: "duration", default: "`30s`",
                  "cap of the exponential back-off between rebuild attempts"),
        ConfigKey("metrics.listen", type: "host:port", default: "off",
                  "Prometheus text format at `http://<listen>/metrics`; bind it to loopback"),
    ]

    /// The keys a mapping at `parent` may hold ("" for the top level, `bridges[]` for an item of `bridges`), in
    /// table order: the next path component of every key below it, with a list's `[]` dropped.
    public static func keys(under parent: String) -> [String] {
        var names: [String] = []
        for key in keys {
            let rest: Substring
            if parent.isEmpty {
                rest = Substring(key.path)
            } else if key.path.hasPrefix(parent + ".") {
                rest = key.path.dropFirst(parent.count + 1)
            } else {
                continue
            }
            var name = rest.prefix { $0 != "." }
            if name.hasSuffix("[]") { name = name.dropLast(2) }
            if !names.contains(String(name)) { names.append(String(name)) }
        }
        return names
    }

    /// The "Keys" table of docs/configuration.md, in Markdown.
    public static func keysMarkdownTable() -> String {
        var out = "| key | type | default | meaning |\n|---|---|---|---|\n"
        for key in keys {
            out += "| `\(key.path)` | \(key.type) | \(key.defaultValue) | \(key.meaning) |\n"
        }
        return out
    }
}
