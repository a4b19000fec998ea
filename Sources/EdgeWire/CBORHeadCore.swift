// The CBOR item head (RFC 8949 §3: initial byte and argument), allocation-free. Compiled verbatim by EdgeWire's
// reader and writer and by the device kit's Embedded Swift firmware (device/): no Foundation, no arrays, no
// existentials, no variable 64-bit shifts (they need a compiler-rt helper on 32-bit microcontrollers).

/// Decoding and encoding of one CBOR item head: major type and argument, definite lengths only.
public enum CBORHeadCore {
    /// What the bytes at a position hold.
    public enum Decoded: Equatable, Sendable {
        /// A head: major type (0–7), its argument, and how many bytes the head takes (1, 2, 3, 5 or 9).
        case head(major: UInt8, argument: UInt64, length: Int)
        /// The input ends inside the head.
        case truncated
        /// Additional information 31: an indefinite length or a break (not accepted).
        case indefiniteLength
        /// Additional information 28–30 (reserved).
        case reserved(info: UInt8)
    }

    /// Decodes the head at `start` of `bytes`.
    @inline(__always)
    public static func decode<Bytes: Collection>(_ bytes: Bytes, at start: Int) -> Decoded
    where Bytes.Element == UInt8, Bytes.Index == Int {
        guard start >= bytes.startIndex, start < bytes.endIndex else { return .truncated }
        let initial = bytes[start]
        let major = initial >> 5
        let info = initial & 0x1f
        let width: Int
        switch info {
        case 0..<24: return .head(major: major, argument: UInt64(info), length: 1)
        case 24: width = 1
        case 25: width = 2
        case 26: width = 4
        case 27: width = 8
        case 31: return .indefiniteLength
        default: return .reserved(info: info)
        }
        guard bytes.endIndex - start >= 1 + width else { return .truncated }
        var value: UInt64 = 0
        for offset in 1...width { value = (value << 8) | UInt64(bytes[start + offset]) }
        return .head(major: major, argument: value, length: 1 + width)
    }

    /// Emits the shortest head for `major` and `value` (what minicbor writes), one byte at a time.
    @inline(__always)
    public static func encode(major: UInt8, _ value: UInt64, _ emit: (UInt8) -> Void) {
        let m = major << 5
        switch value {
        case 0..<24:
            emit(m | UInt8(value))
        case 24...0xff:
            emit(m | 24)
            emit(UInt8(value))
        case 0x100...0xffff:
            emit(m | 25)
            emit(UInt8(truncatingIfNeeded: value >> 8))
            emit(UInt8(truncatingIfNeeded: value))
        case 0x1_0000...0xffff_ffff:
            emit(m | 26)
            emitBigEndian(UInt32(truncatingIfNeeded: value), emit)
        default:
            emit(m | 27)
            emitBigEndian(UInt32(truncatingIfNeeded: value >> 32), emit)
            emitBigEndian(UInt32(truncatingIfNeeded: value), emit)
        }
    }

    @inline(__always)
    private static func emitBigEndian(_ value: UInt32, _ emit: (UInt8) -> Void) {
        emit(UInt8(truncatingIfNeeded: value >> 24))
        emit(UInt8(truncatingIfNeeded: value >> 16))
        emit(UInt8(truncatingIfNeeded: value >> 8))
        emit(UInt8(truncatingIfNeeded: value))
    }
}
