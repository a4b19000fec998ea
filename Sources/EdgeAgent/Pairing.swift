// Pairing devices inside a running node: the control-socket side of `ockam-edge pair`, `unpair` and `devices`
// (docs/pairing.md). The node owns the vault and the transports, so pairing runs here.
import EdgeCLI
import EdgeControl
import EdgeIdentity
import EdgeIdentityStore
import EdgeRouting
import EdgeSecureChannel
import EdgeSync
import EdgeTransportBLE
import EdgeTransportSerial
import EdgeWire
import Logging

/// Paired devices of one node: the records in its vault, the trust they add, pairings awaiting confirmation.
///
/// ### Invariants
/// - A device is trusted (``trust(_:)``) exactly while its record exists in the vault.
/// - Removing a device closes every open channel whose peer is its identifier before the command returns.
/// - A pairing channel that is neither confirmed nor cancelled is closed after ``pendingTimeout``.
final class PairingService: Sendable {
    let store: IdentityStore
    let channels: SecureChannels
    let logger: Logger
    let pendingTimeout: Duration

    struct Pending: Sendable {
        var identifier: Identifier
        var transport: String
        var linkSecurity: String?
        var expiry: Task<Void, Never>?
    }

    private struct State: ~Copyable {
        var paired: [String: Identifier] = [:]  // device name → identifier
        var pending: [Address: Pending] = [:]  // by the pairing channel's encryptor
        var serial: SerialTransport?
        var ble: BLETransport?
    }

    private let state = EdgeMutex(State())

    init(store: IdentityStore, channels: SecureChannels, logger: Logger, pendingTimeout: Duration = .seconds(120)) {
        self.store = store
        self.channels = channels
        self.logger = logger
        self.pendingTimeout = pendingTimeout
    }

    /// Reads the paired devices from the vault (at start).
    func load() throws {
        let devices = try store.devices()
        state.withLock { $0.paired = Dictionary(devices.map { ($0.name, $0.identifier) }, uniquingKeysWith: { a, _ in a }) }
    }

    /// The transports pairing may use (those the node was started with). A BLE transport is told the link security
    /// each device paired over BLE requires from now on.
    func attach(serial: SerialTransport?, ble: BLETransport?) {
        state.withLock {
            $0.serial = serial
            $0.ble = ble
        }
        if let ble, let devices = try? store.devices() {
            for device in devices { Self.applyLinkSecurity(of: device, to: ble) }
        }
    }

    /// Where a device paired over BLE with `security` must be reached from: its address and that level (nil for
    /// devices paired over serial or without a BLE security requirement).
    static func bleRequirement(of device: DeviceRecord) -> (BluetoothDeviceAddress, BLESecurityLevel)? {
        BLETransport.pairedDeviceRequirement(transport: device.transport, linkSecurity: device.linkSecurity)
    }

    /// Makes `ble` hold every later link of `device` to the security it was paired with (or lifts it: `removed`).
    static func applyLinkSecurity(of device: DeviceRecord, to ble: BLETransport, removed: Bool = false) {
        guard let (address, level) = bleRequirement(of: device) else { return }
        ble.requireSecurity(removed ? nil : level, of: address)
    }

    var pairedIdentifiers: Set<Identifier> { state.withLock { Set($0.paired.values) } }

    /// The attributes `identifier` was paired with (`pair … --attribute k=v`), nil if it is not a paired device.
    func attributes(of identifier: Identifier) -> [String: String]? {
        guard let name = state.withLock({ $0.paired.first { $0.value == identifier }?.key }) else { return nil }
        return (try? store.device(named: name))?.attributes
    }

    /// `base`, widened to admit the paired devices: what the node's listeners use for every new handshake.
    func trust(_ base: TrustContext) -> TrustContext {
        TrustContext(policy: base.policy.admitting(paired: pairedIdentifiers), authorities: base.authorities)
    }

