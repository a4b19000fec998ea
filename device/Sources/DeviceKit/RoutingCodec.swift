// Ockam routing messages on fixed buffers (docs/routing.md "Addresses, routes, messages"): CBOR
// `array(3) [onward route, return route, payload bytes]`, each address `array(2) [transport type, bytes]`.
//
// Item heads are EdgeWire's own CBORHeadCore.swift (linked here). The rest is not EdgeWire's CBORReader/CBORWriter
// nor EdgeRouting's RoutingMessage: those build `[UInt8]` arrays and `Route` values (heap allocation per message),
// which a device's steady-state path must not do, and use untyped strings in their errors. This is the
// allocation-free subset a device needs — write one message, read one reply as ranges of the receive buffer — with
// the same limits (routes ≤ 64 addresses, addresses ≤ 1024 bytes) and the same refusals (indefinite lengths, tags,
// floats, truncation).

/// Writes bytes into a caller's buffer; remembers an overflow instead of trapping.
public struct ByteWriter {
    public let buffer: UnsafeMutableBufferPointer<UInt8>
    public private(set) var count = 0
    public private(set) var overflowed = false

    public init(_ buffer: UnsafeMutableBufferPointer<UInt8>) { self.buffer = buffer }

    @inline(__always)
    public mutating func write(_ byte: UInt8) {
        guard count < buffer.count else {
            overflowed = true
            return
        }
        buffer[count] = byte
        count += 1
    }

    public mutating func write(_ bytes: UnsafeBufferPointer<UInt8>) {
        for byte in bytes { write(byte) }
    }

    public mutating func write(_ text: StaticString) {
        text.withUTF8Buffer { write($0) }
    }
}

/// A local address (`0#<value>`) or any other, as a range of the buffer it was read from.
public struct AddressView: Equatable, Sendable {
    public var transportType: UInt64
    public var start: Int
    public var count: Int
}

/// What a device learns from a received routing message: its first onward address and its payload.
public struct RoutingMessageView: Equatable, Sendable {
    /// The first onward address (the device's local service or reply address), nil for a heartbeat.
    public var destination: AddressView?
    /// Where the payload bytes are in the buffer.
    public var payloadStart: Int
    public var payloadCount: Int
}

/// Encoding and decoding of routing messages for a device.
public enum RoutingCodec {
    /// The decoder's limits (docs/routing.md "Limits on decoded input").
    public static let maxRouteLength = 64
    public static let maxAddressLength = 1024

    /// Writes a CBOR head (major type, argument) in its shortest form.
    public static func writeHead(major: UInt8, _ value: UInt64, into writer: inout ByteWriter) {
        CBORHeadCore.encode(major: major, value) { writer.write($0) }
    }

    /// Writes the head of a local address `0#…` whose value of `length` bytes the caller writes next.
    public static func writeLocalAddressHead(length: Int, into writer: inout ByteWriter) {
        writer.write(0x82)  // array(2)
        writer.write(0x00)  // transport type 0: local
        writeHead(major: 2, UInt64(length), into: &writer)
    }

    // MARK: Decoding

    /// Reads one routing message from `bytes`; nil if it is not one (malformed, or over the limits).
    public static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> RoutingMessageView? {
        var reader = CBORHeadReader(bytes)
        guard let elements = reader.head(major: 4), elements >= 3, elements <= 1 << 16 else { return nil }
        // Onward route: keep the first address.
        guard let onwardCount = reader.head(major: 4), onwardCount <= UInt64(maxRouteLength) else { return nil }
        var destination: AddressView?
        for index in 0..<Int(onwardCount) {
            guard let address = reader.address() else { return nil }
            if index == 0 { destination = address }
        }
        guard let returnCount = reader.head(major: 4), returnCount <= UInt64(maxRouteLength) else { return nil }
        for _ in 0..<Int(returnCount) {
            guard reader.address() != nil else { return nil }
        }
        guard let payloadCount = reader.head(major: 2), payloadCount <= UInt64(reader.remaining) else { return nil }
        let payloadStart = reader.position
        // A fourth element (tracing context) and any after it are ignored, as docs/routing.md says.
        return RoutingMessageView(destination: destination, payloadStart: payloadStart, payloadCount: Int(payloadCount))
    }
}

/// Reads CBOR heads (definite lengths only) without allocating.
struct CBORHeadReader {
    let bytes: UnsafeBufferPointer<UInt8>
    private(set) var position = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    var remaining: Int { bytes.count - position }

    /// The argument of the next head if its major type is `major`; nil for another type, an indefinite length,
    /// a reserved value or too few bytes.
    mutating func head(major: UInt8) -> UInt64? {
        guard case .head(let found, let argument, let length) = CBORHeadCore.decode(bytes, at: position),
            found == major
        else { return nil }
        position += length
        return argument
    }

    /// Reads one address `[transport type, bytes]` within the limits.
    mutating func address() -> AddressView? {
        guard head(major: 4) == 2, let type = head(major: 0) else { return nil }
        guard let length = head(major: 2), length <= UInt64(RoutingCodec.maxAddressLength),
            length <= UInt64(remaining)
        else { return nil }
        let view = AddressView(transportType: type, start: position, count: Int(length))
        position += Int(length)
        return view
    }
}
