// The BLE fragmentation layer: one routing message per SDU when it fits, else a first fragment carrying the
// total length and continuation fragments (docs/ble.md §3). Pure values, no I/O.
import EdgeRouting

/// The one-byte header at the start of every SDU.
public enum BLEFragmentKind: UInt8, Sendable, CaseIterable {
    /// `00 ‖ message`: the whole routing message.
    case complete = 0x00
    /// `01 ‖ u32 BE total length ‖ first bytes`: the start of a message that needs several SDUs.
    case first = 0x01
    /// `02 ‖ next bytes`: the continuation of the message in progress; the last one completes the total.
    case continuation = 0x02
}

/// Splitting routing messages into SDUs.
///
/// ### Invariants
/// - Every SDU produced is at most `maxSDUSize` bytes, and at least 1 byte (the header).
/// - A message that fits in one SDU (with its 1-byte header) is always sent as ``BLEFragmentKind/complete``.
/// - The fragments of one message are contiguous on the link: a link's sender sends one message at a time.
public enum BLEFraming {
    /// Header bytes of a ``BLEFragmentKind/complete`` or ``BLEFragmentKind/continuation`` SDU.
    public static let shortHeaderSize = 1
    /// Header bytes of a ``BLEFragmentKind/first`` SDU.
    public static let firstHeaderSize = 5
    /// The smallest SDU limit the framing works with: the LE minimum MTU (Core spec: 23).
    public static let minimumSDUSize = 23
    /// The largest message the header can describe.
    public static let maximumMessageSize = Int(UInt32.max)

    /// The number of SDUs `messageSize` bytes need at `maxSDUSize`.
    public static func sduCount(messageSize: Int, maxSDUSize: Int) -> Int {
        precondition(maxSDUSize >= minimumSDUSize)
        if messageSize + shortHeaderSize <= maxSDUSize { return 1 }
        let rest = messageSize - (maxSDUSize - firstHeaderSize)
        let perContinuation = maxSDUSize - shortHeaderSize
        return 1 + (rest + perContinuation - 1) / perContinuation
    }

    /// Splits an encoded routing message into SDUs of at most `maxSDUSize` bytes.
    /// - Parameters:
    ///   - message: the encoded routing message.
    ///   - maxSDUSize: the link's SDU limit (≤ the peer's MTU); at least ``minimumSDUSize``.
    ///   - maxMessageSize: the largest message this side sends (and the peer accepts).
    /// - Throws: ``BLETransportError/messageTooLarge(size:limit:)`` when `message` exceeds `maxMessageSize`;
    ///   ``BLETransportError/sduTooLarge(size:limit:)`` if `maxSDUSize` is below ``minimumSDUSize``.
    public static func fragment(
        _ message: [UInt8], maxSDUSize: Int, maxMessageSize: Int
    ) throws(BLETransportError) -> [[UInt8]] {
        guard maxSDUSize >= minimumSDUSize else { throw .sduTooLarge(size: minimumSDUSize, limit: maxSDUSize) }
        let limit = min(maxMessageSize, maximumMessageSize)
        guard message.count <= limit else { throw .messageTooLarge(size: message.count, limit: limit) }
        if message.count + shortHeaderSize <= maxSDUSize {
            return [[BLEFragmentKind.complete.rawValue] + message]
        }
        var sdus: [[UInt8]] = []
        sdus.reserveCapacity(sduCount(messageSize: message.count, maxSDUSize: maxSDUSize))
        let total = UInt32(message.count)
        var first: [UInt8] = [
            BLEFragmentKind.first.rawValue,
            UInt8(truncatingIfNeeded: total >> 24), UInt8(truncatingIfNeeded: total >> 16),
            UInt8(truncatingIfNeeded: total >> 8), UInt8(truncatingIfNeeded: total),
        ]
        var offset = maxSDUSize - firstHeaderSize
        first.append(contentsOf: message[..<offset])
        sdus.append(first)
        let step = maxSDUSize - shortHeaderSize
        while offset < message.count {
            let end = min(offset + step, message.count)
            var sdu: [UInt8] = [BLEFragmentKind.continuation.rawValue]
            sdu.reserveCapacity(end - offset + 1)
            sdu.append(contentsOf: message[offset..<end])
            sdus.append(sdu)
            offset = end
        }
        return sdus
    }
}

/// Reassembles messages from the SDUs of one link, bounded by `maxMessageSize`.
///
/// A first fragment announcing more than `maxMessageSize` bytes is not buffered: the reassembler returns
/// ``Output/oversize(declared:)`` once and then discards that message's continuation bytes, so one oversize
/// message costs the peer its message, not the link. Anything that breaks the rules (unknown header, a
/// continuation with no message in progress or longer than the rest, a new message before the previous one is
/// complete, an empty SDU) throws ``BLETransportError/framingViolation(_:)``: the caller must close the link.
public struct BLEReassembler: Sendable {
    /// What one SDU produced.
    public enum Output: Hashable, Sendable {
        /// More SDUs are needed.
        case incomplete
        /// A complete message (not yet validated as a routing message).
        case message([UInt8])
        /// A message announced as larger than the limit; its bytes will be skipped.
        case oversize(declared: Int)
    }

