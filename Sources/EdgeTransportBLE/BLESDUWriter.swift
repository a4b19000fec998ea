// The outbound NIO handler that writes exactly one SDU per write(2) on a packet socket.
import NIOCore

/// The SDUs of one routing message, written in order by ``BLESDUWriter``.
struct BLEOutboundMessage: Sendable {
    var sdus: [ByteBuffer]
}

/// Writes the SDUs of each ``BLEOutboundMessage`` one at a time: `write` + `flush` of one buffer, and the next only
/// when the previous write completed.
///
/// NIO's pending-writes manager `writev`s every flushed buffer together, which on a SEQPACKET socket merges
/// them into one packet (swift-style guide §2.5). Keeping exactly one buffer outstanding makes each SDU its own
/// syscall and so its own L2CAP SDU. The message's promise completes after its last SDU is written.
///
/// ### Invariants
/// - No buffer larger than `sduLimit` is ever passed down; such a message fails with
///   ``BLETransportError/sduTooLarge(size:limit:)`` before any of its SDUs is written.
/// - At most one SDU is in flight below this handler.
final class BLESDUWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = BLEOutboundMessage
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var sdus: [ByteBuffer]
        var next: Int
        var promise: EventLoopPromise<Void>?
    }

    let sduLimit: Int
    private let onSDUWritten: @Sendable (Int) -> Void
    private var queue: [Pending] = []
    private var head = 0
    private var inFlight = false
    private var pumping = false
    private var failure: (any Error)?

    /// - Parameters:
    ///   - sduLimit: the largest SDU allowed on this link.
    ///   - onSDUWritten: called on the event loop with the size of every SDU written (counters).
    init(sduLimit: Int, onSDUWritten: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.sduLimit = sduLimit
        self.onSDUWritten = onSDUWritten
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let message = unwrapOutboundIn(data)
        if let failure {
            promise?.fail(failure)
            return
        }
        if let oversize = message.sdus.first(where: { $0.readableBytes > sduLimit }) {
            promise?.fail(BLETransportError.sduTooLarge(size: oversize.readableBytes, limit: sduLimit))
            return
        }
        guard !message.sdus.isEmpty else {
            promise?.succeed(())
            return
        }
        queue.append(Pending(sdus: message.sdus, next: 0, promise: promise))
        pump(context: context)
    }

    /// Flushes are driven by ``pump(context:)`` (one per SDU).
    func flush(context: ChannelHandlerContext) {}

    func handlerRemoved(context: ChannelHandlerContext) {
        failAll(BLETransportError.linkClosed)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all || mode == .output { failAll(BLETransportError.linkClosed) }
        context.close(mode: mode, promise: promise)
    }

    /// Writes queued SDUs one by one. Write completions that happen synchronously (inside `writeAndFlush`) re-enter
    /// here and only advance state; the outer loop then continues, so the stack stays flat for any SDU count.
    private func pump(context: ChannelHandlerContext) {
        guard !pumping else { return }
        pumping = true
        defer { pumping = false }
        while !inFlight, head < queue.count {
            let sdu = queue[head].sdus[queue[head].next]
            inFlight = true
            let written = context.eventLoop.makePromise(of: Void.self)
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let size = sdu.readableBytes
            written.futureResult.whenComplete { result in
                let (handler, context) = loopBound.value
                handler.completed(result, size: size, context: context)
            }
            context.writeAndFlush(wrapOutboundOut(sdu), promise: written)
        }
    }

    private func completed(_ result: Result<Void, any Error>, size: Int, context: ChannelHandlerContext) {
        inFlight = false
        switch result {
        case .success:
            onSDUWritten(size)
            guard head < queue.count else { return }
            queue[head].next += 1
            if queue[head].next == queue[head].sdus.count {
                let promise = queue[head].promise
                queue[head].promise = nil
                head += 1
                if head == queue.count {
                    queue.removeAll(keepingCapacity: true)
                    head = 0
                }
                promise?.succeed(())
            }
            pump(context: context)
        case .failure(let error):
            failAll(error)
        }
    }

    private func failAll(_ error: any Error) {
        if failure == nil { failure = error }
        let pending = queue[head...]
        queue = []
        head = 0
        for item in pending { item.promise?.fail(error) }
    }
}
