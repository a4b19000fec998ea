import CBlueZ
import EdgeTestSupport
import Testing

@testable import EdgeTransportBLE

#if canImport(Glibc)
import Glibc
#endif

/// The receive side of a link (BLELinkReader): what each recv outcome means under Linux's L2CAP semantics, and the
/// reader's backpressure and shutdown on SEQPACKET stand-ins.
@Suite("BLE link reader")
struct LinkReaderTests {
    let hup = Int16(POLLHUP)
    let err = Int16(POLLERR)
    let rdhup = cbluez_pollrdhup()
    let pollin = Int16(POLLIN)

    /// The case that killed the gateway under NIO: the kernel disconnected the channel itself (after an SDU over our
    /// MTU, say), so poll reports a hang-up while recv has nothing and no end of file.
    @Test func aHangUpWithNothingToReadIsTheKernelClosingTheChannel() {
        #expect(BLELinkReader.classify(received: -1, errno: EAGAIN, revents: hup, receiveMTU: 672)
            == .ended(.closedByKernel(errno: 0)))
        #expect(BLELinkReader.classify(received: -1, errno: EAGAIN, revents: err | pollin, receiveMTU: 672)
            == .ended(.closedByKernel(errno: 0)))
        #expect(BLELinkReader.classify(received: -1, errno: EAGAIN, revents: rdhup, receiveMTU: 672)
            == .ended(.closedByKernel(errno: 0)))
        // Plain readability with nothing to read (a spurious wakeup) is no reason to close.
        #expect(BLELinkReader.classify(received: -1, errno: EAGAIN, revents: pollin, receiveMTU: 672) == .wait)
    }

    @Test func recvOutcomes() {
        #expect(BLELinkReader.classify(received: 672, errno: 0, revents: pollin, receiveMTU: 672) == .sdu(size: 672))
        #expect(BLELinkReader.classify(received: 1, errno: 0, revents: pollin | hup, receiveMTU: 672) == .sdu(size: 1))
        // MSG_TRUNC gives the real length: one byte over the MTU is seen.
        #expect(BLELinkReader.classify(received: 673, errno: 0, revents: pollin, receiveMTU: 672)
            == .ended(.oversizeSDU(size: 673, limit: 672)))
        #expect(BLELinkReader.classify(received: 0, errno: 0, revents: pollin, receiveMTU: 672) == .endOfFileOrEmpty)
        #expect(BLELinkReader.classify(received: -1, errno: EINTR, revents: pollin, receiveMTU: 672) == .retry)
        // A link that was lost is closed (POLLHUP) and says why.
        #expect(BLELinkReader.classify(received: -1, errno: ETIMEDOUT, revents: err | hup, receiveMTU: 672)
            == .ended(.failed(call: "recv", errno: ETIMEDOUT)))
        // Before the peer answers the kernel's own disconnect, the socket has the error but no hang-up yet.
        #expect(BLELinkReader.classify(received: -1, errno: ECONNRESET, revents: err, receiveMTU: 672)
            == .ended(.closedByKernel(errno: ECONNRESET)))
    }

    @Test func endsAreDescribedForOperators() {
        #expect(BLELinkEnd.closedByPeer.description == "closed by peer")
        #expect(BLELinkEnd.emptySDU.description == "framing violation: empty SDU")
        #expect(BLELinkEnd.closedByKernel(errno: 0).description.hasPrefix("closed by the kernel (an L2CAP disconnect of its own"))
        #expect(BLELinkEnd.closedByKernel(errno: ECONNRESET).description.contains("ECONNRESET"))
        #expect(BLELinkEnd.failed(call: "recv", errno: ETIMEDOUT).description.contains("ETIMEDOUT"))
    }

    /// SDUs keep their boundaries and order; end of file after them is the peer closing.
    @Test func readsSDUsThenEndOfFile() async throws {
        let (a, b) = try seqpacketPair()
        let reader = try BLELinkReader.start(fd: a, receiveMTU: 100)
        let peer = RawPeer(fd: b)
        #expect(peer.send([1]) == 1)
        #expect(peer.send([UInt8](repeating: 2, count: 100)) == 100)
        shutdown(b, Int32(SHUT_WR))
        guard case .sdu(let first) = await reader.next(), case .sdu(let second) = await reader.next() else {
            Issue.record("expected two SDUs")
            return
        }
        #expect(first == [1])
        #expect(second == [UInt8](repeating: 2, count: 100))
        guard case .end(let end) = await reader.next() else {
            Issue.record("expected the end")
            return
        }
        #expect(end == .closedByPeer)
    }

    /// A consumer that does not take SDUs stops the reading: the rest stay in the socket (where, on L2CAP, they hold
    /// back the peer's credits) until it does.
    @Test func aFullQueueStopsReadingUntilTheConsumerTakesAnSDU() async throws {
        let (a, b) = try seqpacketPair()
        let reader = try BLELinkReader.start(fd: a, receiveMTU: 16, capacity: 2)
        let peer = RawPeer(fd: b)
        for i in 0..<5 { #expect(peer.send([UInt8(i)]) == 1) }
        // The reader takes two and waits for room; the other three stay in the socket (SIOCINQ: 3 bytes).
        try await eventually("the reader waits for room") { reader.waitingForRoom }
        #expect(reader.queued == 2)
        #expect(unreadBytes(a) == 3)
        var got: [[UInt8]] = []
        for _ in 0..<5 {
            guard case .sdu(let sdu) = await reader.next() else { break }
            got.append(sdu)
        }
        #expect(got == [[0], [1], [2], [3], [4]])
        reader.stop()
        guard case .end(let end) = await reader.next() else {
            Issue.record("expected the end")
            return
        }
        #expect(end == .stopped)
    }

    /// stop() ends a reader waiting on a quiet link, and the reader closes its descriptor (the peer sees the close).
    @Test func stopEndsTheReaderAndClosesTheDescriptor() async throws {
        let (a, b) = try seqpacketPair()
        let reader = try BLELinkReader.start(fd: a, receiveMTU: 16)
        let peer = RawPeer(fd: b)
        reader.stop()
        guard case .end(let end) = await reader.next() else {
            Issue.record("expected the end")
            return
        }
        #expect(end == .stopped)
        #expect(await peer.receive() == nil)
        #expect(peer.send([1]) < 0)
    }
}

/// Bytes waiting in a socket's receive queue (SIOCINQ; on AF_UNIX SEQPACKET all packets' bytes).
private func unreadBytes(_ fd: Int32) -> Int32 {
    var count: Int32 = 0
    return ioctl(fd, UInt(TIOCINQ), &count) == 0 ? count : -1
}
