import NIOCore
import NIOEmbedded
import Testing

@testable import EdgeTransportTCP

@Suite("TCP framing")
struct FramingTests {
    func makeChannel(maxFrameSize: Int = ockamTCPMaxFrameSize) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(OckamTCPFrameDecoder(maxFrameSize: maxFrameSize)))
        try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(OckamTCPFrameEncoder()))
        return channel
    }

    func frames(_ channel: EmbeddedChannel) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        while let frame = try channel.readInbound(as: ByteBuffer.self) { out.append(Array(frame.readableBytesView)) }
        return out
    }

    @Test func decodesVersionThenFramesSplitAtEveryByte() throws {
        // version, frame "abc", heartbeat body 83 80 80 40
        let stream: [UInt8] = [0x01, 0, 0, 0, 3, 0x61, 0x62, 0x63, 0, 0, 0, 4, 0x83, 0x80, 0x80, 0x40]
        for split in 0...stream.count {
            let channel = try makeChannel()
            var first = channel.allocator.buffer(capacity: 32)
            first.writeBytes(stream[..<split])
            try channel.writeInbound(first)
            var second = channel.allocator.buffer(capacity: 32)
            second.writeBytes(stream[split...])
            try channel.writeInbound(second)
            #expect(try frames(channel) == [[0x61, 0x62, 0x63], [0x83, 0x80, 0x80, 0x40]], "split at \(split)")
            #expect(try channel.finish().isClean)
        }
    }

    @Test func wrongVersionByteIsRejected() throws {
        let channel = try makeChannel()
        var buffer = channel.allocator.buffer(capacity: 8)
        buffer.writeBytes([0x02, 0, 0, 0, 1, 0])
        #expect(throws: TCPTransportError.wrongProtocolVersion(2)) { try channel.writeInbound(buffer) }
    }

    @Test func httpGarbageIsRejectedAtTheFirstByte() throws {
        let channel = try makeChannel()
        var buffer = channel.allocator.buffer(capacity: 32)
        buffer.writeString("GET / HTTP/1.1\r\n\r\n")
        #expect(throws: TCPTransportError.wrongProtocolVersion(UInt8(ascii: "G"))) { try channel.writeInbound(buffer) }
    }

    @Test func oversizeLengthIsRejectedBeforeBuffering() throws {
        let channel = try makeChannel(maxFrameSize: 1024)
        var buffer = channel.allocator.buffer(capacity: 8)
        buffer.writeBytes([0x01, 0, 0, 0x04, 0x01])  // 1025
        #expect(throws: TCPTransportError.frameTooLarge(1025, limit: 1024)) { try channel.writeInbound(buffer) }
    }

    @Test func defaultLimitIsSixteenMebibytes() throws {
        let channel = try makeChannel()
        var buffer = channel.allocator.buffer(capacity: 8)
        buffer.writeBytes([0x01, 0x01, 0x00, 0x00, 0x01])  // 16 MiB + 1
        #expect(throws: TCPTransportError.frameTooLarge(16_777_217, limit: 16_777_216)) {
            try channel.writeInbound(buffer)
        }
        // Exactly 16 MiB is a legal length (we only check the header here: nothing is allocated for it).
        let ok = try makeChannel()
        var header = ok.allocator.buffer(capacity: 8)
        header.writeBytes([0x01, 0x01, 0x00, 0x00, 0x00])
        try ok.writeInbound(header)
        #expect(try frames(ok).isEmpty)
    }

    @Test func zeroLengthFrameIsRejected() throws {
        let channel = try makeChannel()
        var buffer = channel.allocator.buffer(capacity: 8)
        buffer.writeBytes([0x01, 0, 0, 0, 0])
        #expect(throws: TCPTransportError.emptyFrame) { try channel.writeInbound(buffer) }
    }

    @Test func peerClosingMidFrameIsReported() throws {
        let channel = try makeChannel()
        var buffer = channel.allocator.buffer(capacity: 16)
        buffer.writeBytes([0x01, 0, 0, 0, 10, 1, 2, 3])
        try channel.writeInbound(buffer)
        #expect(throws: TCPTransportError.truncatedFrame(bufferedBytes: 7)) { _ = try channel.finish() }
    }

    @Test func encoderWritesVersionAndLengthPrefixedFrames() throws {
        let channel = try makeChannel()
        try channel.writeOutbound(OckamTCPOutbound.version)
        try channel.writeOutbound(OckamTCPOutbound.frame(channel.allocator.buffer(bytes: [0x83, 0x80, 0x80, 0x40])))
        var out: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { out += Array(buffer.readableBytesView) }
        // The spec's heartbeat example: 00000004 83 80 80 40, after the version byte.
        #expect(out == [0x01, 0, 0, 0, 4, 0x83, 0x80, 0x80, 0x40])
    }

    @Test func encoderRefusesEmptyFrames() throws {
        let channel = try makeChannel()
        #expect(throws: TCPTransportError.emptyFrame) {
            try channel.writeOutbound(OckamTCPOutbound.frame(channel.allocator.buffer(capacity: 0)))
        }
    }

    @Test func hostPortSplitting() throws {
        #expect(try TCPTransport.splitHostPort("127.0.0.1:4000") == ("127.0.0.1", 4000))
        #expect(try TCPTransport.splitHostPort("[::1]:4000") == ("::1", 4000))
        #expect(try TCPTransport.splitHostPort("example.com:443") == ("example.com", 443))
        #expect(try TCPTransport.splitHostPort("127.0.0.1:0", allowingPortZero: true) == ("127.0.0.1", 0))
        for bad in ["nohost", ":4000", "h:0", "h:65536", "h:x", "h:+80", "h:-1"] {  // (Int() alone takes a sign)
            #expect(throws: TCPTransportError.invalidPeerAddress(bad)) { _ = try TCPTransport.splitHostPort(bad) }
        }
    }
}