    public let maxMessageSize: Int
    private var buffer: [UInt8] = []
    /// Bytes still expected for the message in progress (buffered or skipped).
    private var remaining = 0
    private var skipping = false

    public init(maxMessageSize: Int) {
        self.maxMessageSize = maxMessageSize
    }

    /// True between messages.
    public var isIdle: Bool { remaining == 0 }

    /// Bytes held for the message in progress.
    public var bufferedBytes: Int { buffer.count }

    /// Consumes one SDU.
    public mutating func push(_ sdu: ArraySlice<UInt8>) throws(BLETransportError) -> Output {
        guard let header = sdu.first else { throw .framingViolation("empty SDU") }
        let body = sdu.dropFirst()
        guard let kind = BLEFragmentKind(rawValue: header) else {
            throw .framingViolation("unknown fragment header 0x\(header < 16 ? "0" : "")\(String(header, radix: 16))")
        }
        switch kind {
        case .complete:
            guard isIdle else { throw .framingViolation("new message while \(remaining) bytes are outstanding") }
            guard body.count <= maxMessageSize else { return .oversize(declared: body.count) }
            return .message(Array(body))
        case .first:
            guard isIdle else { throw .framingViolation("new message while \(remaining) bytes are outstanding") }
            guard body.count >= 4 else { throw .framingViolation("first fragment shorter than its length field") }
            let i = body.startIndex
            let total =
                Int(body[i]) << 24 | Int(body[i + 1]) << 16 | Int(body[i + 2]) << 8 | Int(body[i + 3])
            let data = body.dropFirst(4)
            guard data.count <= total else {
                throw .framingViolation("first fragment carries \(data.count) bytes of a \(total)-byte message")
            }
            if total > maxMessageSize {
                remaining = total - data.count
                skipping = remaining > 0  // a first fragment that carried it all leaves nothing to skip
                return .oversize(declared: total)
            }
            if data.count == total { return .message(Array(data)) }
            buffer.reserveCapacity(total)
            buffer.append(contentsOf: data)
            remaining = total - data.count
            return .incomplete
        case .continuation:
            guard !isIdle else { throw .framingViolation("continuation fragment with no message in progress") }
            guard body.count <= remaining else {
                throw .framingViolation("continuation of \(body.count) bytes where \(remaining) remain")
            }
            guard !body.isEmpty else { throw .framingViolation("empty continuation fragment") }
            remaining -= body.count
            if skipping {
                if remaining == 0 { skipping = false }
                return .incomplete
            }
            buffer.append(contentsOf: body)
            guard remaining == 0 else { return .incomplete }
            let message = buffer
            buffer = []
            return .message(message)
        }
    }

    /// Forgets any message in progress (the link went down).
    public mutating func reset() {
        buffer = []
        remaining = 0
        skipping = false
    }
}

/// The pure SDU → routing message decoder of one link: reassembly plus routing-message decoding.
///
/// Deterministic and I/O-free (a fuzz target can drive it with arbitrary SDU sequences). Errors thrown are
/// link-fatal framing violations; a well-framed message that is not a valid routing message is reported as
/// ``Result/malformed(_:)`` and the link goes on (SDU boundaries keep the stream in sync).
public struct BLESDUDecoder: Sendable {
    /// What one SDU produced.
    public enum Result: Hashable, Sendable {
        case incomplete
        case message(RoutingMessage)
        case oversize(declared: Int)
        case malformed(RoutingError)
    }

    public let routingLimits: RoutingLimits
    public private(set) var reassembler: BLEReassembler

    /// - Parameters:
    ///   - maxMessageSize: the reassembly bound (also capped by `routingLimits.maxMessageSize`).
    ///   - routingLimits: limits applied while decoding the routing message.
    public init(maxMessageSize: Int, routingLimits: RoutingLimits = .default) {
        self.routingLimits = routingLimits
        reassembler = BLEReassembler(maxMessageSize: min(maxMessageSize, routingLimits.maxMessageSize))
    }

    /// Consumes one SDU.
    public mutating func decode(_ sdu: ArraySlice<UInt8>) throws(BLETransportError) -> Result {
        switch try reassembler.push(sdu) {
        case .incomplete: return .incomplete
        case .oversize(let declared): return .oversize(declared: declared)
        case .message(let bytes):
            do {
                return .message(try RoutingMessage(decoding: bytes, limits: routingLimits))
            } catch {
                return .malformed(error)
            }
        }
    }

    /// Decodes a whole SDU sequence, stopping at the first framing violation (convenience for fuzzing and tests).
    public static func decodeAll(
        _ sdus: [ArraySlice<UInt8>], maxMessageSize: Int, routingLimits: RoutingLimits = .default
    ) -> (results: [Result], violation: BLETransportError?) {
        var decoder = BLESDUDecoder(maxMessageSize: maxMessageSize, routingLimits: routingLimits)
        var results: [Result] = []
        for sdu in sdus {
            do {
                let result = try decoder.decode(sdu)
                if result != .incomplete { results.append(result) }
            } catch {
                return (results, error)
            }
        }
        return (results, nil)
    }
}