    // MARK: Control commands

    /// Answers one pairing or devices command.
    func answer(_ command: ControlCommand, options: SecureChannelOptions) async throws -> ControlReply {
        switch command {
        case .startPairing(let request):
            return .pairingStarted(try await start(request, options: options))
        case .confirmPairing(let channel, let name, let attributes):
            let address = try Self.channelAddress(channel)
            return .pairingConfirmed(
                channel: "/service/\(address.valueString)", device: try await confirm(address, name: name, attributes: attributes))
        case .cancelPairing(let channel):
            let address = try Self.channelAddress(channel)
            guard let pending = state.withLock({ $0.pending.removeValue(forKey: address) }) else {
                throw CommandFailure("no pairing in progress on /service/\(address.valueString)")
            }
            pending.expiry?.cancel()
            await channels.close(address)
            logger.notice("pairing with \(pending.identifier) cancelled")
            return .pairingCancelled(channel: "/service/\(address.valueString)")
        case .listDevices:
            return .devices(try store.devices().map(summary))
        case .removeDevice(let name):
            return .deviceRemoved(try await remove(name: name))
        default:
            throw CommandFailure("not a pairing command: \(command.name)")
        }
    }

    func start(_ request: PairingRequest, options base: SecureChannelOptions) async throws -> PairingStarted {
        let listener = request.listener
        guard !listener.isEmpty, !listener.contains("/") else { throw CommandFailure("invalid listener '\(listener)'") }
        let target = request.target
        guard !target.isEmpty else { throw CommandFailure("missing 'target'") }
        let (serial, ble) = state.withLock { ($0.serial, $0.ble) }
        let route: Route
        let transport: String
        var linkSecurity: String?
        switch request.transport {
        case "serial":
            let name = target.hasPrefix("/serial/") ? String(target.dropFirst("/serial/".count)) : target
            guard let serial else { throw CommandFailure("this node has no serial links (start it with --serial …)") }
            guard serial.status(port: name) != nil else {
                let known = serial.ports.map(\.name).sorted().joined(separator: ", ")
                throw CommandFailure("no serial link named '\(name)' on this node (configured: \(known.isEmpty ? "none" : known))")
            }
            route = [.serial(name), .local(listener)]
            transport = "serial:\(name)"
        case "ble":
            guard let ble else {
                throw CommandFailure("this node has no BLE transport (start it with --ble-listen or --ble-connect)")
            }
            var configuration: BLEConnectConfiguration
            do {
                configuration = try BLEConnectConfiguration(parsing: target)
            } catch {
                throw CommandFailure("BLE target '\(target)': \(error)")
            }
            configuration.reconnect = false
            if let text = request.security {
                guard let level = BLESecurityLevel(rawValue: text), level != .low else {
                    throw CommandFailure("security '\(text)': expected medium, high or fips")
                }
                configuration.security = level
                linkSecurity = level.rawValue
            }
            let link = try await ble.connect(configuration)
            route = [link.senderAddress, .local(listener)]
            transport = "ble:\(configuration.peer)"
        case let other:
            throw CommandFailure("transport '\(other)': expected serial or ble")
        }
        var options = base
        options.trustProvider = nil
        // The device's identity is not known yet: admit whatever identity proves itself; the person comparing the
        // verification code is what authenticates it.
        options.trust = TrustContext(policy: .everyone, authorities: base.currentTrust.authorities)
        if let timeout = request.timeout { options.handshakeTimeout = timeout }
        let info = try await channels.createChannel(to: route, options: options)
        let expiry = Task { [weak self, pendingTimeout] in
            do { try await Task.sleep(for: pendingTimeout) } catch { return }
            await self?.expire(info.encryptor)
        }
        state.withLock {
            $0.pending[info.encryptor] = Pending(
                identifier: info.peer, transport: transport, linkSecurity: linkSecurity, expiry: expiry)
        }
        let already = state.withLock { $0.paired.first { $0.value == info.peer }?.key }
        logger.notice("pairing with \(info.peer) over \(transport): verification code \(info.verificationCode)")
        return PairingStarted(
            channel: "/service/\(info.encryptor.valueString)", identifier: info.peer.description,
            code: info.verificationCode.description, transport: transport, alreadyPairedAs: already)
    }

