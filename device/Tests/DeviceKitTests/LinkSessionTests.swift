// The device's link session against the rules of docs/serial-framing.md §5.3.
import Testing

@testable import DeviceKit

@Suite struct LinkSessionTests {
    let gatewayHello = LinkHello(maxFrameSize: 16384, nonce: 0x6A7E, keepaliveMilliseconds: 10_000)

    @Test func repeatsItsHelloWithBackoffUntilAnswered() {
        var session = LinkSession(seed: 1)
        guard case .hello(let nonce) = session.start(now: 0).send else { Issue.record("no hello"); return }
        #expect(nonce != 0)
        #expect(session.tick(now: 249).send == nil)
        #expect(session.tick(now: 250).send == .hello(nonce: nonce))  // same nonce while handshaking
        #expect(session.tick(now: 749).send == nil)
        #expect(session.tick(now: 750).send == .hello(nonce: nonce))  // 500 ms
        var now: UInt32 = 750
        var last: UInt32 = 750
        var intervals: [UInt32] = []
        while intervals.count < 6 {
            now += 1
            if session.tick(now: now).send != nil {
                intervals.append(now - last)
                last = now
            }
        }
        #expect(intervals == [1000, 2000, 4000, 4000, 4000, 4000])
    }

    @Test func aStaleAckIsDroppedAndTheRightOneLinks() {
        var session = LinkSession(seed: 2)
        _ = session.start(now: 0)
        var stale = gatewayHello
        stale.peerNonce = session.nonce &+ 1
        #expect(session.receiveHelloAck(stale, now: 10).dropped == .staleHelloAck)
        #expect(!session.isLinked)
        var ack = gatewayHello
        ack.peerNonce = session.nonce
        let actions = session.receiveHelloAck(ack, now: 20)
        #expect(actions.linkUp && !actions.linkDown && actions.send == nil)
        #expect(session.isLinked && session.peerMaxFrameSize == 16384)
    }

    @Test func aGatewayRestartRestartsTheSessionAndARepeatDoesNot() {
        var session = LinkSession(seed: 3)
        _ = session.start(now: 0)
        let first = session.receiveHello(gatewayHello, now: 5)
        #expect(first.linkUp && first.send == .helloAck(nonce: session.nonce, peerNonce: 0x6A7E))
        let ourNonce = session.nonce
        let repeated = session.receiveHello(gatewayHello, now: 6)
        #expect(!repeated.linkUp && !repeated.linkDown && repeated.send != nil)
        var restarted = gatewayHello
        restarted.nonce = 0x7777
        let again = session.receiveHello(restarted, now: 7)
        #expect(again.linkDown && again.linkUp && again.send == .helloAck(nonce: ourNonce, peerNonce: 0x7777))
        #expect(session.nonce == ourNonce)  // we did not restart: same nonce (§5.3)
    }

    @Test func keepalivesWhenIdleAndTimesASilentGatewayOut() {
        var session = LinkSession(configuration: .init(keepaliveMilliseconds: 1_000), seed: 4)
        _ = session.start(now: 0)
        var hello = gatewayHello
        hello.keepaliveMilliseconds = 2_000
        _ = session.receiveHello(hello, now: 0)
        #expect(session.tick(now: 999).send == nil)
        #expect(session.tick(now: 1_000).send == .keepalive)
        let allowed1 = session.prepareData(frameLength: 40, now: 1_500)
        #expect(allowed1)
        #expect(session.tick(now: 2_499).send == nil)  // the DATA frame counted as sending
        #expect(session.tick(now: 2_500).send == .keepalive)
        _ = session.receiveKeepalive(now: 3_000)
        #expect(session.millisecondsUntilDeadline(now: 3_000) == 500)
        let old = session.nonce
        let down = session.tick(now: 9_000)  // 3 × 2 s after the last frame from the gateway
        #expect(down.linkDown)
        guard case .hello(let fresh) = down.send else { Issue.record("no hello"); return }
        #expect(fresh != old && !session.isLinked)
    }

    @Test func dataOutsideASessionIsDroppedWithARateLimitedHello() {
        var session = LinkSession(seed: 5)
        _ = session.start(now: 0)
        let first = session.receiveData(now: 100)
        #expect(first.dropped == .notLinked && first.send == nil && !first.deliver)
        let second = session.receiveData(now: 260)
        #expect(second.dropped == .notLinked && second.send == .hello(nonce: session.nonce))
        #expect(session.receiveKeepalive(now: 300).send == nil)
    }

    @Test func refusesDataLargerThanTheGatewayTakes() {
        var session = LinkSession(seed: 6)
        let allowed2 = session.prepareData(frameLength: 10, now: 0)
        #expect(!allowed2)  // not linked
        _ = session.start(now: 0)
        var small = gatewayHello
        small.maxFrameSize = 64
        _ = session.receiveHello(small, now: 0)
        let allowed3 = session.prepareData(frameLength: 64, now: 1)
        #expect(allowed3)
        let allowed4 = session.prepareData(frameLength: 65, now: 1)
        #expect(!allowed4)
    }

    @Test func timeWrapsAround() {
        var session = LinkSession(seed: 7)
        _ = session.start(now: UInt32.max - 100)
        #expect(session.tick(now: 149).send != nil)  // 250 ms later, across the wrap
    }
}
