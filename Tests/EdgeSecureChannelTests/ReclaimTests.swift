import EdgeNode
import EdgeRouting
import Testing

@testable import EdgeSecureChannel

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

@Suite("Secure channel reclaiming (F3)", .serialized)
struct ReclaimTests {
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
        let reply = try await a.node.request(to: [channel.encryptor, .local("echo")], payload: [1], timeout: .seconds(10))
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
}
