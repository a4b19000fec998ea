// EdgeTransportTCP: Ockam's TCP transport (version byte, u32-BE-length CBOR frames) on swift-nio.
import NIOCore

/// Errors that end a TCP connection; each is logged with the peer's address.
public enum TCPTransportError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The peer's first byte was not protocol version `0x01`.
    case wrongProtocolVersion(UInt8)
    /// A frame announced a length above the limit.
    case frameTooLarge(UInt32, limit: Int)
    /// A frame announced length 0 (Ockam requires 0 < N).
    case emptyFrame
    /// The connection closed in the middle of a frame (or before the version byte).
    case truncatedFrame(bufferedBytes: Int)
    /// The peer did not send its version byte in time.
    case versionTimeout
    /// The frame body is not a valid routing message.
    case malformedMessage(String)
    /// An address value is not `host:port`.
    case invalidPeerAddress(String)
    /// The connection is closed.
    case connectionClosed

    public var description: String {
        switch self {
        case .wrongProtocolVersion(let v): return "wrong protocol version byte 0x\(String(v, radix: 16)) (expected 0x01)"
        case .frameTooLarge(let n, let limit): return "frame length \(n) exceeds limit \(limit)"
        case .emptyFrame: return "frame length 0"
        case .truncatedFrame(let n): return "connection closed mid-frame (\(n) bytes buffered)"
        case .versionTimeout: return "peer sent no protocol version byte in time"
        case .malformedMessage(let why): return "malformed routing message: \(why)"
        case .invalidPeerAddress(let a): return "invalid TCP peer address \"\(a)\" (expected host:port)"
        case .connectionClosed: return "connection closed"
        }
    }
}

/// The Ockam TCP protocol version byte each side sends first (spec §2.1).
public let ockamTCPProtocolVersion: UInt8 = 0x01

/// Largest frame body accepted or sent (`MAX_MESSAGE_SIZE`, 16 MiB).
public let ockamTCPMaxFrameSize = 16 * 1024 * 1024

/// Splits the inbound byte stream: one version byte, then `u32 BE length ‖ body` frames.
///
/// Emits frame bodies. Oversize, empty and post-close partial frames are errors, which close the
/// connection (Ockam does not resynchronise a TCP stream).
public struct OckamTCPFrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public let maxFrameSize: Int
    private var versionReceived = false

    public init(maxFrameSize: Int = ockamTCPMaxFrameSize) {
        self.maxFrameSize = maxFrameSize
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        if !versionReceived {
            guard let version = buffer.readInteger(as: UInt8.self) else { return nil }
            guard version == ockamTCPProtocolVersion else { throw TCPTransportError.wrongProtocolVersion(version) }
            versionReceived = true
        }
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard length > 0 else { throw TCPTransportError.emptyFrame }
        guard Int(length) <= maxFrameSize else { throw TCPTransportError.frameTooLarge(length, limit: maxFrameSize) }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(length))
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        if let frame = try decode(buffer: &buffer) { return frame }
        if buffer.readableBytes > 0 { throw TCPTransportError.truncatedFrame(bufferedBytes: buffer.readableBytes) }
        return nil
    }
}

/// What the connection writes: the version byte once, then frames.
public enum OckamTCPOutbound: Sendable {
    case version
    case frame(ByteBuffer)
}

/// Writes the version byte and `u32 BE length ‖ body` frames.
public struct OckamTCPFrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = OckamTCPOutbound
    public init() {}

    public func encode(data: OckamTCPOutbound, out: inout ByteBuffer) throws {
        switch data {
        case .version:
            out.writeInteger(ockamTCPProtocolVersion)
        case .frame(var body):
            guard body.readableBytes > 0 else { throw TCPTransportError.emptyFrame }
            guard body.readableBytes <= ockamTCPMaxFrameSize else {
                throw TCPTransportError.frameTooLarge(UInt32(clamping: body.readableBytes), limit: ockamTCPMaxFrameSize)
            }
            out.reserveCapacity(4 + body.readableBytes)
            out.writeInteger(UInt32(body.readableBytes))
            out.writeBuffer(&body)
        }
    }
}
