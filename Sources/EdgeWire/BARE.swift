// BARE helpers as Ockam uses them: ULEB128 integers and length-prefixed byte/text strings.

/// ULEB128 and length-prefixed values (`ockam_core::bare`, serde_bare 0.5).
///
/// ### Invariants
/// - A varint is at most 10 bytes; a 10th byte must be exactly `0x01` (Ockam's rule), so every
///   accepted encoding fits in a `UInt64` and decoding never overflows.
/// - Lengths are checked against the remaining input and an explicit limit before slicing.
public enum BARE {
    /// The longest ULEB128 encoding of a `UInt64`.
    public static let maxVarintLength = 10

    public static func writeVarint(_ value: UInt64, into out: inout [UInt8]) {
        var value = value
        repeat {
            var byte = UInt8(value & 0x7f)
            value >>= 7
            if value != 0 { byte |= 0x80 }
            out.append(byte)
        } while value != 0
    }

    public static func varint(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        writeVarint(value, into: &out)
        return out
    }

    /// Reads a ULEB128 integer at `position`, advancing it.
    public static func readVarint(_ input: ArraySlice<UInt8>, at position: inout Int) throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var index = position
        for byteNumber in 0..<maxVarintLength {
            guard index < input.endIndex else { throw .truncated }
            let byte = input[index]
            index += 1
            if byteNumber == maxVarintLength - 1 {
                // 10th byte: only bit 63 remains; Ockam requires exactly 0x01 here.
                guard byte == 0x01 else { throw .invalidVarint }
                result |= UInt64(1) << 63
                position = index
                return result
            }
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 {
                position = index
                return result
            }
            shift += 7
        }
        throw .invalidVarint
    }

    /// Appends a ULEB128 length and the bytes.
    public static func writeBytes<C: Collection>(_ bytes: C, into out: inout [UInt8]) where C.Element == UInt8 {
        writeVarint(UInt64(bytes.count), into: &out)
        out.append(contentsOf: bytes)
    }

    /// Appends a serde_bare `String` (ULEB128 length + UTF-8).
    public static func writeString(_ string: String, into out: inout [UInt8]) {
        writeBytes(Array(string.utf8), into: &out)
    }

    /// Encodes a serde_bare `String` message, e.g. `"hello"` → `05 68 65 6c 6c 6f`.
    public static func encodeString(_ string: String) -> [UInt8] {
        var out: [UInt8] = []
        writeString(string, into: &out)
        return out
    }

    /// Reads ULEB128-length-prefixed bytes of at most `limit` bytes.
    public static func readBytes(
        _ input: ArraySlice<UInt8>, at position: inout Int, limit: Int
    ) throws(WireError) -> ArraySlice<UInt8> {
        var index = position
        let length = try readVarint(input, at: &index)
        guard length <= UInt64(limit) else { throw .limitExceeded(what: "BARE length", limit: limit) }
        guard length <= UInt64(input.endIndex - index) else { throw .truncated }
        let end = index + Int(length)
        position = end
        return input[index..<end]
    }

    /// Reads a serde_bare `String` of at most `limit` bytes.
    public static func readString(
        _ input: ArraySlice<UInt8>, at position: inout Int, limit: Int
    ) throws(WireError) -> String {
        var index = position
        let bytes = try readBytes(input, at: &index, limit: limit)
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .invalidUTF8 }
        position = index
        return text
    }

    /// Decodes a complete serde_bare `String` message (no trailing bytes allowed).
    public static func decodeString<C: Collection>(_ message: C, limit: Int = 1 << 20) throws(WireError) -> String
    where C.Element == UInt8 {
        let input = ArraySlice(message)
        var position = input.startIndex
        let text = try readString(input, at: &position, limit: limit)
        if position != input.endIndex { throw .trailingBytes(input.endIndex - position) }
        return text
    }
}
