// EdgeWire: the byte-level codecs Ockam uses on the wire (a CBOR subset, BARE/ULEB128, hex), pure and bounded.

/// Errors from the wire decoders. Every malformed input maps to one of these; decoders never trap.
public enum WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The input ended before the value was complete.
    case truncated
    /// A value of another CBOR major type (or simple value) was found.
    case unexpectedType(expected: String, found: UInt8)
    /// CBOR indefinite-length items, tags, floats and reserved encodings are not accepted.
    case unsupported(String)
    /// An integer does not fit the target type or the allowed range.
    case integerOverflow
    /// A length or count exceeds its limit (or the bytes that remain).
    case limitExceeded(what: String, limit: Int)
    /// Nesting deeper than the decoder allows.
    case tooDeep
    /// Text was not valid UTF-8.
    case invalidUTF8
    /// Bytes were left over after a complete top-level value.
    case trailingBytes(Int)
    /// A ULEB128 integer was longer than 10 bytes or its 10th byte was not 0x01.
    case invalidVarint

    public var description: String {
        switch self {
        case .truncated: return "input truncated"
        case .unexpectedType(let expected, let found):
            return "expected \(expected), found initial byte 0x\(Hex.byte(found))"
        case .unsupported(let what): return "unsupported encoding: \(what)"
        case .integerOverflow: return "integer out of range"
        case .limitExceeded(let what, let limit): return "\(what) exceeds limit of \(limit)"
        case .tooDeep: return "nesting too deep"
        case .invalidUTF8: return "text is not valid UTF-8"
        case .trailingBytes(let n): return "\(n) unexpected trailing bytes"
        case .invalidVarint: return "malformed ULEB128 integer"
        }
    }
}

// MARK: - Writer

