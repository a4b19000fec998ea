// Allocation-free primitives of the serial framing (docs/serial-framing.md §2–§5), compiled verbatim by the gateway
// (this module) and by the device kit's Embedded Swift firmware (device/): no Foundation, no arrays, no existentials,
// no traps on any input.

/// Numbers of the framing that both ends must agree on (docs/serial-framing.md §4–§5.1).
public enum SerialWire {
    /// The framing version this implementation speaks.
    public static let version: UInt8 = 1
    /// Bytes a frame adds around its body before COBS: one type byte and four CRC bytes.
    public static let overhead = 5
    /// The smallest maximum frame size a peer may announce (so every hello fits).
    public static let minimumMaxFrameSize = 64
    /// Length of a version 1 hello body; longer bodies are accepted and the extra bytes ignored.
    public static let helloBodyLength = 18
    /// The frame delimiter.
    public static let delimiter: UInt8 = 0x00

    /// Type byte of HELLO.
    public static let helloType: UInt8 = 0x01
    /// Type byte of HELLO_ACK.
    public static let helloAckType: UInt8 = 0x02
    /// Type byte of DATA.
    public static let dataType: UInt8 = 0x03
    /// Type byte of KEEPALIVE.
    public static let keepaliveType: UInt8 = 0x04

    /// Whether hello fields make a usable hello (§5.1): version ≥ 1, non-zero nonce, `max_frame` ≥ 64.
    public static func isAcceptableHello(version: UInt8, nonce: UInt32, maxFrameSize: UInt32) -> Bool {
        version >= 1 && nonce != 0 && maxFrameSize >= UInt32(minimumMaxFrameSize)
    }

    /// Reads a little-endian `UInt32` at `offset`; the caller guarantees `offset + 4 ≤ bytes.count`.
    @inline(__always)
    public static func loadUInt32LE(_ bytes: UnsafeBufferPointer<UInt8>, at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
            | UInt32(bytes[offset + 3]) << 24
    }
}

/// CRC-32C (Castagnoli) one byte at a time, bitwise: no table, so no RAM on a microcontroller. The gateway builds
/// its 256-entry table from ``tableEntry(_:)``; both therefore compute the same function by construction.
public enum CRC32CCore {
    /// The reflected polynomial (normal form `0x1EDC6F41`).
    public static let reflectedPolynomial: UInt32 = 0x82F6_3B78
    /// The register before the first byte.
    public static let initial: UInt32 = 0xFFFF_FFFF

    /// Feeds one byte into the register `crc`.
    @inline(__always)
    public static func update(_ crc: UInt32, byte: UInt8) -> UInt32 {
        var crc = crc ^ UInt32(byte)
        for _ in 0..<8 { crc = (crc >> 1) ^ (reflectedPolynomial & (0 &- (crc & 1))) }
        return crc
    }

    /// The final CRC value of register `crc`.
    @inline(__always)
    public static func finish(_ crc: UInt32) -> UInt32 { crc ^ 0xFFFF_FFFF }

    /// Entry `index` of the byte-wise lookup table.
    public static func tableEntry(_ index: UInt8) -> UInt32 { update(0, byte: index) }
}

/// A COBS decoder fed one non-delimiter byte at a time (docs/serial-framing.md §3), so a receiver can decode
/// straight into its frame buffer as bytes arrive. The caller handles `0x00` (the delimiter): it ends the frame,
/// and ``isCompleteFrame`` then says whether the blocks were whole.
public struct COBSStreamDecoder: Sendable {
    /// What one encoded byte produced.
    public enum Output: Equatable, Sendable {
        /// A code byte that implies no output yet.
        case none
        /// One decoded byte (the implied zero of the previous block, or a data byte).
        case byte(UInt8)
    }

    private var remaining: UInt8 = 0
    private var zeroPending = false
    private var started = false

    public init() {}

    /// Feeds one encoded byte, which must not be `0x00`.
    @inline(__always)
    public mutating func push(_ byte: UInt8) -> Output {
        if remaining == 0 {
            // A code byte: the previous block (unless it was a full 0xFF block) implied a zero before this one.
            let emitZero = zeroPending
            remaining = byte &- 1
            zeroPending = byte != 0xFF
            started = true
            return emitZero ? .byte(0) : .none
        }
        remaining -= 1
        return .byte(byte)
    }

    /// True if at least one block arrived and the last one is complete (no code byte ran past the end).
    public var isCompleteFrame: Bool { started && remaining == 0 }

    /// True if no byte arrived since the last reset (two delimiters in a row: not a frame).
    public var isEmpty: Bool { !started }

    /// Starts a new frame.
    public mutating func reset() { self = COBSStreamDecoder() }
}

/// A COBS encoder writing into a caller's buffer (no allocation): the code byte of each block is written once the
/// block ends. Output is byte for byte what `COBS.Encoder` produces (no extra `0x01` after a final `0xFF` block).
public struct COBSBufferEncoder {
    private let output: UnsafeMutableBufferPointer<UInt8>
    private var position: Int
    private var codeIndex: Int
    private var code: UInt8 = 1
    private var blockOpen = true
    /// True once a byte did not fit; ``finish()`` then returns nil.
    public private(set) var overflowed = false

    /// Starts encoding at `start` in `output`.
    public init(output: UnsafeMutableBufferPointer<UInt8>, start: Int) {
        self.output = output
        codeIndex = start
        position = start + 1
        overflowed = start >= output.count
    }

    @inline(__always)
    private mutating func put(_ byte: UInt8) {
        guard position < output.count else {
            overflowed = true
            return
        }
        output[position] = byte
        position += 1
    }

    /// Reserves the code byte of a new block; false (and ``overflowed``) when it does not fit.
    @inline(__always)
    private mutating func openBlock() -> Bool {
        guard position < output.count else {
            overflowed = true
            return false
        }
        codeIndex = position
        position += 1
        code = 1
        blockOpen = true
        return true
    }

    /// Appends one frame byte.
    public mutating func append(_ byte: UInt8) {
        if overflowed { return }
        if !blockOpen && !openBlock() { return }
        if byte == 0 {
            output[codeIndex] = code
            _ = openBlock()
        } else {
            put(byte)
            code += 1
            if code == 0xFF {
                output[codeIndex] = code
                blockOpen = false
            }
        }
    }

    /// Closes the last block; returns the index just past the encoded bytes, or nil if they did not fit.
    public mutating func finish() -> Int? {
        if overflowed { return nil }
        if blockOpen { output[codeIndex] = code }
        blockOpen = false
        return position
    }
}
