// CRC-32C and COBS: the two primitives of the serial framing (docs/serial-framing.md §2–§3), over arrays; the
// byte-level steps are SerialFramingCore.swift's, which the device kit's firmware compiles too.

// MARK: - CRC-32C

/// CRC-32C (Castagnoli), as used by iSCSI, SCTP and ext4: reflected polynomial `0x82F63B78`
/// (normal form `0x1EDC6F41`), init `0xFFFFFFFF`, xorout `0xFFFFFFFF`, reflected input and output.
///
/// Check value: `CRC32C.checksum("123456789".utf8) == 0xE306_9283`.
public struct CRC32C: Sendable {
    /// The reflected polynomial.
    public static let polynomial: UInt32 = CRC32CCore.reflectedPolynomial
    /// The CRC of the ASCII bytes `123456789`.
    public static let checkValue: UInt32 = 0xE306_9283

    static let table: [UInt32] = (0..<256).map { CRC32CCore.tableEntry(UInt8($0)) }

    private var state: UInt32 = CRC32CCore.initial

    public init() {}

    /// Feeds one byte.
    @inline(__always)
    public mutating func update(_ byte: UInt8) {
        state = Self.table.withUnsafeBufferPointer { $0[Int((state ^ UInt32(byte)) & 0xff)] } ^ (state >> 8)
    }

    /// Feeds bytes.
    public mutating func update(_ bytes: some Sequence<UInt8>) {
        Self.table.withUnsafeBufferPointer { table in
            var crc = state
            for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xff)] ^ (crc >> 8) }
            state = crc
        }
    }

    /// The CRC of everything fed so far.
    public var value: UInt32 { CRC32CCore.finish(state) }

    /// The CRC of `bytes`.
    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc = CRC32C()
        crc.update(bytes)
        return crc.value
    }
}

// MARK: - COBS

/// Why a COBS block sequence is invalid.
public enum COBSError: Error, Hashable, Sendable {
    /// A code byte announced more bytes than the frame holds.
    case truncated
    /// A 0x00 byte appeared inside the encoded data (only the delimiter may be zero).
    case zeroInData
    /// The encoded frame was empty.
    case empty
}

/// Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999) with the standard 254-byte blocks.
///
/// Encoding never produces `0x00`, so `0x00` can delimit frames. Overhead is one byte per started block of
/// 254 bytes: `encoded ≤ n + n / 254 + 1`. A final full block (code `0xFF`) is not followed by an extra
/// `0x01` code byte (the paper's form); the decoder accepts both forms.
public enum COBS {
    /// The largest encoding of `count` bytes (without the delimiter).
    public static func maxEncodedLength(_ count: Int) -> Int { count + count / 254 + 1 }

    /// Encodes `input` and appends it to `output` (no delimiter).
    public static func encode(_ input: some Sequence<UInt8>, into output: inout [UInt8]) {
        var encoder = Encoder(output: output)
        output = []
        for byte in input { encoder.append(byte) }
        output = encoder.finish()
    }

    /// Encodes `input` (no delimiter).
    public static func encode(_ input: some Collection<UInt8>) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(maxEncodedLength(input.count))
        encode(input, into: &output)
        return output
    }

    /// Decodes one frame's blocks (without the delimiter) and appends the bytes to `output`.
    /// - Throws: ``COBSError`` for an empty input, a code byte that runs past the end, or a zero byte.
    public static func decode(_ input: ArraySlice<UInt8>, into output: inout [UInt8]) throws(COBSError) {
        guard !input.isEmpty else { throw .empty }
        var decoder = COBSStreamDecoder()
        for byte in input {
            guard byte != 0 else { throw .zeroInData }
            if case .byte(let decoded) = decoder.push(byte) { output.append(decoded) }
        }
        guard decoder.isCompleteFrame else { throw .truncated }
    }

    /// Decodes one frame's blocks (without the delimiter).
    public static func decode(_ input: [UInt8]) throws(COBSError) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(input.count)
        try decode(input[...], into: &output)
        return output
    }

    /// A streaming encoder: feed bytes one at a time, then ``finish()``. Used to encode a frame's type,
    /// body and CRC without concatenating them first.
    public struct Encoder: Sendable {
        private var output: [UInt8]
        private var codeIndex: Int?
        private var code: UInt8 = 1

        /// Starts encoding after the bytes already in `output`.
        public init(output: [UInt8] = []) {
            self.output = output
            codeIndex = self.output.count
            self.output.append(0)
        }

        public mutating func reserveCapacity(_ count: Int) { output.reserveCapacity(output.count + count) }

        @inline(__always)
        public mutating func append(_ byte: UInt8) {
            if codeIndex == nil {
                codeIndex = output.count
                output.append(0)
                code = 1
            }
            if byte == 0 {
                output[codeIndex!] = code
                codeIndex = output.count
                output.append(0)
                code = 1
            } else {
                output.append(byte)
                code += 1
                if code == 0xFF {
                    output[codeIndex!] = code
                    codeIndex = nil  // the next byte, if any, opens a new block
                }
            }
        }

        public mutating func append(_ bytes: some Sequence<UInt8>) {
            for byte in bytes { append(byte) }
        }

        /// Closes the last block and returns everything written.
        public mutating func finish() -> [UInt8] {
            if let codeIndex { output[codeIndex] = code }
            codeIndex = nil
            defer { output = [] }
            return output
        }
    }
}
