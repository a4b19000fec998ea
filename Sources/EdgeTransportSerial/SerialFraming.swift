// The serial link framing: COBS(type ‖ body ‖ CRC-32C) ‖ 0x00, and the hello body (docs/serial-framing.md).

/// Constants of the serial framing, version 1 (docs/serial-framing.md).
public enum SerialFraming {
    /// The framing version this implementation speaks.
    public static let version: UInt8 = SerialWire.version
    /// Bytes a frame adds around its body before COBS: one type byte and four CRC bytes.
    public static let overhead = SerialWire.overhead
    /// The smallest maximum frame size a peer may announce (so every hello fits).
    public static let minimumMaxFrameSize = SerialWire.minimumMaxFrameSize
    /// ockam-edge's default maximum frame size (decoded: type + body + CRC).
    public static let defaultMaxFrameSize = 16 * 1024
    /// The largest maximum frame size ockam-edge accepts or uses (1 MiB).
    public static let implementationMaxFrameSize = 1 << 20
    /// Length of a version 1 hello body; longer bodies are accepted and the extra bytes ignored.
    public static let helloBodyLength = SerialWire.helloBodyLength
    /// The frame delimiter.
    public static let delimiter: UInt8 = SerialWire.delimiter

    /// The decoded length of a frame with a body of `bodyCount` bytes.
    public static func frameLength(bodyCount: Int) -> Int { bodyCount + overhead }

    /// The largest number of encoded bytes (without delimiters) of a frame of at most `maxFrameSize` decoded bytes.
    public static func maxEncodedLength(maxFrameSize: Int) -> Int { COBS.maxEncodedLength(maxFrameSize) }
}

/// A frame's type byte.
public struct SerialFrameType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Opens (or restarts) a link session; carries a ``SerialHello``.
    public static let hello = SerialFrameType(rawValue: SerialWire.helloType)
    /// Answers a hello; carries a ``SerialHello`` whose `peerNonce` is the answered hello's nonce.
    public static let helloAck = SerialFrameType(rawValue: SerialWire.helloAckType)
    /// One Ockam routing message (CBOR, as in a TCP frame body).
    public static let data = SerialFrameType(rawValue: SerialWire.dataType)
    /// Liveness while idle; empty body.
    public static let keepalive = SerialFrameType(rawValue: SerialWire.keepaliveType)

    public var description: String {
        switch self {
        case .hello: return "HELLO"
        case .helloAck: return "HELLO_ACK"
        case .data: return "DATA"
        case .keepalive: return "KEEPALIVE"
        default: return "0x" + String(rawValue, radix: 16)
        }
    }
}

/// The body of HELLO and HELLO_ACK frames (all integers little-endian).
///
/// ```
/// offset size field
///   0     1  version        highest framing version the sender speaks (1)
///   1     1  flags          reserved, sent as 0, ignored
///   2     4  max_frame      largest decoded frame (type + body + CRC) the sender accepts, ≥ 64
///   6     4  nonce          the sender's session nonce, non-zero, new for every handshake
///  10     4  peer_nonce     HELLO: 0; HELLO_ACK: the nonce of the HELLO being answered
///  14     4  keepalive_ms   the sender sends a KEEPALIVE after this long without sending (0 = never)
/// ```
public struct SerialHello: Hashable, Sendable, CustomStringConvertible {
    public var version: UInt8
    public var flags: UInt8
    public var maxFrameSize: UInt32
    public var nonce: UInt32
    public var peerNonce: UInt32
    public var keepaliveMilliseconds: UInt32

    public init(
        version: UInt8 = SerialFraming.version, flags: UInt8 = 0, maxFrameSize: UInt32, nonce: UInt32,
        peerNonce: UInt32 = 0, keepaliveMilliseconds: UInt32
    ) {
        self.version = version
        self.flags = flags
        self.maxFrameSize = maxFrameSize
        self.nonce = nonce
        self.peerNonce = peerNonce
        self.keepaliveMilliseconds = keepaliveMilliseconds
    }

    /// The 18-byte body.
    public func encode() -> [UInt8] {
        var out: [UInt8] = [version, flags]
        out.reserveCapacity(SerialFraming.helloBodyLength)
        for value in [maxFrameSize, nonce, peerNonce, keepaliveMilliseconds] {
            out.append(UInt8(truncatingIfNeeded: value))
            out.append(UInt8(truncatingIfNeeded: value >> 8))
            out.append(UInt8(truncatingIfNeeded: value >> 16))
            out.append(UInt8(truncatingIfNeeded: value >> 24))
        }
        return out
    }

