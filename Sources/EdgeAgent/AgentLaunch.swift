// How a runtime is described (a configuration file, or `node run`'s flags) and what it derives from a configuration.
import EdgeCLI
import EdgeConfig
import EdgeIdentity
import EdgeQueue
import EdgeRouting
import EdgeTransportTCP
import Logging
import SystemPackage

/// How a runtime was described, and what differs between the two ways: error origins, messages, reload, identities.
package struct AgentLaunch: Sendable {
    package enum Source: Sendable, Equatable {
        /// A configuration file (`ockam-edge agent --config`): errors name its lines; SIGHUP re-reads it.
        case file(String)
        /// `ockam-edge node run`: its flags were mapped onto the configuration; errors name the flags.
        case commandLine
    }

    package var source: Source
    /// Whether a configured `identity` the vault lacks is created (the file's documented behaviour) or refused
    /// (`node run --identity` names one that must exist).
    package var createsNamedIdentity: Bool
    /// Settings for the secure channels this node opens itself (control socket, pairing); nil: the first listener's.
    package var outgoingChannels: AgentConfig.SecureChannelListener?
    /// The runtime's logger (its `node` metadata is set to the node's name).
    package var logger = Logger(label: "ockam-edge")

    package init(source: Source, createsNamedIdentity: Bool, outgoingChannels: AgentConfig.SecureChannelListener? = nil) {
        self.source = source
        self.createsNamedIdentity = createsNamedIdentity
        self.outgoingChannels = outgoingChannels
    }

    /// The configuration file started from: `agent --config`.
    package static func file(_ path: String) -> AgentLaunch { AgentLaunch(source: .file(path), createsNamedIdentity: true) }

    /// Where a configured value came from, for error messages: `agent.yaml:12: transports.serial[]`, or `--serial`.
    func origin(line: Int, key: String) -> String {
        switch source {
        case .file(let path): "\(path):\(line): \(key)"
        case .commandLine: key
        }
    }

    var describesTrust: String {
        switch source {
        case .file(let path): "trust: in \(path)"
        case .commandLine: "--trust"
        }
    }
}

/// Reading and checking a configuration file, and what the runtime derives from a configuration.
package enum AgentConfigFile {
    package static func load(_ path: String) throws -> AgentConfig {
        let text = try Support.readRegularFile(FilePath(path), limit: YAML.maxBytes + 1)
        guard text.utf8.count <= YAML.maxBytes else { throw CommandFailure("\(path): larger than \(YAML.maxBytes) bytes") }
        let config = try AgentConfig.parse(text, file: path)
        // Meaning, not just syntax: identities decode, multiaddrs parse.
        for authority in config.trust.authorities {
            _ = try Identity.decoding(hex: authority.identity, what: "\(path): trust.authorities \(authority.name)")
        }
        for relay in config.relays {
            do { _ = try Multiaddr(parsing: relay.hub) } catch { throw CommandFailure("\(path): relays.register \(relay.name).hub: \(error)") }
        }
        for inlet in config.inlets {
            do { _ = try Multiaddr(parsing: inlet.to) } catch { throw CommandFailure("\(path): portals.inlets \(inlet.listen).to: \(error)") }
        }
        for bridge in config.bridges {
            for to in bridge.to {
                do { _ = try Multiaddr(parsing: to) } catch { throw CommandFailure("\(path): bridges \(bridge.name).to: \(error)") }
            }
            let limits = BridgeQueueStore.limits(bridge.queue)
            let minimum = 2 * (limits.segmentBytes + limits.maxRecordBytes + 17)
            if bridge.queue.diskBytes < minimum {
                throw CommandFailure(
                    "\(path): bridges \(bridge.name).queue.disk_bytes: at least \(minimum) with memory_bytes \(bridge.queue.memoryBytes) (two segments)")
            }
        }
        for ingest in config.ingest { try IngestSinks.validate(ingest, .file(path)) }
        try DeviceLinks.validate(
            serial: deviceLinks(config.serialPorts, .file(path)), bleListen: deviceLinks(config.bleListen, .file(path)),
            bleConnect: deviceLinks(config.bleConnect, .file(path)))
        _ = try forwardRules(config, .file(path), lookup: { _ in nil })
        return config
    }

    /// What a link's or secure channel's messages may be forwarded to: `forwarding.allow`, and the TCP hop each
    /// configured uplink starts with (bridges' `to`, relay hubs, inlets' `to`), so a gateway's devices reach the
    /// uplinks its own configuration names and nothing else (docs/routing.md "Flow control").
    package static func forwardRules(
        _ config: AgentConfig, _ launch: AgentLaunch, lookup: (String) -> String?
    ) throws -> [TCPForwardRule] {
        var rules: [TCPForwardRule] = []
        for rule in config.forwardAllow {
            do { rules.append(try TCPForwardRule(parsing: rule.text)) } catch {
                throw CommandFailure("\(launch.origin(line: rule.line, key: "forwarding.allow")): \(error)")
            }
        }
        return rules + uplinks(config, lookup: lookup).map { TCPForwardRule(exactly: $0) }
    }

    /// The TCP hop each configured uplink starts with: bridges' `to`, relay hubs, inlets' `to`.
    static func uplinks(_ config: AgentConfig, lookup: (String) -> String?) -> [TCPDestination] {
        (config.bridges.flatMap(\.to) + config.relays.map(\.hub) + config.inlets.map(\.to)).compactMap { text in
            guard case .address(let first)? = (try? Multiaddr(parsing: text).routeSegments(resolveNode: lookup))?.first,
                first.transportType == .tcp
            else { return nil }
            return try? TCPDestination(parsing: first.valueString)
        }
    }

    static func deviceLinks(_ links: [AgentConfig.DeviceLink], _ launch: AgentLaunch) -> [DeviceLinkSpec] {
        links.map { DeviceLinkSpec(spec: $0.spec, origin: launch.origin(line: $0.line, key: $0.key)) }
    }
}