/// Appends CBOR items (RFC 8949, definite lengths, shortest integer forms — what minicbor emits).
public struct CBORWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inline(__always)
    private mutating func writeHead(major: UInt8, _ value: UInt64) {
        CBORHeadCore.encode(major: major, value) { bytes.append($0) }
    }

    public mutating func writeUnsigned(_ value: UInt64) { writeHead(major: 0, value) }

    public mutating func writeInteger(_ value: Int64) {
        if value >= 0 {
            writeHead(major: 0, UInt64(value))
        } else {
            writeHead(major: 1, UInt64(-(value + 1)))
        }
    }

    public mutating func writeBytes<C: Collection>(_ value: C) where C.Element == UInt8 {
        writeHead(major: 2, UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func writeText(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            writeHead(major: 3, UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    public mutating func writeArrayHeader(_ count: Int) { writeHead(major: 4, UInt64(count)) }
    public mutating func writeMapHeader(_ count: Int) { writeHead(major: 5, UInt64(count)) }
    public mutating func writeBool(_ value: Bool) { bytes.append(value ? 0xf5 : 0xf4) }
    public mutating func writeNull() { bytes.append(0xf6) }

    /// Appends bytes that are already a complete CBOR item (e.g. preserved original encodings).
    public mutating func writeRaw<C: Collection>(_ raw: C) where C.Element == UInt8 { bytes.append(contentsOf: raw) }
}

// MARK: - Reader

/// The major type (and for simple values, the kind) of the next CBOR item.
public enum CBORType: Equatable, Sendable {
    case unsigned, negative, bytes, text, array, map, tag, bool, null, undefined, float, other
}

/// Reads CBOR items from a byte slice with bounds checks on every length.
///
/// ### Invariants
/// - No read ever traps: lengths are checked against the remaining input before any allocation.
/// - Array and map counts are checked against the bytes that remain (each item needs at least one byte),
///   so a hostile count cannot make a caller reserve unbounded memory.
/// - Nesting while skipping is limited by ``maxDepth``.
/// - After a read throws, the position is unspecified (a type mismatch leaves it unchanged; other errors may have
///   consumed the item's head). A caller that wants to try another reading must work on a copy of the reader.
public struct CBORReader: Sendable {
    public let input: ArraySlice<UInt8>
    public private(set) var position: Int
    public var maxDepth: Int = 32

    public init(_ input: ArraySlice<UInt8>) {
        self.input = input
        self.position = input.startIndex
    }

    public init(_ input: [UInt8]) { self.init(input[...]) }

    public var isAtEnd: Bool { position >= input.endIndex }
    public var remaining: Int { input.endIndex - position }

    /// Throws unless every byte has been consumed.
    public func expectEnd() throws(WireError) {
        if remaining > 0 { throw .trailingBytes(remaining) }
    }

    public func peekType() throws(WireError) -> CBORType {
        guard position < input.endIndex else { throw .truncated }
        let initial = input[position]
        switch initial >> 5 {
        case 0: return .unsigned
        case 1: return .negative
        case 2: return .bytes
        case 3: return .text
        case 4: return .array
        case 5: return .map
        case 6: return .tag
        default:
            switch initial {
            case 0xf4, 0xf5: return .bool
            case 0xf6: return .null
            case 0xf7: return .undefined
            case 0xf9, 0xfa, 0xfb: return .float
            default: return .other
            }
        }
    }

    private static func typeName(_ major: UInt8) -> String {
        ["unsigned integer", "negative integer", "byte string", "text string", "array", "map", "tag", "simple value"][
            Int(major)]
    }

    /// Reads an item head, returning (major type, argument). Rejects indefinite lengths and reserved values.
    private mutating func readHead() throws(WireError) -> (major: UInt8, argument: UInt64) {
        switch CBORHeadCore.decode(input, at: position) {
        case .head(let major, let argument, let length):
            position += length
            return (major, argument)
        case .truncated: throw .truncated
        case .indefiniteLength: throw .unsupported("indefinite length")
        case .reserved(let info): throw .unsupported("reserved additional information \(info)")
        }
    }

    private mutating func expectHead(major expected: UInt8) throws(WireError) -> UInt64 {
        let start = position
        let (major, argument) = try readHead()
        guard major == expected else {
            position = start
            throw .unexpectedType(expected: Self.typeName(expected), found: input[start])
        }
        return argument
    }

    public mutating func readUnsigned() throws(WireError) -> UInt64 {
        try expectHead(major: 0)
    }

    /// Reads a negative integer (major type 1) that fits an `Int64`.
    public mutating func readNegative() throws(WireError) -> Int64 {
        let argument = try expectHead(major: 1)
        guard argument <= UInt64(Int64.max) else { throw .integerOverflow }
        return -1 - Int64(argument)
    }

    public mutating func readUnsigned<T: FixedWidthInteger & UnsignedInteger>(as: T.Type) throws(WireError) -> T {
        let value = try readUnsigned()
        guard let narrowed = T(exactly: value) else { throw .integerOverflow }
        return narrowed
    }

    private mutating func readLength(major: UInt8, limit: Int, what: String) throws(WireError) -> Int {
        let argument = try expectHead(major: major)
        guard limit >= 0, argument <= UInt64(limit) else { throw .limitExceeded(what: what, limit: limit) }
        let length = Int(argument)
        return length
    }

    /// Reads a byte string (a slice of the input, no copy), at most `limit` bytes long.
    public mutating func readBytes(limit: Int = Int(UInt32.max)) throws(WireError) -> ArraySlice<UInt8> {
        let length = try readLength(major: 2, limit: limit, what: "byte string")
        guard remaining >= length else { throw .truncated }
        defer { position += length }
        return input[position..<position + length]
    }

    /// Reads a UTF-8 text string of at most `limit` bytes.
    public mutating func readText(limit: Int = 1 << 20) throws(WireError) -> String {
        let length = try readLength(major: 3, limit: limit, what: "text string")
        guard remaining >= length else { throw .truncated }
        let slice = input[position..<position + length]
        position += length
        guard let text = String(validating: slice, as: UTF8.self) else { throw .invalidUTF8 }
        return text
    }

    /// Reads a definite array header; the count is bounded by `limit` and by the remaining input.
    public mutating func readArrayHeader(limit: Int = 1 << 16) throws(WireError) -> Int {
        let count = try readLength(major: 4, limit: limit, what: "array length")
        guard count <= remaining else { throw .truncated }
        return count
    }

    /// Reads a definite map header; the count is bounded by `limit` and by the remaining input.
    public mutating func readMapHeader(limit: Int = 1 << 16) throws(WireError) -> Int {
        let count = try readLength(major: 5, limit: limit, what: "map length")
        guard count <= remaining / 2 else { throw .truncated }
        return count
    }

    public mutating func readBool() throws(WireError) -> Bool {
        guard position < input.endIndex else { throw .truncated }
        switch input[position] {
        case 0xf4: position += 1; return false
        case 0xf5: position += 1; return true
        default: throw .unexpectedType(expected: "bool", found: input[position])
        }
    }

    /// Consumes a `null` if one is next and reports whether it did.
    public mutating func readNullIfPresent() -> Bool {
        if position < input.endIndex, input[position] == 0xf6 {
            position += 1
            return true
        }
        return false
    }

    /// Skips one complete item of any supported type, returning the raw bytes it occupied.
    @discardableResult
    public mutating func skipValue() throws(WireError) -> ArraySlice<UInt8> {
        let start = position
        try skip(depth: 0)
        return input[start..<position]
    }

    private mutating func skip(depth: Int) throws(WireError) {
        guard depth < maxDepth else { throw .tooDeep }
        guard position < input.endIndex else { throw .truncated }
        let initial = input[position]
        if initial >> 5 == 7 {
            switch initial {
            case 0xf4, 0xf5, 0xf6, 0xf7: position += 1; return
            default: throw .unsupported("simple/float value 0x\(Hex.byte(initial))")
            }
        }
        let (major, argument) = try readHead()
        switch major {
        case 0, 1: return
        case 2, 3:
            guard argument <= UInt64(remaining) else { throw .truncated }
            position += Int(argument)
        case 4:
            guard argument <= UInt64(remaining) else { throw .truncated }
            for _ in 0..<Int(argument) { try skip(depth: depth + 1) }
        case 5:
            guard argument <= UInt64(remaining / 2) else { throw .truncated }
            for _ in 0..<(Int(argument) * 2) { try skip(depth: depth + 1) }
        default:
            throw .unsupported("tag")
        }
    }

    /// Skips `count` items (used to ignore extra trailing elements of a struct-array, as minicbor does).
    public mutating func skipValues(_ count: Int) throws(WireError) {
        for _ in 0..<count { try skipValue() }
    }
}
