// EdgeQueue/QueueRecord: the pure on-disk formats — records, the `head`/`next` state files, segment names, CRC-32C.
//
// Everything here is synchronous and does no I/O (docs/store-and-forward.md §4 has the byte layouts).

// MARK: - CRC-32C

/// CRC-32C (Castagnoli): reflected polynomial `0x82F63B78`, init and xorout `0xFFFFFFFF`.
/// Check value: `CRC32C.checksum("123456789".utf8) == 0xE306_9283`.
///
/// A private copy of the table-driven CRC in EdgeTransportSerial, so the queue does not depend on a transport.
struct CRC32C {
    static let polynomial: UInt32 = 0x82F6_3B78
    static let checkValue: UInt32 = 0xE306_9283

    static let table: [UInt32] = (0..<256).map { index -> UInt32 in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ polynomial : crc >> 1 }
        return crc
    }

    private var state: UInt32 = 0xFFFF_FFFF

    init() {}

    mutating func update(_ bytes: some Sequence<UInt8>) {
        Self.table.withUnsafeBufferPointer { table in
            var crc = state
            for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xff)] ^ (crc >> 8) }
            state = crc
        }
    }

    var value: UInt32 { state ^ 0xFFFF_FFFF }

    static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc = CRC32C()
        crc.update(bytes)
        return crc.value
    }
}

// MARK: - Little-endian helpers

extension Array where Element == UInt8 {
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        for index in 0..<(T.bitWidth / 8) { append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
    }
}

/// Reads a little-endian integer at `offset` (the caller has checked the bounds).
@inline(__always)
func readLittleEndian<T: FixedWidthInteger>(_ bytes: ArraySlice<UInt8>, at offset: Int, as: T.Type) -> T {
    var value: T = 0
    for index in 0..<(T.bitWidth / 8) { value |= T(bytes[offset + index]) << (8 * index) }
    return value
}

// MARK: - Records

/// One queued message: its sequence number and its bytes.
public struct QueuedRecord: Hashable, Sendable {
    /// The record's sequence number: unique and strictly increasing for the lifetime of the queue directory.
    public let sequence: UInt64
    /// The message, exactly as appended.
    public let bytes: [UInt8]

    public init(sequence: UInt64, bytes: [UInt8]) {
        self.sequence = sequence
        self.bytes = bytes
    }
}

/// The record codec (pure). All integers are little-endian:
///
/// ```
/// offset  size  field
///      0     1  magic/version 0x51 ('Q', format 1)
///      1     8  sequence (u64)
///      9     4  payload length n (u32), at most the queue's maxRecordBytes
///     13     n  payload
///   13+n     4  CRC-32C (u32) over bytes 0 ..< 13+n (header and payload)
/// ```
public enum QueueRecord {
    /// The magic/version byte of format 1.
    public static let magic: UInt8 = 0x51
    /// Bytes before the payload.
    public static let headerByteCount = 13
    /// Bytes after the payload (the CRC).
    public static let trailerByteCount = 4
    /// Header plus trailer: a record takes `payload.count + overheadByteCount` bytes.
    public static let overheadByteCount = headerByteCount + trailerByteCount
    /// The largest payload length the format can express.
    public static let formatMaximumPayload = Int(UInt32.max)

    /// Why bytes are not a record.
    public enum Defect: Hashable, Sendable, CustomStringConvertible {
        /// The first byte is not ``QueueRecord/magic``.
        case badMagic(UInt8)
        /// The length field exceeds the limit.
        case lengthOverLimit(length: UInt64, limit: Int)
        /// The CRC does not match.
        case checksumMismatch(stored: UInt32, computed: UInt32)

        public var description: String {
            switch self {
            case .badMagic(let byte): "bad magic/version byte 0x\(String(byte, radix: 16))"
            case .lengthOverLimit(let length, let limit): "length \(length) over the \(limit)-byte limit"
            case .checksumMismatch(let stored, let computed):
                "CRC-32C mismatch (stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16)))"
            }
        }
    }

    /// The result of decoding the start of a byte slice.
    public enum Decoded: Hashable, Sendable {
        /// A valid record that took `byteCount` bytes.
        case record(QueuedRecord, byteCount: Int)
        /// The slice ends inside a record (whose header, if complete, passed the checks): `needed` bytes in all.
        case incomplete(needed: Int)
        /// The bytes cannot start a valid record.
        case invalid(Defect)
    }

    /// The encoded size of a record with `payloadCount` bytes.
    public static func encodedByteCount(payloadCount: Int) -> Int { payloadCount + overheadByteCount }

