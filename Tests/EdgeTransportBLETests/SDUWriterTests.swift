import NIOCore
import NIOEmbedded
import Testing

@testable import EdgeTransportBLE

@Suite("one SDU per write")
struct SDUWriterTests {
    func buffers(_ sizes: [Int], _ channel: EmbeddedChannel) -> [ByteBuffer] {
        sizes.enumerated().map { i, size in channel.allocator.buffer(bytes: [UInt8](repeating: UInt8(i), count: size)) }
    }

    @Test func writesEachSDUAsItsOwnFlushedBuffer() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(BLESDUWriter(sduLimit: 100))
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.write(BLEOutboundMessage(sdus: buffers([100, 100, 7], channel)), promise: promise)
        var sizes: [Int] = []
        while let sdu = try channel.readOutbound(as: ByteBuffer.self) { sizes.append(sdu.readableBytes) }
        #expect(sizes == [100, 100, 7])
        try promise.futureResult.wait()
        #expect(try channel.finish().isClean)
    }

    @Test func refusesAnSDUOverTheLimitBeforeWritingAnything() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(BLESDUWriter(sduLimit: 100))
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.write(BLEOutboundMessage(sdus: buffers([100, 101], channel)), promise: promise)
        #expect(throws: BLETransportError.sduTooLarge(size: 101, limit: 100)) { try promise.futureResult.wait() }
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        _ = try channel.finish()
    }

    /// Over a real packet socket pair, NIO would merge flushed buffers with writev; the writer keeps them apart.
    @Test func keepsMessagesInOrderAndCountsSDUs() throws {
        let counted = CounterBox()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            BLESDUWriter(sduLimit: 50) { size in counted.update { $0.sdusOut += 1; $0.bytesOut += UInt64(size) } })
        let first = channel.eventLoop.makePromise(of: Void.self)
        let second = channel.eventLoop.makePromise(of: Void.self)
        channel.write(BLEOutboundMessage(sdus: buffers([50, 10], channel)), promise: first)
        channel.write(BLEOutboundMessage(sdus: buffers([20], channel)), promise: second)
        var sizes: [Int] = []
        while let sdu = try channel.readOutbound(as: ByteBuffer.self) { sizes.append(sdu.readableBytes) }
        #expect(sizes == [50, 10, 20])
        try first.futureResult.wait()
        try second.futureResult.wait()
        #expect(counted.snapshot.sdusOut == 3 && counted.snapshot.bytesOut == 80)
        _ = try channel.finish()
    }
}
