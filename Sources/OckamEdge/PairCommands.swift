// `ockam-edge pair serial|ble`, `unpair` and `devices list`: pairing sensors through a running node's control
// socket (docs/pairing.md).
import EdgeAgent
import EdgeCLI
import EdgeWire
import EdgeControl
import EdgeIdentityStore
import EdgeSecureChannel

#if canImport(Glibc)
import Glibc
#endif

enum PairCommands {
    static let name = OptionSpec("name", value: "device-name", help: "Name to store the device under (letters, digits, '-', '_', '.').")
    static let attribute = OptionSpec(
        "attribute", value: "key=value", help: "An attribute stored with the device.", repeatable: true)
    static let yes = OptionSpec.flag(
        "yes",
        help: "Accept without comparing the verification code. Defeats the protection against a man in the middle: only for scripted test rigs.")
    static let expectCode = OptionSpec(
        "expect-code", value: "123456|-",
        help: "Compare with this code instead of asking; '-' reads the code the device shows from stdin after the handshake.")
    static let listener = OptionSpec("listener", value: "name", help: "The device's secure channel listener.", default: "api")
    static let timeout = OptionSpec("timeout", value: "duration", help: "Handshake timeout.", default: "30s")
    static let common = [SecureChannelCommands.from, name, attribute, yes, expectCode, listener, timeout, VaultOptionsCLI.json, Commands.stateDir]

    static let discussion = """
        The node (--from) opens a secure channel over the link to the device's listener, admitting whatever identity
        the device proves, and both ends derive a 6-digit verification code from the handshake hash. The device shows
        it (an ockam-edge node logs 'secure channel from I… (verification code 123 456)' and lists it in
        'secure-channel list'; firmware with a display shows it). If the codes match, the device's identifier is stored
        in the node's vault under --name with its attributes, trusted by the node's secure channel listeners from then
        on, and the pairing channel stays open. If they differ, someone is in the middle: the pairing is cancelled and
        nothing is stored. Without --yes or --expect-code the command asks on the terminal. See docs/pairing.md.
        """

    static let spec = CommandSpec(
        "pair", abstract: "Pair a serial or BLE sensor with a running node (numeric comparison).",
        discussion: discussion,
        subcommands: [
            CommandSpec(
                "serial", abstract: "Pair the device on one of the node's serial links.",
                discussion: discussion,
                examples: [
                    "ockam-edge pair serial sensor1 --from gateway --name thermo-1 --attribute room=lab",
                    "ockam-edge pair serial sensor1 --from gateway --name thermo-1 --expect-code -   # read the code from stdin",
                ],
                options: common,
                arguments: [ArgumentSpec("link", help: "The serial link's name on the node (--serial …,name=<link>).")]),
            CommandSpec(
                "ble", abstract: "Pair a BLE device (L2CAP LE credit-based channel).",
                discussion: discussion + """


                    --security medium|high requires an encrypted (medium) or encrypted and authenticated (high) BLE
                    link, so the kernel pairs/bonds at the BLE layer before the channel starts. A link to the device
                    that is already up is reused as it is.
                    """,
                examples: [
                    "ockam-edge pair ble AA:BB:CC:DD:EE:FF/random,psm=0x81 --from gateway --name tag-7 --security high",
                ],
                options: common + [
                    OptionSpec("security", value: "level", help: "Require BLE link security: medium or high (or fips).")
                ],
                arguments: [ArgumentSpec("address", help: "<bdaddr>[/public|/random],psm=0x81[,adapter=hciN][,mtu=…]")]),
        ])

    static let unpairSpec = CommandSpec(
        "unpair", abstract: "Forget a paired device: its record is deleted and its open channels are closed at once.",
        examples: ["ockam-edge unpair thermo-1 --from gateway"],
        options: [SecureChannelCommands.from, VaultOptionsCLI.json, Commands.stateDir],
        arguments: [ArgumentSpec("device", help: "The device's name.")])

    static let devicesSpec = CommandSpec(
        "devices", abstract: "Devices paired with a running node.",
        subcommands: [
            CommandSpec(
                "list", abstract: "List paired devices (name, identifier, attributes, transport, open channels).",
                examples: ["ockam-edge devices list --from gateway", "ockam-edge devices list --from gateway --json"],
                options: [SecureChannelCommands.from, VaultOptionsCLI.json, Commands.stateDir])
        ])

