// Paired devices kept in the vault (records `devices/<name>`): who was paired, over what, when (docs/pairing.md).
import EdgeIdentity
import EdgeVault
import EdgeWire

/// A device paired with this node: its identifier, the attributes given at pairing, and how it was reached.
public struct DeviceRecord: Hashable, Sendable {
    /// The record name (`devices/<name>`): `[A-Za-z0-9._-]{1,64}`, not starting with `.`.
    public var name: String
    public var identifier: Identifier
    /// Attributes given at pairing (`--attribute k=v`), at most ``DeviceRecord/maxAttributes``.
    public var attributes: [String: String]
    /// How the device was reached when it was paired, e.g. `serial:sensor1` or `ble:AA:BB:CC:DD:EE:FF,psm=0x81`.
    public var transport: String
    /// Whether pairing required an encrypted BLE link, and at which level (`medium`, `high`), if any.
    public var linkSecurity: String?
    /// Seconds since the Unix epoch.
    public var pairedAt: Timestamp

    public static let maxAttributes = 32
    public static let maxTextLength = 256
    public static let maxNameLength = 64
    /// The record format version written first in the CBOR array.
    public static let version: UInt64 = 1

    public init(
        name: String, identifier: Identifier, attributes: [String: String] = [:], transport: String,
        linkSecurity: String? = nil, pairedAt: Timestamp
    ) {
        self.name = name
        self.identifier = identifier
        self.attributes = attributes
        self.transport = transport
        self.linkSecurity = linkSecurity
        self.pairedAt = pairedAt
    }

    /// Whether `name` can name a device record (the vault's record-name rule, at most 64 bytes).
    public static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= maxNameLength, name.utf8.first != UInt8(ascii: ".") else { return false }
        return name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d || c == 0x5f
                || c == 0x2e
        }
    }

    /// CBOR `[1, identifier bytes(32), {text: text}, transport text, link security text|null, paired_at uint]`;
    /// attribute keys are written sorted so equal records encode equally.
    public func encode() -> [UInt8] {
        var writer = CBORWriter()
        writer.writeArrayHeader(6)
        writer.writeUnsigned(Self.version)
        writer.writeBytes(identifier.bytes)
        writer.writeMapHeader(attributes.count)
        for (key, value) in attributes.sorted(by: { $0.key < $1.key }) {
            writer.writeText(key)
            writer.writeText(value)
        }
        writer.writeText(transport)
        if let linkSecurity { writer.writeText(linkSecurity) } else { writer.writeNull() }
        writer.writeUnsigned(pairedAt)
        return writer.bytes
    }

    /// Decodes a record written by ``encode()``; every length and count is bounded.
    public init(name: String, decoding bytes: [UInt8]) throws(DeviceRecordError) {
        guard Self.isValidName(name) else { throw .invalidName(name) }
        var reader = CBORReader(bytes)
        do {
            let count = try reader.readArrayHeader(limit: 16)
            guard count >= 6 else { throw DeviceRecordError.malformed("expected 6 fields, found \(count)") }
            let version = try reader.readUnsigned()
            guard version == Self.version else { throw DeviceRecordError.unsupportedVersion(version) }
            let idBytes = Array(try reader.readBytes(limit: 32))
            do {
                identifier = try Identifier(bytes: idBytes)
            } catch {
                throw DeviceRecordError.malformed("identifier: \(error)")
            }
            let pairs = try reader.readMapHeader(limit: Self.maxAttributes)
            var attributes: [String: String] = [:]
            for _ in 0..<pairs {
                let key = try reader.readText(limit: Self.maxTextLength)
                let value = try reader.readText(limit: Self.maxTextLength)
                guard attributes.updateValue(value, forKey: key) == nil else {
                    throw DeviceRecordError.malformed("attribute '\(key)' appears twice")
                }
            }
            self.attributes = attributes
            transport = try reader.readText(limit: Self.maxTextLength)
            linkSecurity = reader.readNullIfPresent() ? nil : try reader.readText(limit: 16)
            pairedAt = try reader.readUnsigned()
            try reader.skipValues(count - 6)  // fields added by later minor versions
            try reader.expectEnd()
        } catch let error as DeviceRecordError {
            throw error
        } catch {
            throw .malformed("\(error)")
        }
        self.name = name
    }
}

/// Why a device record could not be read or written.
public enum DeviceRecordError: Error, Hashable, Sendable, CustomStringConvertible {
    case invalidName(String)
    case malformed(String)
    case unsupportedVersion(UInt64)
    case tooManyAttributes(Int)
    case textTooLong(String)

    public var description: String {
        switch self {
        case .invalidName(let name):
            return "invalid device name '\(name)' (letters, digits, '-', '_', '.'; at most \(DeviceRecord.maxNameLength))"
        case .malformed(let what): return "malformed device record: \(what)"
        case .unsupportedVersion(let v): return "device record version \(v) is not supported"
        case .tooManyAttributes(let n): return "\(n) attributes (at most \(DeviceRecord.maxAttributes))"
        case .textTooLong(let what): return "\(what) is longer than \(DeviceRecord.maxTextLength) bytes"
        }
    }
}

extension IdentityStore {
    static let devices = "devices"

    /// Stores (or replaces) a device record.
    ///
    /// - Throws: ``DeviceRecordError`` for a bad name or oversized fields; vault errors pass through.
    public func saveDevice(_ record: DeviceRecord) throws {
        guard DeviceRecord.isValidName(record.name) else { throw DeviceRecordError.invalidName(record.name) }
        guard record.attributes.count <= DeviceRecord.maxAttributes else {
            throw DeviceRecordError.tooManyAttributes(record.attributes.count)
        }
        for (key, value) in record.attributes {
            guard key.utf8.count <= DeviceRecord.maxTextLength, value.utf8.count <= DeviceRecord.maxTextLength else {
                throw DeviceRecordError.textTooLong("attribute '\(key.prefix(32))'")
            }
        }
        guard record.transport.utf8.count <= DeviceRecord.maxTextLength else {
            throw DeviceRecordError.textTooLong("transport")
        }
        try vault.writeRecord(kind: Self.devices, name: record.name, bytes: record.encode())
    }

    /// The device named `name`, or nil.
    public func device(named name: String) throws -> DeviceRecord? {
        guard DeviceRecord.isValidName(name) else { throw DeviceRecordError.invalidName(name) }
        guard let bytes = try vault.readRecord(kind: Self.devices, name: name) else { return nil }
        return try DeviceRecord(name: name, decoding: bytes)
    }

    /// Every paired device, sorted by name.
    public func devices() throws -> [DeviceRecord] {
        try vault.listRecords(kind: Self.devices).compactMap { try device(named: $0) }
    }

    /// Deletes a device record; returns false if there was none.
    @discardableResult
    public func removeDevice(named name: String) throws -> Bool {
        guard DeviceRecord.isValidName(name) else { throw DeviceRecordError.invalidName(name) }
        return try vault.deleteRecord(kind: Self.devices, name: name)
    }
}
