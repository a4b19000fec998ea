// `ockam-edge man 5`: the manual page of the agent's configuration file, from the configuration key table.
import EdgeAgent
import EdgeCLI
import EdgeConfig

/// ockam-edge-agent.yaml(5): the agent's configuration file, every key from `AgentConfig.keys` (the table the decoder
/// checks keys against and docs/configuration.md shows), so the page cannot name a key the agent would refuse.
enum AgentConfigManual {
    static func roff(version: String) -> String {
        ManualPage.fileFormatRoff(
            name: "ockam-edge-agent.yaml", summary: "configuration of the ockam-edge gateway agent",
            path: "/etc/ockam-edge/agent.yaml", version: version, package: "ockam-edge",
            description: description,
            keys: AgentConfig.keys.map {
                ManualPage.FileKey(key: $0.path, type: $0.type, defaultValue: $0.defaultValue, meaning: $0.meaning)
            },
            example: example,
            seeAlso: "ockam-edge(1), systemd.service(5), systemd-creds(1); /usr/share/doc/ockam-edge/ "
                + "(configuration.md, routing.md, security.md, serial-framing.md, ble.md)")
    }

    static let description = [
        "`ockam-edge agent --config /etc/ockam-edge/agent.yaml` runs the gateway agent this file describes: its "
            + "identity and vault, TCP listeners and uplinks, serial and BLE device links, secure channel listeners, "
            + "relays, portals, bridges with store-and-forward queues, ingest services and a metrics endpoint. The "
            + "packaged service `ockam-edge-agent.service` runs it as user `ockam-edge`. `systemctl reload` (SIGHUP) "
            + "re-reads the file without dropping unaffected links; `ockam-edge agent --config FILE --check-config` "
            + "validates it (syntax and meaning) and exits.",
        "Errors name the file, the line and the key, e.g. `agent.yaml:5: transports.tcp.listen: expected host:port`. "
            + "Unknown keys are errors, so a typo never silently disables something.",
        "The file is the block subset of YAML: block mappings and sequences, plain and quoted scalars, flow sequences "
            + "of scalars (`[a, b]`) and comments. Tabs in indentation, anchors, aliases, tags, block scalars, flow "
            + "mappings, several documents and duplicate keys are refused with their line. At most 1 MiB and 32 levels.",
        "A duration is digits with at most one decimal point and a unit (`500ms`, `30s`, `2m`, `6h`, `1.5s`; a bare "
            + "number is seconds), above zero and at most a year. A count or bytes value is digits only, within the "
            + "range the key names. A host:port is an IPv4 address or a name, or an IPv6 address in brackets "
            + "(`[::1]:4000`), then a port 0-65535 in digits. Booleans: `true`/`false`, `yes`/`no`, `on`/`off`. "
            + "A key written `a[].b` is key `b` of each item of the list `a`.",
        "Secure defaults: messages that arrive over a link or a secure channel are forwarded to remote TCP hops only "
            + "on the configured uplinks and `forwarding.allow`; the metrics endpoint is off unless `metrics.listen` "
            + "is set; without `trust`, channels accept every identity that proves itself (Ockam's default) and the "
            + "agent logs a notice saying so.",
    ]

    static let example = [
        "node:",
        "  name: gateway",
        "  state_dir: /var/lib/ockam-edge",
        "vault:",
        "  path: /var/lib/ockam-edge/vault",
        "transports:",
        "  tcp:",
        "    listen: 127.0.0.1:4000",
        "  serial:",
        "    - /dev/ockam-edge/0403_6001-A50285BI-if00,mode=listen,name=sensor1",
        "bridges:",
        "  - name: readings",
        "    to: /ip4/10.0.0.5/tcp/4000/secure/api/service/ingest",
    ]
}
