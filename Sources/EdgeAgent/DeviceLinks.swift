// Serial and BLE transports attached to a node: from `node run` flags or the agent's transports.serial / transports.ble.
import EdgeCLI
import EdgeNode
import EdgeRouting
import EdgeTransportBLE
import EdgeTransportSerial
import EdgeWire
import Logging
import NIOCore
import SystemPackage

/// One device link as written by the user, with where it came from (for error messages).
struct DeviceLinkSpec: Sendable {
    var spec: String
    /// `--serial …` or `agent.yaml:12: transports.serial[]`.
    var origin: String
}

/// The serial and BLE transports of a node.
final class DeviceLinks: Sendable {
    let serial: SerialTransport
    let ble: BLETransport?

    private init(serial: SerialTransport, ble: BLETransport?) {
        self.serial = serial
        self.ble = ble
    }

    /// Parses every spec (failing with its origin before anything starts), then opens ports and listeners.
    static func attach(
        node: Node, group: any EventLoopGroup, logger: Logger, serial: [DeviceLinkSpec], bleListen: [DeviceLinkSpec],
        bleConnect: [DeviceLinkSpec]
    ) async throws -> DeviceLinks {
        let serialConfigurations = try serial.map { link in try parse(link) { try SerialConfiguration(parsing: $0) } }
        let listenConfigurations = try bleListen.map { link in try parse(link) { try BLEListenConfiguration(parsing: $0) } }
        let connectConfigurations = try bleConnect.map { link in try parse(link) { try BLEConnectConfiguration(parsing: $0) } }

        let transport = SerialTransport(node: node, group: group, logger: logger)
        for configuration in serialConfigurations {
            let address = try transport.open(configuration)
            logger.info("serial port \(configuration.path) attached as \(address)")
        }
        var ble: BLETransport?
        if !listenConfigurations.isEmpty || !connectConfigurations.isEmpty {
            let bleTransport = BLETransport(node: node, group: group, logger: logger)
            ble = bleTransport
            for configuration in listenConfigurations {
                let psm = try await bleTransport.listen(configuration)
                logger.info("BLE listener on PSM \(psm)")
            }
            for configuration in connectConfigurations { bleTransport.maintain(configuration) }
        }
        return DeviceLinks(serial: transport, ble: ble)
    }

    /// Validates specs without opening anything (`agent --check-config`).
    static func validate(serial: [DeviceLinkSpec], bleListen: [DeviceLinkSpec], bleConnect: [DeviceLinkSpec]) throws {
        for link in serial { _ = try parse(link) { try SerialConfiguration(parsing: $0) } }
        for link in bleListen { _ = try parse(link) { try BLEListenConfiguration(parsing: $0) } }
        for link in bleConnect { _ = try parse(link) { try BLEConnectConfiguration(parsing: $0) } }
    }

    private static func parse<T>(_ link: DeviceLinkSpec, _ body: (String) throws -> T) throws -> T {
        do { return try body(link.spec) } catch { throw CommandFailure("\(link.origin) \(link.spec): \(error)", status: 2) }
    }

    /// Names the device link behind a transport sender address: `serial:<name>` or `ble:<peer address>`.
    func describe(_ address: Address) -> String? {
        if let port = serial.ports.first(where: { $0.senderAddress == address }) { return "serial:\(port.name)" }
        if let link = ble?.links.first(where: { $0.senderAddress == address }) {
            return link.peer.map { "ble:\($0)" } ?? "ble:link-\(link.id)"
        }
        return nil
    }

    /// Serial ports with a live link, and BLE links.
    var linksUp: (serial: Int, ble: Int) {
        (serial.ports.filter { $0.phase == .linked }.count, ble?.links.count ?? 0)
    }

    /// For `status --json` (serial ports, with their counters, are shown by NodeController itself).
    var statusFields: [(String, JSON)] {
        var fields: [(String, JSON)] = []
        if let ble {
            fields.append((
                "ble_links",
                .array(
                    ble.links.map { link in
                        .object([
                            ("id", .uint(UInt64(link.id))),
                            ("peer", link.peer.map { .string("\($0)") } ?? .null), ("sender", .string(link.senderAddress.description)),
                            ("outgoing", .bool(link.outgoing)), ("send_mtu", .uint(UInt64(link.sendMTU))),
                            ("receive_mtu", .uint(UInt64(link.receiveMTU))), ("sdu_limit", .uint(UInt64(link.sduLimit))),
                            ("security", link.security.map { .string($0.rawValue) } ?? .null),
                        ])
                    })
            ))
            let c = ble.counters
            fields.append((
                "ble_counters",
                .object([
                    ("link_ups", .uint(c.linkUps)), ("link_downs", .uint(c.linkDowns)),
                    ("reconnect_attempts", .uint(c.reconnectAttempts)), ("connect_failures", .uint(c.connectFailures)),
                    ("links_refused_security", .uint(c.linksRefusedSecurity)),
                    ("listener_restarts", .uint(c.listenerRestarts)),
                    ("links_refused_over_cap", .uint(c.linksRefusedOverCap)),
                    ("sdus_in", .uint(c.sdusIn)), ("sdus_out", .uint(c.sdusOut)),
                    ("bytes_in", .uint(c.bytesIn)), ("bytes_out", .uint(c.bytesOut)),
                    ("messages_in", .uint(c.messagesIn)), ("messages_out", .uint(c.messagesOut)),
                    // Every reason, zero or not, so a monitor sees the full set (docs/ble.md §6).
                    ("drops", .object(BLEDropReason.allCases.map { ($0.rawValue, .uint(c.dropped($0))) })),
                ])
            ))
        }
        return fields
    }

    func shutdown() async {
        await serial.shutdown()
        await ble?.shutdown()
    }
}
