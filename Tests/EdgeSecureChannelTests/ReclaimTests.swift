import EdgeSync
import EdgeNode
import EdgeRouting
import EdgeTestSupport
import Testing

@testable import EdgeSecureChannel

/// A clock the test moves by hand (idle timeouts and "least recently used" without waiting).
final class ManualClock: Sendable {
    private let instant = EdgeMutex(ContinuousClock.now)
    func advance(by duration: Duration) { instant.withLock { $0 += duration } }
    var now: @Sendable () -> ContinuousClock.Instant { { self.instant.withLock { $0 } } }
}

/// Admission of half-open handshakes (finding F3), as a pure value.
@Suite("Half-open handshake admission")
struct HalfOpenHandshakesTests {
    let a = Address.local("connection-a")
    let b = Address.local("connection-b")
    func d(_ n: Int) -> Address { .local("decryptor-\(n)") }

    @Test func aSourceAtItsLimitIsRefusedOthersAreNot() {
        var table = HalfOpenHandshakes(cap: 10, perSourceCap: 2)
        #expect(table.admit(d(1), from: a) == .admitted)
        #expect(table.admit(d(2), from: a) == .admitted)
        #expect(table.admit(d(3), from: a) == .refusedSourceFull)
        #expect(table.admit(d(4), from: b) == .admitted)
        table.release(d(1))
        #expect(table.admit(d(5), from: a) == .admitted)
        #expect(table.count == 3)
    }

    @Test func aFullListenerEvictsTheOldestOfTheBusiestSource() {
        var table = HalfOpenHandshakes(cap: 4, perSourceCap: 4)
        #expect(table.admit(d(1), from: b) == .admitted)
        for n in 2...4 { #expect(table.admit(d(n), from: a) == .admitted) }
        // Full: a newcomer from b evicts a's oldest, not b's (older) one.
        #expect(table.admit(d(5), from: b) == .admittedEvicting([d(2)]))
        #expect(table.count(from: a) == 2 && table.count(from: b) == 2)
        // A tie: the source whose oldest handshake is oldest (b, with d1).
        #expect(table.admit(d(6), from: .local("c")) == .admittedEvicting([d(1)]))
        #expect(table.count == 4)
        table.release(d(1))  // evicted already: no effect
        #expect(table.count == 4)
    }

    @Test func loweringTheCapEvictsDownToIt() {
        var table = HalfOpenHandshakes(cap: 4, perSourceCap: 4)
        for n in 1...4 { _ = table.admit(d(n), from: a) }
        table.cap = 2
        #expect(table.admit(d(5), from: b) == .admittedEvicting([d(1), d(2), d(3)]))
        #expect(table.count == 2)
    }
}

@Suite("Secure channel reclaiming (F3, F4)", .serialized)
struct ReclaimTests {
    /// A responder `c` whose channels idle out after 60 s on a manual clock, and an initiator `a` (no idle timeout).
    static func idlePair() async throws -> (ManualClock, Peer, Peer) {
        let clock = ManualClock()
        let c = try await Peer.start("c", listener: SecureChannelOptions(idleTimeout: .seconds(60)), clock: clock.now)
        return (clock, c, try await Peer.start("a", listener: nil))
    }

    @Test func aFloodFromOneSourceDoesNotStopAHandshakeFromAnother() async throws {
        let cap = 16
        let c = try await Peer.start(
            "c", listener: SecureChannelOptions(handshakeTimeout: .seconds(30), maxHalfOpenHandshakes: cap, maxHalfOpenHandshakesPerSource: cap))
        let (_, sink) = AsyncStream<LocalMessage>.makeStream()
        try c.node.startWorker(Inbox(continuation: sink), at: .local("attacker"))
        func flood(_ n: Int) async throws {
            for _ in 0..<n {
                var initiator = try SecureChannelHandshake(role: .initiator, local: try .ephemeral(), trust: TrustContext())
                try await c.node.send(LocalMessage(onwardRoute: [.local("api")], returnRoute: [.local("attacker")], payload: try initiator.start()))
            }
        }
        try await flood(100)
        try await eventually("the flood fills the listener") { c.channels.halfOpenHandshakes(listener: "api") == cap }
        // A legitimate client over TCP while the flood goes on.
        let a = try await Peer.start("a", listener: nil)
        let attacker = Task { try await flood(400) }
        let channel = try await a.channels.createChannel(to: [.tcp(c.address), .local("api")])
        let reply = try await a.node.request(to: [channel.encryptor, .local("echo")], payload: [1], timeout: .seconds(30))
        #expect(reply.payload == [1])
        try await attacker.value
        #expect(c.channels.halfOpenHandshakes(listener: "api") <= cap, "memory stays bounded")
        // Each flooded message 1 is in progress, was evicted, or was refused (the attacker at its per-source limit).
        try await eventually("every flooded message 1 accounted") {
            let counters = c.channels.counters
            return counters.handshakesEvicted + counters.handshakesDroppedOverCap
                + UInt64(c.channels.halfOpenHandshakes(listener: "api")) == 500
        }
        #expect(c.channels.counters.handshakesEvicted >= 1, "the legitimate handshake took an attacker's slot")
        #expect(c.channels.counters.handshakesCompleted == 1)
        await a.stop()
        await c.stop()
    }