    /// `pair serial|ble`.
    static func pair(_ transport: String, _ arguments: ParsedArguments) async throws -> Int32 {
        let directory = NodeDirectory(stateDirectory: Support.stateDirectory(arguments.value("state-dir")))
        let node = arguments.value("from") ?? "default"
        // Everything that can be checked before touching the device is checked first (exit status 2).
        guard let deviceName = arguments.value("name") else { throw CommandFailure("missing --name <device-name>", status: 2) }
        guard DeviceRecord.isValidName(deviceName) else {
            throw CommandFailure("invalid device name '\(deviceName)' (letters, digits, '-', '_', '.'; at most 64)", status: 2)
        }
        var attributes: [String: String] = [:]
        for pair in arguments.values("attribute") {
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
                throw CommandFailure("--attribute '\(pair)' must be key=value", status: 2)
            }
            attributes[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
        }
        let expect = arguments.value("expect-code")
        if expect != nil && arguments.flag("yes") { throw CommandFailure("--yes and --expect-code exclude each other", status: 2) }
        if let expect, expect != "-", VerificationCode(parsing: expect) == nil {
            throw CommandFailure("--expect-code '\(expect)': expected six digits (e.g. 123456 or '123 456') or '-'", status: 2)
        }
        guard let target = arguments.value(transport == "ble" ? "address" : "link") else {
            throw CommandFailure("missing the \(transport == "ble" ? "device address" : "serial link name")", status: 2)
        }
        var request = PairingRequest(
            transport: transport, target: target, listener: arguments.value("listener") ?? "api",
            timeout: try Support.parseDuration(arguments.value("timeout") ?? "30s"))
        if let security = arguments.value("security") {
            guard ["medium", "high", "fips"].contains(security) else {
                throw CommandFailure("--security '\(security)': expected medium or high (or fips)", status: 2)
            }
            request.security = security
        }

        let reply = try await SecureChannelCommands.call(.startPairing(request), node: node, directory: directory)
        guard case .pairingStarted(let started) = reply, let code = VerificationCode(parsing: started.code) else {
            throw CommandFailure("unexpected answer from node '\(node)': \(reply.json.serialized(pretty: false))")
        }
        let (channel, identifier) = (started.channel, started.identifier)
        print("device \(identifier)")
        print("channel \(channel)")
        print("verification code \(code)")
        func cancel(_ reason: String) async throws -> Never {
            _ = try? await SecureChannelCommands.call(.cancelPairing(channel: channel), node: node, directory: directory)
            throw CommandFailure("\(reason); pairing cancelled, nothing stored")
        }

        if let other = started.alreadyPairedAs {
            try await cancel("this device is already paired as '\(other)' (unpair it first to pair it again)")
        }
        if arguments.flag("yes") {
            Console.error("warning: --yes: the verification code was not compared (no protection against a man in the middle)")
        } else if let expect, expect != "-" {
            if VerificationCode(parsing: expect) != code {
                try await cancel("verification code mismatch: expected \(VerificationCode(parsing: expect)!), the handshake gives \(code) — someone may be in the middle")
            }
        } else if expect == "-" {
            print("Enter the code the device shows: ", terminator: "")
            fflush(nil)
            let line = readLine() ?? ""
            guard let typed = VerificationCode(parsing: line) else { try await cancel("'\(line)' is not a 6-digit code") }
            if typed != code {
                try await cancel("verification code mismatch: the device shows \(typed), the handshake gives \(code) — someone may be in the middle")
            }
        } else {
            print("Does the device show \(code)? [y/N] ", terminator: "")
            fflush(nil)
            let answer = (readLine() ?? "").lowercased()
            guard answer == "y" || answer == "yes" else { try await cancel("not confirmed") }
        }

        let confirmed: ControlReply
        do {
            confirmed = try await SecureChannelCommands.call(
                .confirmPairing(channel: channel, name: deviceName, attributes: attributes), node: node, directory: directory)
        } catch let failure as CommandFailure {
            _ = try? await SecureChannelCommands.call(.cancelPairing(channel: channel), node: node, directory: directory)
            throw CommandFailure("\(failure.message); pairing cancelled, nothing stored")
        }
        print(arguments.flag("json") ? confirmed.json.serialized() : "paired \(deviceName) (\(identifier))")
        return 0
    }

    /// `unpair <device>` and `devices list`.
    static func run(_ path: [String], _ arguments: ParsedArguments) async throws -> Int32 {
        let directory = NodeDirectory(stateDirectory: Support.stateDirectory(arguments.value("state-dir")))
        let node = arguments.value("from") ?? "default"
        switch path {
        case ["pair", "serial"]: return try await pair("serial", arguments)
        case ["pair", "ble"]: return try await pair("ble", arguments)
        case ["unpair"]:
            guard let device = arguments.value("device"), DeviceRecord.isValidName(device) else {
                throw CommandFailure("invalid device name '\(arguments.value("device") ?? "")'", status: 2)
            }
            let reply = try await SecureChannelCommands.call(.removeDevice(name: device), node: node, directory: directory)
            print(arguments.flag("json") ? reply.json.serialized() : "unpaired \(device)")
        case ["devices", "list"]:
            print(try await SecureChannelCommands.call(.listDevices, node: node, directory: directory).json.serialized())
        default:
            throw CommandFailure("command \(path.joined(separator: " ")) is not implemented", status: 2)
        }
        return 0
    }
}