    private func expire(_ address: Address) async {
        guard let pending = state.withLock({ $0.pending.removeValue(forKey: address) }) else { return }
        logger.notice("pairing with \(pending.identifier) not confirmed within \(pendingTimeout); closing its channel")
        await channels.close(address)
    }

    /// Stores the device and trusts it from now on; the pairing channel stays open.
    func confirm(_ address: Address, name: String, attributes: [String: String]) async throws -> DeviceSummary {
        guard DeviceRecord.isValidName(name) else { throw CommandFailure("\(DeviceRecordError.invalidName(name))") }
        guard let pending = state.withLock({ $0.pending[address] }) else {
            throw CommandFailure("no pairing in progress on /service/\(address.valueString) (expired or cancelled?)")
        }
        guard let channel = channels.channel(address), channel.peer == pending.identifier else {
            state.withLock { _ = $0.pending.removeValue(forKey: address) }
            pending.expiry?.cancel()
            throw CommandFailure("the pairing channel closed before it was confirmed; pair again")
        }
        if let existing = try store.device(named: name) {
            throw CommandFailure("a device named '\(name)' is already paired (\(existing.identifier)); unpair it first")
        }
        if let other = state.withLock({ $0.paired.first { $0.value == pending.identifier }?.key }) {
            throw CommandFailure("\(pending.identifier) is already paired as '\(other)'")
        }
        let record = DeviceRecord(
            name: name, identifier: pending.identifier, attributes: attributes, transport: pending.transport,
            linkSecurity: pending.linkSecurity, pairedAt: currentTimestamp())
        try store.saveDevice(record)
        state.withLock {
            $0.pending[address] = nil
            $0.paired[name] = record.identifier
        }
        pending.expiry?.cancel()
        if let ble = state.withLock({ $0.ble }) { Self.applyLinkSecurity(of: record, to: ble) }
        logger.notice("paired device '\(name)' (\(record.identifier)) over \(record.transport)")
        return summary(record)
    }

    /// Deletes the record, stops trusting the identifier and closes its channels at once (revocation).
    func remove(name: String) async throws -> DeviceRemoved {
        guard let record = try store.device(named: name) else { throw CommandFailure("no paired device named '\(name)'") }
        try store.removeDevice(named: name)
        state.withLock { _ = $0.paired.removeValue(forKey: name) }
        if let ble = state.withLock({ $0.ble }) { Self.applyLinkSecurity(of: record, to: ble, removed: true) }
        let closed = await channels.closeChannels(withPeer: record.identifier, reason: "device '\(name)' unpaired")
        logger.notice("unpaired device '\(name)' (\(record.identifier)); closed \(closed.count) channel(s)")
        return DeviceRemoved(
            name: name, identifier: record.identifier.description,
            closedChannels: closed.map { "/service/\($0.valueString)" })
    }

    func summary(_ record: DeviceRecord) -> DeviceSummary {
        DeviceSummary(
            name: record.name, identifier: record.identifier.description, attributes: record.attributes,
            transport: record.transport, linkSecurity: record.linkSecurity, pairedAt: record.pairedAt,
            channels: channels.channels.filter { $0.peer == record.identifier }.map { "/service/\($0.encryptor.valueString)" })
    }

    static func channelAddress(_ text: String) throws -> Address {
        var text = text
        guard !text.isEmpty else { throw CommandFailure("missing 'channel'") }
        if text.hasPrefix("/service/") { text = String(text.dropFirst("/service/".count)) }
        return .local(text)
    }
}
