// The node's counters in one table: `status --json` (its `counters` object) and the metrics endpoint are both made
// from it, so a counter cannot be in one and missing from the other, or named differently without the table saying so.
import EdgeControl
import EdgeNode
import EdgeSecureChannel
import EdgeTransportTCP
import EdgeWire

/// Where the counters are read from at one moment.
struct CounterSources {
    var node: NodeCounters
    var tcp: TCPTransportCounters
    var channels: SecureChannelCounters
}

/// One counter: its key in `status --json`, and its metric family and label there.
struct RegisteredCounter {
    let status: String
    let family: String
    /// The label that tells this counter apart within its family; nil for a family of one.
    let label: (name: String, value: String)?
    let value: @Sendable (CounterSources) -> UInt64
}

enum CounterRegistry {
    /// Metric families, in output order, with their help text.
    static let families: [(name: String, help: String)] = [
        ("ockam_edge_messages_delivered_total", "Messages delivered to workers."),
        ("ockam_edge_messages_dropped_total", "Messages dropped, by reason."),
        ("ockam_edge_worker_errors_total", "Messages a worker failed to handle."),
        ("ockam_edge_tcp_connections_total", "Inbound TCP connections, by outcome."),
        ("ockam_edge_tcp_timeouts_total", "TCP connections closed for not completing what they started, by phase."),
        ("ockam_edge_tcp_outgoing_refused_total", "Outgoing TCP connections not opened: the max_outgoing cap."),
        (
            "ockam_edge_tcp_messages_dropped_total",
            "TCP messages dropped with the connection kept: malformed on receipt, or over the next hop's limits."
        ),
        ("ockam_edge_handshakes_total", "Secure channel handshakes, by result."),
        ("ockam_edge_secure_channels_reclaimed_total", "Established channels closed by the node, by reason."),
        ("ockam_edge_secure_channel_messages_total", "Secure channel messages, by direction."),
        ("ockam_edge_decryption_failures_total", "Rejected secure channel messages (replay, tamper, window)."),
    ]

