// The routing message that crosses transports: CBOR [onward, return, payload(, tracing)] (spec §2.2).
import EdgeWire

/// Hard limits applied while decoding routing messages from the outside world.
public struct RoutingLimits: Hashable, Sendable {
    /// Largest accepted encoded message (Ockam's `MAX_MESSAGE_SIZE`, 16 MiB).
    public var maxMessageSize: Int
    /// Most addresses in one route.
    public var maxRouteLength: Int
    /// Longest address value in bytes.
    public var maxAddressLength: Int
    /// Longest tracing context kept (longer ones are ignored, not fatal).
    public var maxTracingContextLength: Int

    public init(
        maxMessageSize: Int = 16 * 1024 * 1024, maxRouteLength: Int = 64, maxAddressLength: Int = 1024,
        maxTracingContextLength: Int = 4096
    ) {
        self.maxMessageSize = maxMessageSize
        self.maxRouteLength = maxRouteLength
        self.maxAddressLength = maxAddressLength
        self.maxTracingContextLength = maxTracingContextLength
    }

    public static let `default` = RoutingLimits()
}

/// Ockam's `TcpTransportMessage` / `UdpRoutingMessage`: what one transport frame carries.
///
/// Encoding (minicbor derive, array form): `array(3) [onward Route, return Route, payload bytes]`, or
/// `array(4)` with a trailing tracing-context text. Decoders accept 3 or more elements and ignore
/// elements after the fourth. A tracing field that is not usable text (wrong type, not UTF-8, too long) is
/// ignored rather than fatal: spec §1.6 says receivers accept its absence or garbage (Rust's typed decoder
/// would reject a non-text field; we are deliberately more lenient about this optional metadata).
public struct RoutingMessage: Hashable, Sendable {
    public var onwardRoute: Route
    public var returnRoute: Route
    public var payload: [UInt8]
    public var tracingContext: String?

    public init(onwardRoute: Route, returnRoute: Route, payload: [UInt8], tracingContext: String? = nil) {
        self.onwardRoute = onwardRoute
        self.returnRoute = returnRoute
        self.payload = payload
        self.tracingContext = tracingContext
    }

    /// An empty onward route marks a heartbeat, which receivers drop.
    public var isHeartbeat: Bool { onwardRoute.isEmpty }

    // MARK: Encoding

    public func encode() -> [UInt8] {
        var writer = CBORWriter(capacity: payload.count + 16 * (onwardRoute.count + returnRoute.count) + 8)
        encode(into: &writer)
        return writer.bytes
    }

    public func encode(into writer: inout CBORWriter) {
        writer.writeArrayHeader(tracingContext == nil ? 3 : 4)
        onwardRoute.encode(into: &writer)
        returnRoute.encode(into: &writer)
        writer.writeBytes(payload)
        if let tracingContext { writer.writeText(tracingContext) }
    }

    /// Throws what a receiver applying `limits` would refuse this message for (``init(decoding:limits:)``): a route
    /// longer than `maxRouteLength`, an address value longer than `maxAddressLength`, or an encoding (`encodedSize`)
    /// over `maxMessageSize`. A node checks what it is about to send, after adding its own hops, so that it never
    /// sends what the next hop must reject.
    public func checkLimits(_ limits: RoutingLimits, encodedSize: Int) throws(RoutingError) {
        for (name, route) in [("onward route length", onwardRoute), ("return route length", returnRoute)] {
            guard route.count <= limits.maxRouteLength else {
                throw .limitExceeded(what: name, limit: limits.maxRouteLength)
            }
            for address in route.addresses where address.value.count > limits.maxAddressLength {
                throw .limitExceeded(what: "address length", limit: limits.maxAddressLength)
            }
        }
        guard encodedSize <= limits.maxMessageSize else {
            throw .limitExceeded(what: "routing message size", limit: limits.maxMessageSize)
        }
    }

    // MARK: Decoding

    /// Decodes one complete message; trailing bytes after the CBOR item are an error.
    public init(decoding bytes: ArraySlice<UInt8>, limits: RoutingLimits = .default) throws(RoutingError) {
        guard bytes.count <= limits.maxMessageSize else {
            throw .limitExceeded(what: "routing message size", limit: limits.maxMessageSize)
        }
        var reader = CBORReader(bytes)
        do {
            let count = try reader.readArrayHeader(limit: 1 << 16)
            guard count >= 3 else { throw WireError.truncated }
            onwardRoute = try Route(reading: &reader, limits: limits)
            returnRoute = try Route(reading: &reader, limits: limits)
            payload = Array(try reader.readBytes(limit: limits.maxMessageSize))
            tracingContext = nil
            if count >= 4 {
                // Read the text on a copy: a failed readText has already consumed the item's head, so
                // skipping must restart from the item's start (else a too-long or non-UTF-8 context is
                // skipped from its middle, which can reject good frames or accept truncated ones).
                var attempt = reader
                if (try? attempt.peekType()) == .text, let text = try? attempt.readText(limit: limits.maxTracingContextLength) {
                    tracingContext = text
                    reader = attempt
                } else {
                    try reader.skipValue()
                }
                try reader.skipValues(count - 4)
            }
            try reader.expectEnd()
        } catch let error as WireError {
            throw .malformed(error, context: "routing message")
        } catch let error as RoutingError {
            throw error
        } catch {
            throw .malformed(.unsupported(String(describing: error)), context: "routing message")
        }
    }

    public init(decoding bytes: [UInt8], limits: RoutingLimits = .default) throws(RoutingError) {
        try self.init(decoding: bytes[...], limits: limits)
    }
}

extension Address {
    /// CBOR `array(2) [tt, bytes]`, e.g. `0#echo` → `82 00 44 6563686f`.
    public func encode(into writer: inout CBORWriter) {
        writer.writeArrayHeader(2)
        writer.writeUnsigned(UInt64(transportType.rawValue))
        writer.writeBytes(value)
    }

    public init(reading reader: inout CBORReader, limits: RoutingLimits = .default) throws {
        let count = try reader.readArrayHeader(limit: 1 << 16)
        guard count >= 2 else { throw WireError.truncated }
        let tt: UInt8 = try reader.readUnsigned(as: UInt8.self)
        let value = try reader.readBytes(limit: limits.maxAddressLength)
        try reader.skipValues(count - 2)
        self.init(TransportType(tt), Array(value))
    }

    /// BARE form (legacy `TransportMessage`): tt as one byte, ULEB128 length, value bytes.
    public func encodeBARE(into out: inout [UInt8]) {
        out.append(transportType.rawValue)
        BARE.writeBytes(value, into: &out)
    }
}

extension Route {
    /// CBOR array of addresses.
    public func encode(into writer: inout CBORWriter) {
        writer.writeArrayHeader(addresses.count)
        for address in addresses { address.encode(into: &writer) }
    }

    public init(reading reader: inout CBORReader, limits: RoutingLimits = .default) throws {
        let count = try reader.readArrayHeader(limit: 1 << 16)
        guard count <= limits.maxRouteLength else {
            throw RoutingError.limitExceeded(what: "route length", limit: limits.maxRouteLength)
        }
        var addresses: [Address] = []
        addresses.reserveCapacity(count)
        for _ in 0..<count { addresses.append(try Address(reading: &reader, limits: limits)) }
        self.init(addresses)
    }

    /// BARE form: ULEB128 count then BARE addresses.
    public func encodeBARE(into out: inout [UInt8]) {
        BARE.writeVarint(UInt64(addresses.count), into: &out)
        for address in addresses { address.encodeBARE(into: &out) }
    }
}
