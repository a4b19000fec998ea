// Fuzz target for the paired-device records kept in the vault (`devices/<name>`, docs/pairing.md).
import EdgeIdentityStore

extension FuzzTargets {
    /// A record that decodes stays within its bounds, round-trips to an equal record, and its encoding is a fixed
    /// point (attribute keys are written sorted).
    static func deviceRecord(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        guard let record = try? DeviceRecord(name: "fuzz", decoding: input) else { return }
        try check(record.attributes.count <= DeviceRecord.maxAttributes, "more attributes than the limit accepted")
        try check(record.transport.utf8.count <= DeviceRecord.maxTextLength, "transport longer than the limit accepted")
        let encoded = record.encode()
        guard let again = try? DeviceRecord(name: "fuzz", decoding: encoded) else {
            throw FuzzInvariantViolation(description: "re-encoded device record does not decode")
        }
        try check(again == record, "device record round trip changed the record")
        try check(again.encode() == encoded, "device record encoding is not a fixed point")
    }
}