    /// Parses a hello body; nil if it is shorter than 18 bytes, has version 0, a zero nonce or a
    /// `max_frame` below 64. Bytes after the 18th are ignored (later versions may append fields).
    public init?(body: ArraySlice<UInt8>) {
        guard body.count >= SerialFraming.helloBodyLength else { return nil }
        let base = body.startIndex
        func u32(_ offset: Int) -> UInt32 {
            UInt32(body[base + offset]) | UInt32(body[base + offset + 1]) << 8 | UInt32(body[base + offset + 2]) << 16
                | UInt32(body[base + offset + 3]) << 24
        }
        version = body[base]
        flags = body[base + 1]
        maxFrameSize = u32(2)
        nonce = u32(6)
        peerNonce = u32(10)
        keepaliveMilliseconds = u32(14)
        guard SerialWire.isAcceptableHello(version: version, nonce: nonce, maxFrameSize: maxFrameSize) else { return nil }
    }

    public var description: String {
        "v\(version) max_frame=\(maxFrameSize) nonce=\(Self.hex(nonce)) peer_nonce=\(Self.hex(peerNonce))"
            + " keepalive_ms=\(keepaliveMilliseconds)"
    }

    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }
}

/// One decoded frame.
public enum SerialFrame: Hashable, Sendable {
    case hello(SerialHello)
    case helloAck(SerialHello)
    /// A routing message's bytes (not yet decoded).
    case data([UInt8])
    case keepalive

    public var type: SerialFrameType {
        switch self {
        case .hello: return .hello
        case .helloAck: return .helloAck
        case .data: return .data
        case .keepalive: return .keepalive
        }
    }

    /// The decoded length: type + body + CRC.
    public var frameLength: Int {
        switch self {
        case .hello, .helloAck: return SerialFraming.frameLength(bodyCount: SerialFraming.helloBodyLength)
        case .data(let body): return SerialFraming.frameLength(bodyCount: body.count)
        case .keepalive: return SerialFraming.overhead
        }
    }
}

/// Why a frame (or a message inside one) was dropped; the link keeps running. Counted per reason.
public enum SerialDropReason: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// The CRC-32C did not match.
    case crcMismatch = "crc_mismatch"
    /// More bytes than the maximum frame size arrived before a delimiter.
    case oversize
    /// The bytes between two delimiters are not valid COBS.
    case badEncoding = "bad_encoding"
    /// Fewer than 5 decoded bytes (type + CRC).
    case tooShort = "too_short"
    /// An unknown frame type byte.
    case unknownType = "unknown_type"
    /// A HELLO or HELLO_ACK with a malformed body (short, version 0, zero nonce, max_frame < 64).
    case badHello = "bad_hello"
    /// A HELLO_ACK that does not answer our current hello.
    case staleHelloAck = "stale_hello_ack"
    /// A DATA or KEEPALIVE frame while no link session is established.
    case notLinked = "not_linked"
    /// A DATA frame whose body is not a valid routing message.
    case badMessage = "bad_message"

    public var description: String { rawValue }
}

// MARK: - Encoding

/// Encodes frames as they go on the wire.
public enum SerialFrameEncoder {
    /// Appends `COBS(type ‖ body ‖ CRC-32C LE) ‖ 0x00` to `output`, preceded by a 0x00 if `leadingDelimiter`
    /// (ockam-edge writes one before every frame so that line noise before it cannot corrupt it).
    public static func encode(
        type: SerialFrameType, body: some Collection<UInt8>, leadingDelimiter: Bool = false, into output: inout [UInt8]
    ) {
        if leadingDelimiter { output.append(SerialFraming.delimiter) }
        var crc = CRC32C()
        crc.update(type.rawValue)
        crc.update(body)
        let check = crc.value
        var encoder = COBS.Encoder(output: output)
        output = []
        encoder.reserveCapacity(COBS.maxEncodedLength(body.count + SerialFraming.overhead) + 1)
        encoder.append(type.rawValue)
        encoder.append(body)
        encoder.append(UInt8(truncatingIfNeeded: check))
        encoder.append(UInt8(truncatingIfNeeded: check >> 8))
        encoder.append(UInt8(truncatingIfNeeded: check >> 16))
        encoder.append(UInt8(truncatingIfNeeded: check >> 24))
        output = encoder.finish()
        output.append(SerialFraming.delimiter)
    }

    /// `COBS(type ‖ body ‖ CRC-32C LE) ‖ 0x00`, preceded by `0x00` if `leadingDelimiter`.
    public static func encode(_ frame: SerialFrame, leadingDelimiter: Bool = false) -> [UInt8] {
        var output: [UInt8] = []
        encode(frame, leadingDelimiter: leadingDelimiter, into: &output)
        return output
    }

    public static func encode(_ frame: SerialFrame, leadingDelimiter: Bool = false, into output: inout [UInt8]) {
        switch frame {
        case .hello(let hello):
            encode(type: .hello, body: hello.encode(), leadingDelimiter: leadingDelimiter, into: &output)
        case .helloAck(let hello):
            encode(type: .helloAck, body: hello.encode(), leadingDelimiter: leadingDelimiter, into: &output)
        case .data(let body):
            encode(type: .data, body: body, leadingDelimiter: leadingDelimiter, into: &output)
        case .keepalive:
            encode(type: .keepalive, body: EmptyCollection(), leadingDelimiter: leadingDelimiter, into: &output)
        }
    }
}