    /// Appends the encoding of one record to `output`.
    public static func encode(sequence: UInt64, payload: [UInt8], into output: inout [UInt8]) {
        precondition(payload.count <= formatMaximumPayload, "EdgeQueue: payload too large for the record format")
        let start = output.count
        output.reserveCapacity(start + encodedByteCount(payloadCount: payload.count))
        output.append(magic)
        output.appendLittleEndian(sequence)
        output.appendLittleEndian(UInt32(payload.count))
        output.append(contentsOf: payload)
        let crc = CRC32C.checksum(output[start...])
        output.appendLittleEndian(crc)
    }

    /// The encoding of one record.
    public static func encode(sequence: UInt64, payload: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        encode(sequence: sequence, payload: payload, into: &output)
        return output
    }

    /// Decodes the record at the start of `bytes`. Never reads or allocates more than `maxRecordBytes` of payload:
    /// the length is checked against the limit before anything else is looked at.
    public static func decode(_ bytes: ArraySlice<UInt8>, maxRecordBytes: Int) -> Decoded {
        guard let first = bytes.first else { return .incomplete(needed: headerByteCount) }
        guard first == magic else { return .invalid(.badMagic(first)) }
        guard bytes.count >= headerByteCount else { return .incomplete(needed: headerByteCount) }
        let base = bytes.startIndex
        let length = readLittleEndian(bytes, at: base + 9, as: UInt32.self)
        guard UInt64(length) <= UInt64(max(0, maxRecordBytes)) else {
            return .invalid(.lengthOverLimit(length: UInt64(length), limit: maxRecordBytes))
        }
        let total = encodedByteCount(payloadCount: Int(length))
        guard bytes.count >= total else { return .incomplete(needed: total) }
        let stored = readLittleEndian(bytes, at: base + total - trailerByteCount, as: UInt32.self)
        let computed = CRC32C.checksum(bytes[base..<(base + total - trailerByteCount)])
        guard stored == computed else { return .invalid(.checksumMismatch(stored: stored, computed: computed)) }
        let sequence = readLittleEndian(bytes, at: base + 1, as: UInt64.self)
        let payload = Array(bytes[(base + headerByteCount)..<(base + headerByteCount + Int(length))])
        return .record(QueuedRecord(sequence: sequence, bytes: payload), byteCount: total)
    }
}

// MARK: - State files

/// The `head` and `next` files: 16 bytes each, replaced atomically.
///
/// ```
/// offset  size  field
///      0     4  magic: "EQhd" (head) or "EQnx" (next)
///      4     8  value (u64, little-endian)
///     12     4  CRC-32C (u32, little-endian) over bytes 0 ..< 12
/// ```
enum StateFile: String, CaseIterable {
    /// The first unacknowledged sequence number (persisted lazily: it may lag behind).
    case head
    /// The reserved upper bound: no sequence number ≥ it has been handed out.
    case next

    static let byteCount = 16

    var fileName: String { rawValue }
    var temporaryName: String { ".tmp-" + rawValue }

    var magic: [UInt8] {
        switch self {
        case .head: Array("EQhd".utf8)
        case .next: Array("EQnx".utf8)
        }
    }

    func encode(_ value: UInt64) -> [UInt8] {
        var bytes = magic
        bytes.appendLittleEndian(value)
        bytes.appendLittleEndian(CRC32C.checksum(bytes))
        return bytes
    }

    func decode(_ bytes: [UInt8]) -> UInt64? {
        guard bytes.count == Self.byteCount, Array(bytes[0..<4]) == magic else { return nil }
        let slice = bytes[...]
        guard readLittleEndian(slice, at: 12, as: UInt32.self) == CRC32C.checksum(bytes[0..<12]) else { return nil }
        return readLittleEndian(slice, at: 4, as: UInt64.self)
    }
}

// MARK: - Segment names

/// Segment files are named `seg-<20-digit zero-padded decimal first sequence>.q`.
enum SegmentName {
    static let prefix = "seg-"
    static let suffix = ".q"

    static func format(_ sequence: UInt64) -> String {
        let digits = String(sequence)
        return prefix + String(repeating: "0", count: 20 - digits.count) + digits + suffix
    }

    /// The first sequence a segment name carries, or `nil` for any other name (those files are ignored).
    static func parse(_ name: String) -> UInt64? {
        let utf8 = Array(name.utf8)
        guard utf8.count == 26, name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        let digits = utf8[4..<24]
        guard digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return UInt64(String(decoding: digits, as: UTF8.self))
    }
}
