// Serial frames on fixed buffers (docs/serial-framing.md §2–§4): COBS(type ‖ body ‖ CRC-32C) ‖ 0x00, decoded byte by
// byte as it arrives and encoded into one transmit buffer. Both buffers are allocated once, when the kit starts.

/// A byte buffer allocated once and kept for the life of the program (a firmware never frees it).
public struct FixedBuffer {
    public let storage: UnsafeMutableBufferPointer<UInt8>

    public init(capacity: Int) {
        storage = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(1, capacity))
        storage.initialize(repeating: 0)
    }

    public var capacity: Int { storage.count }

    /// Gives the memory back (host tests only; a firmware keeps its buffers).
    public func deallocate() { storage.deallocate() }
}

/// One frame the receiver completed; the body stays in the receiver's buffer until the next byte is fed.
public enum ReceivedFrame: Equatable, Sendable {
    case hello(LinkHello)
    case helloAck(LinkHello)
    /// DATA: the body is `receiver.body`.
    case data
    case keepalive
    case dropped(LinkDropReason)
}

/// Decodes the byte stream from the line into frames, with a buffer of `maxFrameSize` bytes (§3: "a firmware needs
/// one buffer of `max_frame` bytes").
///
/// ### Invariants
/// - Never holds more than `maxFrameSize` decoded bytes; a longer frame is reported once as `oversize` and skipped
///   to the next delimiter.
/// - Empty frames (two delimiters) produce nothing.
public struct FrameReceiver {
    private let buffer: FixedBuffer
    private var count = 0
    private var cobs = COBSStreamDecoder()
    private var discarding = false
    private var bodyLength = 0

    /// - Parameter maxFrameSize: the largest decoded frame accepted (what the session announces), at least 64.
    public init(maxFrameSize: Int) {
        buffer = FixedBuffer(capacity: max(maxFrameSize, SerialWire.minimumMaxFrameSize))
    }

    public var maxFrameSize: Int { buffer.capacity }

    /// The body of the last frame returned (valid until the next ``feed(_:)``).
    public var body: UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: UnsafeBufferPointer(buffer.storage)[1..<(1 + bodyLength)])
    }

    /// Forgets a partial frame (the port was reopened).
    public mutating func reset() {
        count = 0
        cobs.reset()
        discarding = false
    }

    /// Feeds one byte from the line; returns the frame it completed, if any.
    public mutating func feed(_ byte: UInt8) -> ReceivedFrame? {
        if byte == SerialWire.delimiter {
            defer { reset() }
            if discarding || cobs.isEmpty { return nil }
            guard cobs.isCompleteFrame else { return .dropped(.badEncoding) }
            return parse()
        }
        if discarding { return nil }
        if case .byte(let decoded) = cobs.push(byte) {
            guard count < buffer.capacity else {
                discarding = true
                return .dropped(.oversize)
            }
            buffer.storage[count] = decoded
            count += 1
        }
        return nil
    }

    private mutating func parse() -> ReceivedFrame {
        guard count >= SerialWire.overhead else { return .dropped(.tooShort) }
        let frame = UnsafeBufferPointer(rebasing: UnsafeBufferPointer(buffer.storage)[0..<count])
        var crc = CRC32CCore.initial
        for index in 0..<(count - 4) { crc = CRC32CCore.update(crc, byte: frame[index]) }
        guard CRC32CCore.finish(crc) == SerialWire.loadUInt32LE(frame, at: count - 4) else {
            return .dropped(.crcMismatch)
        }
        bodyLength = count - SerialWire.overhead
        switch frame[0] {
        case SerialWire.helloType, SerialWire.helloAckType:
            guard bodyLength >= SerialWire.helloBodyLength else { return .dropped(.badHello) }
            let hello = LinkHello(
                version: frame[1], maxFrameSize: SerialWire.loadUInt32LE(frame, at: 3),
                nonce: SerialWire.loadUInt32LE(frame, at: 7), peerNonce: SerialWire.loadUInt32LE(frame, at: 11),
                keepaliveMilliseconds: SerialWire.loadUInt32LE(frame, at: 15))
            guard SerialWire.isAcceptableHello(version: hello.version, nonce: hello.nonce,
                                               maxFrameSize: hello.maxFrameSize) else { return .dropped(.badHello) }
            if frame[0] == SerialWire.helloType { return .hello(hello) }
            guard hello.peerNonce != 0 else { return .dropped(.badHello) }
            return .helloAck(hello)
        case SerialWire.dataType:
            return .data
        case SerialWire.keepaliveType:
            return .keepalive
        default:
            return .dropped(.unknownType)
        }
    }
}