    /// Every node counter, in `status --json` order.
    static let counters: [RegisteredCounter] = [
        .init(status: "delivered", family: "ockam_edge_messages_delivered_total", label: nil) { $0.node.delivered },
        dropped("unknown_address") { $0.node.droppedUnknownAddress },
        dropped("access_denied") { $0.node.droppedAccessDenied },
        dropped("worker_stopped") { $0.node.droppedWorkerStopped },
        dropped("heartbeat") { $0.node.droppedHeartbeat },
        dropped("forwarding_disabled") { $0.node.droppedForwardingDisabled },
        dropped("forward_not_allowed") { $0.node.droppedForwardNotAllowed },
        dropped("flow_control") { $0.node.droppedFlowControl },
        dropped("mailbox_full") { $0.node.droppedMailboxFull },
        dropped("unreachable") { $0.node.droppedUnreachable },
        .init(status: "worker_errors", family: "ockam_edge_worker_errors_total", label: nil) { $0.node.workerErrors },
        tcpConnections("tcp_connections_accepted", "accepted") { $0.tcp.connectionsAccepted },
        tcpConnections("tcp_connections_refused_over_cap", "refused_over_cap") { $0.tcp.connectionsRefusedOverCap },
        tcpConnections("tcp_connections_refused_over_host_cap", "refused_over_host_cap") {
            $0.tcp.connectionsRefusedOverHostCap
        },
        tcpTimeouts("tcp_version_timeouts", "version") { $0.tcp.versionTimeouts },
        tcpTimeouts("tcp_frame_timeouts", "frame") { $0.tcp.frameTimeouts },
        .init(status: "tcp_messages_dropped_malformed", family: "ockam_edge_tcp_messages_dropped_total",
              label: ("reason", "malformed")) { $0.tcp.messagesDroppedMalformed },
        .init(status: "tcp_messages_dropped_over_limit", family: "ockam_edge_tcp_messages_dropped_total",
              label: ("reason", "over_limit")) { $0.tcp.messagesDroppedOverLimit },
        .init(status: "tcp_outgoing_refused_over_cap", family: "ockam_edge_tcp_outgoing_refused_total", label: nil) {
            $0.tcp.outgoingRefusedOverCap
        },
        tcpTimeouts("tcp_outgoing_closed_idle", "outgoing_idle") { $0.tcp.outgoingClosedIdle },
        tcpTimeouts("tcp_connections_closed_slow_reader", "drain") { $0.tcp.connectionsClosedSlowReader },
        tcpConnections("tcp_connections_cut_unfinished_frames", "cut_unfinished_frames") {
            $0.tcp.connectionsCutUnfinishedFrames
        },
        handshakes("handshakes_completed", "ok") { $0.channels.handshakesCompleted },
        handshakes("handshakes_failed", "failed") { $0.channels.handshakesFailed },
        handshakes("handshakes_refused_trust", "refused_trust") { $0.channels.handshakesRefusedTrust },
        handshakes("handshakes_timed_out", "timeout") { $0.channels.handshakesTimedOut },
        handshakes("handshakes_dropped_over_cap", "over_cap") { $0.channels.handshakesDroppedOverCap },
        handshakes("handshakes_evicted", "evicted") { $0.channels.handshakesEvicted },
        .init(status: "channels_closed_idle", family: "ockam_edge_secure_channels_reclaimed_total",
              label: ("reason", "idle")) { $0.channels.channelsClosedIdle },
        .init(status: "channels_evicted_over_cap", family: "ockam_edge_secure_channels_reclaimed_total",
              label: ("reason", "over_cap")) { $0.channels.channelsEvictedOverCap },
        .init(status: "messages_encrypted", family: "ockam_edge_secure_channel_messages_total",
              label: ("direction", "encrypted")) { $0.channels.messagesEncrypted },
        .init(status: "messages_decrypted", family: "ockam_edge_secure_channel_messages_total",
              label: ("direction", "decrypted")) { $0.channels.messagesDecrypted },
        .init(status: "decryption_failures", family: "ockam_edge_decryption_failures_total", label: nil) {
            $0.channels.decryptionFailures
        },
    ]

    private static func dropped(
        _ reason: String, _ value: @escaping @Sendable (CounterSources) -> UInt64
    ) -> RegisteredCounter {
        RegisteredCounter(
            status: "dropped_\(reason)", family: "ockam_edge_messages_dropped_total", label: ("reason", reason),
            value: value)
    }

    private static func tcpConnections(
        _ status: String, _ outcome: String, _ value: @escaping @Sendable (CounterSources) -> UInt64
    ) -> RegisteredCounter {
        RegisteredCounter(
            status: status, family: "ockam_edge_tcp_connections_total", label: ("outcome", outcome), value: value)
    }

    private static func tcpTimeouts(
        _ status: String, _ phase: String, _ value: @escaping @Sendable (CounterSources) -> UInt64
    ) -> RegisteredCounter {
        RegisteredCounter(status: status, family: "ockam_edge_tcp_timeouts_total", label: ("phase", phase), value: value)
    }

    private static func handshakes(
        _ status: String, _ result: String, _ value: @escaping @Sendable (CounterSources) -> UInt64
    ) -> RegisteredCounter {
        RegisteredCounter(status: status, family: "ockam_edge_handshakes_total", label: ("result", result), value: value)
    }

    /// The `counters` object of `status --json`.
    static func statusJSON(_ sources: CounterSources) -> JSON {
        .object(counters.map { ($0.status, .uint($0.value(sources))) })
    }

    /// The metric families of the counters, in Prometheus text format.
    static func metrics(_ sources: CounterSources, into text: inout PrometheusText) {
        for family in families {
            let members = counters.filter { $0.family == family.name }
            if members.count == 1, members[0].label == nil {
                text.metric(family.name, help: family.help, value: Double(members[0].value(sources)))
            } else {
                text.metric(
                    family.name, help: family.help,
                    samples: members.map { counter in
                        (counter.label.map { [($0.name, $0.value)] } ?? [], Double(counter.value(sources)))
                    })
            }
        }
    }
}