// MARK: - Decoding

/// Splits a serial byte stream into frames: a pure, synchronous state machine with bounded memory.
///
/// Feed it whatever the line delivered, in any chunking; it returns the frames completed by those bytes and
/// one ``SerialDropReason`` per rejected frame. It never throws, never traps on input, and holds at most
/// ``maxEncodedLength`` bytes: a frame that grows beyond that is reported once as ``SerialDropReason/oversize``
/// and skipped up to the next delimiter. Empty frames (consecutive delimiters) are ignored silently.
///
/// ### Invariants
/// - `bufferedByteCount ≤ maxEncodedLength` after every call.
/// - Every delimiter that ends a non-empty frame yields exactly one event (a frame or a drop), except the
///   delimiter that ends an oversize frame, which was reported when the limit was crossed.
public struct SerialFrameDecoder: Sendable {
    /// What one complete frame turned out to be.
    public enum Event: Hashable, Sendable {
        case frame(SerialFrame)
        case dropped(SerialDropReason)
    }

    /// Largest decoded frame (type + body + CRC) accepted.
    public let maxFrameSize: Int
    /// Largest number of encoded bytes buffered for one frame.
    public let maxEncodedLength: Int

    private var buffer: [UInt8] = []
    private var decoded: [UInt8] = []
    private var discarding = false

    /// - Parameter maxFrameSize: clamped to `64 ... 1 MiB`.
    public init(maxFrameSize: Int = SerialFraming.defaultMaxFrameSize) {
        let clamped = min(
            max(maxFrameSize, SerialFraming.minimumMaxFrameSize), SerialFraming.implementationMaxFrameSize)
        self.maxFrameSize = clamped
        maxEncodedLength = SerialFraming.maxEncodedLength(maxFrameSize: clamped)
    }

    /// Bytes of an incomplete frame held (for tests and status).
    public var bufferedByteCount: Int { buffer.count }

    /// True while skipping the rest of an oversize frame.
    public var isDiscarding: Bool { discarding }

    /// Forgets a partial frame (after the port was reopened).
    public mutating func reset() {
        buffer.removeAll(keepingCapacity: false)
        decoded.removeAll(keepingCapacity: false)
        discarding = false
    }

    /// Consumes bytes and returns the events they complete, in order.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Event] {
        var events: [Event] = []
        for byte in bytes {
            if byte == SerialFraming.delimiter {
                if discarding {
                    discarding = false
                } else if !buffer.isEmpty {
                    events.append(finishFrame())
                }
                continue
            }
            if discarding { continue }
            if buffer.count >= maxEncodedLength {
                buffer.removeAll(keepingCapacity: true)
                discarding = true
                events.append(.dropped(.oversize))
                continue
            }
            buffer.append(byte)
        }
        return events
    }

    private mutating func finishFrame() -> Event {
        defer {
            buffer.removeAll(keepingCapacity: true)
            decoded.removeAll(keepingCapacity: true)
        }
        do {
            try COBS.decode(buffer[...], into: &decoded)
        } catch {
            return .dropped(.badEncoding)
        }
        return Self.parse(decoded[...], maxFrameSize: maxFrameSize)
    }

    /// Checks and parses one decoded frame (type ‖ body ‖ CRC-32C LE).
    public static func parse(_ frame: ArraySlice<UInt8>, maxFrameSize: Int) -> Event {
        guard frame.count <= maxFrameSize else { return .dropped(.oversize) }
        guard frame.count >= SerialFraming.overhead else { return .dropped(.tooShort) }
        let crcStart = frame.endIndex - 4
        let received =
            UInt32(frame[crcStart]) | UInt32(frame[crcStart + 1]) << 8 | UInt32(frame[crcStart + 2]) << 16
            | UInt32(frame[crcStart + 3]) << 24
        guard CRC32C.checksum(frame[frame.startIndex..<crcStart]) == received else { return .dropped(.crcMismatch) }
        let type = SerialFrameType(rawValue: frame[frame.startIndex])
        let body = frame[(frame.startIndex + 1)..<crcStart]
        switch type {
        case .hello:
            guard let hello = SerialHello(body: body) else { return .dropped(.badHello) }
            return .frame(.hello(hello))
        case .helloAck:
            guard let hello = SerialHello(body: body), hello.peerNonce != 0 else { return .dropped(.badHello) }
            return .frame(.helloAck(hello))
        case .data:
            return .frame(.data(Array(body)))
        case .keepalive:
            return .frame(.keepalive)
        default:
            return .dropped(.unknownType)
        }
    }
}