/// Encodes frames into one transmit buffer: `00 ‖ COBS(type ‖ body ‖ CRC-32C LE) ‖ 00` (a leading delimiter before
/// every frame, as ockam-edge writes, so line noise before it cannot corrupt it).
public struct FrameSender {
    private let buffer: FixedBuffer
    /// The largest frame body this sender can encode.
    public let maxBodyLength: Int

    /// - Parameter maxFrameSize: the largest decoded frame this side sends (type + body + CRC).
    public init(maxFrameSize: Int) {
        let frame = max(maxFrameSize, SerialWire.minimumMaxFrameSize)
        maxBodyLength = frame - SerialWire.overhead
        buffer = FixedBuffer(capacity: frame + frame / 254 + 1 + 2)
        scratch = FixedBuffer(capacity: maxBodyLength)
    }

    /// Where callers write a frame body before ``encode(type:bodyLength:)`` (`maxBodyLength` bytes).
    public var bodyBuffer: UnsafeMutableBufferPointer<UInt8> { scratch.storage }

    private let scratch: FixedBuffer

    /// Encodes a frame whose body is the first `bodyLength` bytes of ``bodyBuffer``; returns the wire bytes, or nil
    /// if the body is too long.
    public func encode(type: UInt8, bodyLength: Int) -> UnsafeBufferPointer<UInt8>? {
        guard bodyLength >= 0, bodyLength <= maxBodyLength else { return nil }
        let out = buffer.storage
        out[0] = SerialWire.delimiter
        var encoder = COBSBufferEncoder(output: out, start: 1)
        var crc = CRC32CCore.update(CRC32CCore.initial, byte: type)
        encoder.append(type)
        for index in 0..<bodyLength {
            let byte = scratch.storage[index]
            crc = CRC32CCore.update(crc, byte: byte)
            encoder.append(byte)
        }
        let check = CRC32CCore.finish(crc)
        encoder.append(UInt8(truncatingIfNeeded: check))
        encoder.append(UInt8(truncatingIfNeeded: check >> 8))
        encoder.append(UInt8(truncatingIfNeeded: check >> 16))
        encoder.append(UInt8(truncatingIfNeeded: check >> 24))
        guard let end = encoder.finish(), end < out.count else { return nil }
        out[end] = SerialWire.delimiter
        return UnsafeBufferPointer(rebasing: UnsafeBufferPointer(out)[0..<(end + 1)])
    }

    /// Encodes a control frame.
    public func encode(_ frame: LinkControlFrame, ourMaxFrameSize: UInt32, keepaliveMilliseconds: UInt32)
        -> UnsafeBufferPointer<UInt8>?
    {
        switch frame {
        case .hello(let nonce):
            writeHello(maxFrameSize: ourMaxFrameSize, nonce: nonce, peerNonce: 0, keepalive: keepaliveMilliseconds)
            return encode(type: SerialWire.helloType, bodyLength: SerialWire.helloBodyLength)
        case .helloAck(let nonce, let peerNonce):
            writeHello(maxFrameSize: ourMaxFrameSize, nonce: nonce, peerNonce: peerNonce,
                       keepalive: keepaliveMilliseconds)
            return encode(type: SerialWire.helloAckType, bodyLength: SerialWire.helloBodyLength)
        case .keepalive:
            return encode(type: SerialWire.keepaliveType, bodyLength: 0)
        }
    }

    private func writeHello(maxFrameSize: UInt32, nonce: UInt32, peerNonce: UInt32, keepalive: UInt32) {
        let body = scratch.storage
        body[0] = SerialWire.version
        body[1] = 0
        storeUInt32LE(maxFrameSize, into: body, at: 2)
        storeUInt32LE(nonce, into: body, at: 6)
        storeUInt32LE(peerNonce, into: body, at: 10)
        storeUInt32LE(keepalive, into: body, at: 14)
    }
}

/// Writes `value` little-endian at `offset` (the caller guarantees room for 4 bytes).
@inline(__always)
func storeUInt32LE(_ value: UInt32, into bytes: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
    bytes[offset] = UInt8(truncatingIfNeeded: value)
    bytes[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
    bytes[offset + 2] = UInt8(truncatingIfNeeded: value >> 16)
    bytes[offset + 3] = UInt8(truncatingIfNeeded: value >> 24)
}