    @Test func idleChannelsAreClosedWithACloseAndCounted() async throws {
        let (clock, c, a) = try await Self.idlePair()
        let channel = try await a.channels.createChannel(
            to: [.tcp(c.address), .local("api")], options: SecureChannelOptions(idleTimeout: nil))
        _ = try await a.node.request(to: [channel.encryptor, .local("echo")], payload: [1], timeout: .seconds(30))
        clock.advance(by: .seconds(40))
        #expect(await c.channels.closeIdleChannels().isEmpty)
        _ = try await a.node.request(to: [channel.encryptor, .local("echo")], payload: [2], timeout: .seconds(30))  // used at 40 s
        clock.advance(by: .seconds(50))  // 90 s: idle for 50 s
        #expect(await c.channels.closeIdleChannels().isEmpty)
        clock.advance(by: .seconds(11))  // idle for 61 s
        await c.channels.closeIdleChannels()  // (or the periodic check, if it ran just now: the same)
        #expect(c.channels.channels.isEmpty)
        #expect(c.channels.counters.channelsClosedIdle == 1)
        try await eventually("the initiator received Close") {
            a.channels.counters.closesReceived == 1 && a.channels.channel(channel.encryptor) == nil
        }
        await a.stop()
        await c.stop()
    }

    @Test func idleChannelsAreClosedWithoutBeingAsked() async throws {
        let c = try await Peer.start("c", listener: SecureChannelOptions(idleTimeout: .milliseconds(300)))
        let a = try await Peer.start("a", listener: nil)
        let channel = try await a.channels.createChannel(
            to: [.tcp(c.address), .local("api")], options: SecureChannelOptions(idleTimeout: nil))
        try await eventually("the responder closed its idle channel and told the initiator") {
            c.channels.counters.channelsClosedIdle == 1 && a.channels.channel(channel.encryptor) == nil
        }
        #expect(c.channels.channels.isEmpty)
        await a.stop()
        await c.stop()
    }

    @Test func aListenerAtItsCapClosesTheLeastRecentlyUsedChannel() async throws {
        let clock = ManualClock()
        let c = try await Peer.start("c", listener: SecureChannelOptions(maxChannels: 2), clock: clock.now)
        let a = try await Peer.start("a", listener: nil)
        func open(_ n: Int) async throws -> SecureChannelInfo {
            let channel = try await a.channels.createChannel(to: [.tcp(c.address), .local("api")])
            try await eventually("channel \(n) up on c") { c.channels.counters.handshakesCompleted == UInt64(n) }
            clock.advance(by: .seconds(1))  // channel n was established (last used) at n - 1 s
            return channel
        }
        func echo(_ channel: SecureChannelInfo) async throws -> [UInt8] {
            try await a.node.request(to: [channel.encryptor, .local("echo")], payload: [7], timeout: .seconds(30)).payload
        }
        let first = try await open(1)
        let second = try await open(2)
        #expect(try await echo(first) == [7])  // used at 2 s: second (1 s) is now the least recently used
        let third = try await open(3)
        try await eventually("the least recently used (second) was closed on both sides") {
            c.channels.channels.count == 2 && a.channels.channel(second.encryptor) == nil
        }
        #expect(c.channels.counters.channelsEvictedOverCap == 1)
        #expect(a.channels.counters.closesReceived == 1)
        #expect(try await echo(first) == [7])
        #expect(try await echo(third) == [7])
        await a.stop()
        await c.stop()
    }

    @Test func aSessionReestablishesAfterTheResponderReclaimedItsChannel() async throws {
        let (clock, c, a) = try await Self.idlePair()
        let session = Session(
            name: "uplink",
            options: Session.Options(
                pingInterval: .milliseconds(50), pingTimeout: .seconds(2), failuresBeforeReplace: 1,
                initialBackoff: .milliseconds(10)),
            logger: a.node.logger,
            establish: {
                let channel = try await a.channels.createChannel(
                    to: [.tcp(c.address), .local("api")], options: SecureChannelOptions(idleTimeout: nil))
                return [channel.encryptor]
            },
            ping: { route in
                _ = try await a.node.request(to: route.appending([.local("echo")]), payload: [1], timeout: .seconds(2))
            })
        session.start()
        try await eventually("session up, and its channel established on c") {
            session.status == .up && c.channels.channels.count == 1
        }
        let before = try #require(session.route)
        // The responder's clock jumps past the idle timeout: it reclaims the channel. (A ping decrypted between the
        // jump and the check makes the channel used "now" again: jump again.)
        for _ in 0..<100 where c.channels.counters.channelsClosedIdle == 0 {
            clock.advance(by: .seconds(61))
            await c.channels.closeIdleChannels()
        }
        #expect(c.channels.counters.channelsClosedIdle == 1)
        try await eventually("session replaced its channel", within: .seconds(20)) {
            session.replacements == 1 && session.status == .up && session.route != before
        }
        let after = try #require(session.route)
        let reply = try await a.node.request(to: after.appending([.local("echo")]), payload: [3], timeout: .seconds(30))
        #expect(reply.payload == [3])
        #expect(c.channels.channels.count == 1)
        await session.stop()
        await a.stop()
        await c.stop()
    }

    @Test func closeThenTransportShutdownReachesThePeer() async throws {
        // What a short-lived CLI node does at exit (F4): close its channels, then shut its transport down at once.
        let c = try await Peer.start("c")
        for round in 1...10 {
            let a = try await Peer.start("a", listener: nil)
            _ = try await a.channels.createChannel(to: [.tcp(c.address), .local("api")])
            try await eventually("responder up") { c.channels.channels.count == 1 }
            await a.channels.closeAll()
            await a.tcp.shutdown()
            await a.node.shutdown()
            try await eventually("round \(round): the Close arrived") {
                c.channels.channels.isEmpty && c.channels.counters.closesReceived == UInt64(round)
            }
        }
        await c.stop()
    }
}
