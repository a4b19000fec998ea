import EdgeIdentity
import EdgeTestSupport
import EdgeVault
import EdgeWire
import Foundation
import SystemPackage
import Testing

@testable import EdgeIdentityStore

@Suite("Device records (devices/<name>)")
struct DeviceRecordTests {
    static let identifier = try! Identifier(bytes: [UInt8](repeating: 0xab, count: 32))

    static func record(_ name: String = "thermo-1") -> DeviceRecord {
        DeviceRecord(
            name: name, identifier: identifier, attributes: ["room": "lab", "kind": "thermometer"],
            transport: "serial:sensor1", linkSecurity: "high", pairedAt: 1_764_000_000)
    }

    @Test func roundTrips() throws {
        let original = Self.record()
        #expect(try DeviceRecord(name: "thermo-1", decoding: original.encode()) == original)
        var plain = original
        plain.linkSecurity = nil
        plain.attributes = [:]
        #expect(try DeviceRecord(name: "thermo-1", decoding: plain.encode()) == plain)
    }

    @Test func encodingIsCanonical() {
        // Attribute keys sorted; a fixed layout firmware tools can rely on.
        let bytes = Self.record().encode()
        #expect(Array(bytes.prefix(4)) == [0x86, 0x01, 0x58, 0x20])
        #expect(Self.record().encode() == bytes)
    }

    @Test func everyTruncationFailsWithATypedError() {
        let bytes = Self.record().encode()
        for n in 0..<bytes.count {
            #expect(throws: DeviceRecordError.self) { try DeviceRecord(name: "x", decoding: Array(bytes.prefix(n))) }
        }
        #expect(throws: DeviceRecordError.self) { try DeviceRecord(name: "x", decoding: bytes + [0x00]) }
    }

    @Test func rejectsOtherVersionsDuplicatesAndHugeCounts() {
        var bytes = Self.record().encode()
        bytes[1] = 0x02
        #expect(throws: DeviceRecordError.unsupportedVersion(2)) { try DeviceRecord(name: "x", decoding: bytes) }
        // A map claiming 2^32 attributes is refused before anything is allocated.
        var writer = CBORWriter()
        writer.writeArrayHeader(6)
        writer.writeUnsigned(1)
        writer.writeBytes(Self.identifier.bytes)
        writer.writeRaw([0xba, 0xff, 0xff, 0xff, 0xff])
        #expect(throws: DeviceRecordError.self) { try DeviceRecord(name: "x", decoding: writer.bytes) }
        // The same attribute twice.
        var dup = CBORWriter()
        dup.writeArrayHeader(6)
        dup.writeUnsigned(1)
        dup.writeBytes(Self.identifier.bytes)
        dup.writeMapHeader(2)
        for _ in 0..<2 {
            dup.writeText("k")
            dup.writeText("v")
        }
        dup.writeText("serial:x")
        dup.writeNull()
        dup.writeUnsigned(0)
        #expect(throws: DeviceRecordError.self) { try DeviceRecord(name: "x", decoding: dup.bytes) }
    }

    @Test(arguments: ["", ".hidden", "a/b", "sp ace", String(repeating: "x", count: 65), "naïve"])
    func rejectsBadNames(_ name: String) {
        #expect(!DeviceRecord.isValidName(name))
    }

    @Test func storedInTheVault() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("devices-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = IdentityStore(vault: try Vault.open(at: FilePath(directory + "/vault")))
        defer { store.vault.close() }
        #expect(try store.devices().isEmpty)
        try store.saveDevice(Self.record("b-dev"))
        try store.saveDevice(Self.record("a-dev"))
        #expect(try store.devices().map(\.name) == ["a-dev", "b-dev"])
        #expect(try store.device(named: "a-dev") == Self.record("a-dev"))
        #expect(try store.removeDevice(named: "a-dev"))
        #expect(try !store.removeDevice(named: "a-dev"))
        #expect(try store.device(named: "a-dev") == nil)
        var big = Self.record("c-dev")
        big.attributes = Dictionary(uniqueKeysWithValues: (0...DeviceRecord.maxAttributes).map { ("k\($0)", "v") })
        #expect(throws: DeviceRecordError.tooManyAttributes(DeviceRecord.maxAttributes + 1)) { try store.saveDevice(big) }
        #expect(throws: DeviceRecordError.invalidName("../x")) { try store.saveDevice(Self.record("../x")) }
    }
}
