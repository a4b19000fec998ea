// What a running agent reports beyond the node's own counters: device links, bridges and ingest in `status`, and the
// metrics endpoint's families (docs/control-socket.md, docs/configuration.md "metrics").
import EdgeBridge
import EdgeControl
import EdgeNode
import EdgeSecureChannel
import EdgeSync
import EdgeTransportTCP
import EdgeWire

extension Agent {
    func statusFields() -> [(String, JSON)] {
        let (bridges, ingest) = live.withLock { l in (Array(l.bridges.values), Array(l.ingest)) }
        return links.statusFields + [
            (
                "bridges",
                .array(
                    bridges.sorted { $0.0.name < $1.0.name }.map { bridge, queue in
                        let c = bridge.counters
                        let delivery = bridge.delivery
                        return .object([
                            ("name", .string(bridge.name)), ("uplink_up", .bool(bridge.uplinkUp)),
                            ("queued", .uint(UInt64(queue.pending))), ("queued_bytes", .uint(UInt64(queue.pendingBytes))),
                            ("in_flight", .uint(UInt64(delivery.inFlight))), ("window", .uint(UInt64(delivery.window))),
                            ("accepted", .uint(c.accepted)), ("delivered", .uint(c.delivered)), ("refused", .uint(c.refused)),
                            ("dropped_oldest", .uint(c.droppedOldest)), ("dropped_corrupt", .uint(c.droppedCorrupt)),
                            ("delivery_failures", .uint(c.deliveryFailures)), ("resent", .uint(c.resent)),
                            ("last_error", bridge.lastError.map { .string($0) } ?? .null),
                        ])
                    })
            ),
            (
                "ingest",
                .array(
                    ingest.sorted { $0.key < $1.key }.map { address, service in
                        let c = service.counters
                        var fields: [(String, JSON)] = [
                            ("address", .string(address)), ("accepted", .uint(c.accepted)), ("duplicates", .uint(c.duplicates)),
                            ("skipped", .uint(c.skipped)), ("malformed", .uint(c.malformed)),
                            ("sink_failures", .uint(c.sinkFailures)), ("out_of_order", .uint(c.outOfOrder)),
                        ]
                        if let health = service.sinkHealth { fields.append(("sink", Self.json(health))) }
                        return .object(fields)
                    })
            ),
        ]
    }

    /// Status entries for one gateway bridge's last stored reading are capped: a fleet can have many.
    static let lastStoredShown = 1000

    static func json(_ health: IngestSinkHealth) -> JSON {
        // Whole microseconds: the status document carries integers, not floating point (control-socket.md).
        func microseconds(_ duration: Duration?) -> JSON {
            guard let duration else { return .null }
            let (seconds, attoseconds) = duration.components
            return .uint(UInt64(max(0, seconds)) * 1_000_000 + UInt64(max(0, attoseconds)) / 1_000_000_000_000)
        }
        return .object([
            ("type", .string(health.kind)), ("connected", .bool(health.connected)),
            ("last_error", health.lastError.map { .string($0) } ?? .null), ("published", .uint(health.published)),
            (
                "publish_us",
                .object([
                    ("samples", .uint(UInt64(health.latency.count))), ("p50", microseconds(health.latency.quantile(0.5))),
                    ("p99", microseconds(health.latency.quantile(0.99))), ("max", microseconds(health.latency.quantile(1))),
                ])
            ),
            ("gateway_bridges", .uint(UInt64(health.lastStored.count))),
            (
                "last_stored",
                .array(
                    health.lastStored.prefix(lastStoredShown).map { stored in
                        .object([
                            ("gateway", .string(stored.gateway)), ("bridge", .string(stored.bridge)),
                            ("epoch", stored.epoch.map { .string($0) } ?? .null), ("sequence", .uint(stored.sequence)),
                        ])
                    })
            ),
        ])
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
            "ockam_edge_bridge_in_flight", type: "gauge", help: "Envelopes sent and not yet acknowledged, by bridge.",
            samples: bridges.map { ([("bridge", $0.0.name)], Double($0.0.delivery.inFlight)) })
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
                    ("delivery_failed", c.deliveryFailures), ("resent", c.resent),
                ].map { ([("bridge", bridge.name), ("outcome", $0.0)], Double($0.1)) }
            })
        p.metric(
            "ockam_edge_ingest_messages_total", help: "Bridge envelopes received by each ingest service, by outcome.",
            samples: ingest.flatMap { address, service -> [([(String, String)], Double)] in
                let c = service.counters
                return [
                    ("accepted", c.accepted), ("duplicate", c.duplicates), ("skipped", c.skipped), ("malformed", c.malformed),
                    ("sink_failure", c.sinkFailures), ("out_of_order", c.outOfOrder),
                ]
                    .map { ([("service", address), ("outcome", $0.0)], Double($0.1)) }
            })
        let sinks = ingest.compactMap { address, service in service.sinkHealth.map { (address, $0) } }
        p.metric(
            "ockam_edge_ingest_sink_up", type: "gauge", help: "Whether each ingest service's sink is connected to its store (1) or not (0).",
            samples: sinks.map { ([("service", $0.0)], $0.1.connected ? 1 : 0) })
        p.metric(
            "ockam_edge_ingest_publish_seconds", type: "gauge",
            help: "Publish-to-acknowledgement time of each ingest service's sink over its last 1,024 publishes, by quantile.",
            samples: sinks.flatMap { address, health in
                [("0.5", 0.5), ("0.99", 0.99), ("1", 1.0)].compactMap { label, fraction -> ([(String, String)], Double)? in
                    guard let value = health.latency.quantile(fraction) else { return nil }
                    let (seconds, attoseconds) = value.components
                    return ([("service", address), ("quantile", label)], Double(seconds) + Double(attoseconds) / 1e18)
                }
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
