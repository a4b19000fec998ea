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
    /// The peer started a frame and did not finish it in time (``OckamTCPReadDeadline``); `length` is nil while the
    /// 4-byte length prefix itself was incomplete.
    case frameTimeout(length: UInt32?, allowed: Duration)
    /// An address value is not `host:port`.
    case invalidPeerAddress(String)
    /// A forwarding allow-list entry is not `host:port`, `host:*`, `a.b.c.d/len:port` or `[v6/len]:port`.
    case invalidForwardRule(String)
    /// The node already has its cap of outgoing connections.
    case tooManyOutgoingConnections(limit: Int)
    /// The connection is closed.
    case connectionClosed

    public var description: String {
        switch self {
        case .wrongProtocolVersion(let v): return "wrong protocol version byte 0x\(String(v, radix: 16)) (expected 0x01)"
        case .frameTooLarge(let n, let limit): return "frame length \(n) exceeds limit \(limit)"
        case .emptyFrame: return "frame length 0"
        case .truncatedFrame(let n): return "connection closed mid-frame (\(n) bytes buffered)"
        case .versionTimeout: return "peer sent no protocol version byte in time"
        case .frameTimeout(let length, let allowed):
            let what = length.map { "a frame of \($0) bytes" } ?? "a frame's length prefix"
            return "peer did not complete \(what) within \(allowed) (frame timeout + length / minimum rate)"
        case .invalidPeerAddress(let a): return "invalid TCP peer address \"\(a)\" (expected host:port)"
        case .invalidForwardRule(let a):
            return "invalid forwarding rule \"\(a)\" (expected host:port, host:*, a.b.c.d/len:port or [v6/len]:port)"
        case .tooManyOutgoingConnections(let limit):
            return "too many outgoing TCP connections (the cap is \(limit): --tcp-max-outgoing / transports.tcp.max_outgoing)"
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

/// When the peer must have finished what it started: the version byte after connecting, then each frame once its
/// first byte has arrived (finding F2 in docs/security.md).
///
/// A frame of `length` bytes is allowed `frameTimeout + length / minimumRate` from its first byte (the first byte of
/// its length prefix); only `frameTimeout` while the prefix itself is incomplete. Between frames there is no deadline
/// (an idle connection is fine; keepalive finds dead peers). Pure: it reads the same inbound bytes as
/// ``OckamTCPFrameDecoder`` and returns how the connection's single deadline changes; the caller owns the timer.
public struct OckamTCPReadDeadline: Sendable {
    public struct Limits: Sendable, Equatable {
        /// How long a peer may take to send its version byte.
        public var versionTimeout: Duration
        /// Time every frame is allowed from its first byte, whatever its length.
        public var frameTimeout: Duration
        /// Bytes per second a frame must at least average beyond ``frameTimeout`` (≥ 1).
        public var frameMinimumRate: Int

        public init(versionTimeout: Duration, frameTimeout: Duration, frameMinimumRate: Int) {
            self.versionTimeout = versionTimeout
            self.frameTimeout = frameTimeout
            self.frameMinimumRate = max(1, frameMinimumRate)
        }

        /// The time a frame of `length` bytes is allowed from its first byte.
        public func allowance(forFrameOf length: UInt32) -> Duration {
            frameTimeout + .seconds(Int64(length)) / frameMinimumRate
        }
    }

    /// How the connection's read deadline changes.
    public enum Change: Sendable, Equatable {
        case unchanged
        case arm(NIODeadline)
        case cancel
    }

    private enum Phase: Sendable {
        case awaitingVersion
        case betweenFrames
        case lengthPrefix(bytes: UInt32, count: Int, started: NIODeadline)
        case body(remaining: UInt32, length: UInt32)
    }

    public let limits: Limits
    private var phase = Phase.awaitingVersion

    public init(limits: Limits) { self.limits = limits }

    /// The connection is up: the version byte is due.
    public func start(now: NIODeadline) -> Change { .arm(now + TimeAmount(limits.versionTimeout)) }

    /// Accounts for bytes received at `now`; returns the resulting change of deadline (the last one wins).
    public mutating func received(_ bytes: ByteBufferView, now: NIODeadline) -> Change {
        var change = Change.unchanged
        var index = bytes.startIndex
        while index < bytes.endIndex {
            switch phase {
            case .awaitingVersion:
                index += 1
                phase = .betweenFrames
                change = .cancel
            case .betweenFrames:
                phase = .lengthPrefix(bytes: 0, count: 0, started: now)
                change = .arm(now + TimeAmount(limits.frameTimeout))
            case .lengthPrefix(var value, var count, let started):
                while count < 4 && index < bytes.endIndex {
                    value = value << 8 | UInt32(bytes[index])
                    count += 1
                    index += 1
                }
                if count < 4 {
                    phase = .lengthPrefix(bytes: value, count: count, started: started)
                } else if value == 0 {
                    phase = .betweenFrames  // the decoder rejects it
                    change = .cancel
                } else {
                    phase = .body(remaining: value, length: value)
                    change = .arm(started + TimeAmount(limits.allowance(forFrameOf: value)))
                }
            case .body(let remaining, let length):
                let taken = UInt32(min(Int(remaining), bytes.endIndex - index))
                index += Int(taken)
                if taken == remaining {
                    phase = .betweenFrames
                    change = .cancel
                } else {
                    phase = .body(remaining: remaining - taken, length: length)
                }
            }
        }
        return change
    }

    /// Bytes of the frame in progress received so far (its length prefix included): what the decoder holds for it.
    /// Zero between frames.
    public var unfinishedBytes: Int {
        switch phase {
        case .awaitingVersion, .betweenFrames: return 0
        case .lengthPrefix(_, let count, _): return count
        case .body(let remaining, let length): return 4 + Int(length - remaining)
        }
    }

    /// The error to report when the armed deadline passes.
    public var timeoutError: TCPTransportError {
        switch phase {
        case .awaitingVersion: return .versionTimeout
        case .lengthPrefix: return .frameTimeout(length: nil, allowed: limits.frameTimeout)
        case .body(_, let length): return .frameTimeout(length: length, allowed: limits.allowance(forFrameOf: length))
        case .betweenFrames: return .connectionClosed  // no deadline is armed between frames
        }
    }
}
