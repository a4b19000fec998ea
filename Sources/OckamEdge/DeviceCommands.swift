// `ockam-edge ble list` and `serial list`: the adapters and ports a gateway could use.
import EdgeAgent
import EdgeCLI
import EdgeConfig
import EdgeControl
import EdgeIdentity
import EdgeIdentityStore
import EdgeNode
import EdgeRouting
import EdgeSecureChannel
import EdgeTransportBLE
import EdgeTransportSerial
import EdgeTransportTCP
import EdgeVault
import EdgeWire
import Logging
import NIOCore
import NIOPosix
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif


/// `ockam-edge ble list`.
enum BLECommands {
    static let spec = CommandSpec(
        "ble", abstract: "Bluetooth LE adapters.",
        subcommands: [
            CommandSpec(
                "list", abstract: "List Bluetooth adapters and their addresses (kernel HCI interface).",
                examples: ["ockam-edge ble list", "ockam-edge ble list --json"], options: [VaultOptionsCLI.json])
        ])

    static func run(_ arguments: ParsedArguments) throws -> Int32 {
        let adapters: [BLEAdapterInfo]
        do {
            adapters = try BLEAdapters.list()
        } catch {
            throw CommandFailure("\(error)")
        }
        if arguments.flag("json") {
            print(
                JSON.array(
                    adapters.map {
                        .object([
                            ("index", .int(Int64($0.index))), ("name", .string($0.name)),
                            ("address", .string($0.address.description)), ("up", .bool($0.isUp)),
                        ])
                    }
                ).serialized())
        } else if adapters.isEmpty {
            print("no Bluetooth adapters")
        } else {
            for adapter in adapters { print("\(adapter.name)\t\(adapter.address)\t\(adapter.isUp ? "up" : "down")") }
        }
        return 0
    }
}

/// `ockam-edge serial list`.
enum SerialCommands {
    static let spec = CommandSpec(
        "serial", abstract: "Serial ports.",
        subcommands: [
            CommandSpec(
                "list", abstract: "List candidate serial ports with their stable names and USB identities.",
                discussion: "Prefer the stable names (/dev/ockam-edge/…, /dev/serial/by-id/…) in configuration: they survive re-plugging.",
                examples: ["ockam-edge serial list", "ockam-edge serial list --json"], options: [VaultOptionsCLI.json])
        ])

    static func run(_ arguments: ParsedArguments) -> Int32 {
        let ports = SerialPorts.list()
        if arguments.flag("json") {
            print(
                JSON.array(
                    ports.map { port in
                        var members: [(String, JSON)] = [
                            ("path", .string(port.path.string)), ("aliases", .array(port.aliases.map { .string($0.string) })),
                            ("driver", port.driver.map { .string($0) } ?? .null),
                        ]
                        if let usb = port.usb {
                            members.append(
                                (
                                    "usb",
                                    .object([
                                        ("vendor_id", .string(Hex.encode([UInt8(usb.vendorID >> 8), UInt8(usb.vendorID & 0xff)]))),
                                        ("product_id", .string(Hex.encode([UInt8(usb.productID >> 8), UInt8(usb.productID & 0xff)]))),
                                        ("manufacturer", usb.manufacturer.map { .string($0) } ?? .null),
                                        ("product", usb.product.map { .string($0) } ?? .null),
                                        ("serial", usb.serialNumber.map { .string($0) } ?? .null),
                                    ])
                                ))
                        }
                        return .object(members)
                    }
                ).serialized())
        } else if ports.isEmpty {
            print("no serial ports found")
        } else {
            for port in ports {
                var line = port.path.string
                if let driver = port.driver { line += "  (\(driver))" }
                if let usb = port.usb {
                    line += "  \(usb.manufacturer ?? "") \(usb.product ?? "")"
                }
                print(line)
                for alias in port.aliases { print("    \(alias)") }
            }
        }
        return 0
    }
}
