// The pure link-session machine: handshake, retries, restarts, keepalive, limits (no I/O, injected time).
import EdgeTransportSerial
import Testing

/// Two machines wired back to back, with a lossy "line" under test control.
struct MachinePair {
    var a: SerialLinkMachine
    var b: SerialLinkMachine
    var now = ContinuousClock.now
    var eventsA: [SerialLinkMachine.Action] = []
    var eventsB: [SerialLinkMachine.Action] = []
    /// Frames dropped by the line, by direction.
    var dropAToB: (SerialFrame) -> Bool = { _ in false }
    var dropBToA: (SerialFrame) -> Bool = { _ in false }

    init(a: SerialLinkMachine.Configuration, b: SerialLinkMachine.Configuration, seedA: UInt64 = 1, seedB: UInt64 = 2) {
        self.a = SerialLinkMachine(configuration: a, seed: seedA)
        self.b = SerialLinkMachine(configuration: b, seed: seedB)
    }

    /// Delivers the frames in `actions` (from `fromA`) to the other machine, recursively.
    mutating func deliver(_ actions: [SerialLinkMachine.Action], fromA: Bool) {
        if fromA { eventsA += actions } else { eventsB += actions }
        for case .send(let frame) in actions {
            if fromA {
                if dropAToB(frame) { continue }
                let replies = b.receive(frame, now: now)
                deliver(replies, fromA: false)
            } else {
                if dropBToA(frame) { continue }
                let replies = a.receive(frame, now: now)
                deliver(replies, fromA: true)
            }
        }
    }

    mutating func advance(_ duration: Duration) {
        now += duration
        deliver(a.tick(now: now), fromA: true)
        deliver(b.tick(now: now), fromA: false)
    }

    static func ups(_ events: [SerialLinkMachine.Action]) -> Int {
        events.filter { if case .linkUp = $0 { return true } else { return false } }.count
    }
    static func downs(_ events: [SerialLinkMachine.Action]) -> [SerialLinkDownReason] {
        events.compactMap { if case .linkDown(let reason) = $0 { return reason } else { return nil } }
    }
}

@Suite("Serial link machine")
struct LinkMachineTests {
    let listener = SerialLinkMachine.Configuration(role: .listener, maxFrameSize: 4096, keepaliveInterval: nil)
    let connector = SerialLinkMachine.Configuration(role: .connector, maxFrameSize: 256, keepaliveInterval: nil)

    @Test func listenerAndConnectorHandshake() {
        var pair = MachinePair(a: listener, b: connector)
        pair.deliver(pair.a.start(now: pair.now), fromA: true)  // listener announces itself, nobody listens yet
        #expect(!pair.a.isLinked)
        pair.deliver(pair.b.start(now: pair.now), fromA: false)
        #expect(pair.a.isLinked && pair.b.isLinked)
        #expect(pair.a.peer?.maxFrameSize == 256)
        #expect(pair.b.peer?.maxFrameSize == 4096)
        #expect(MachinePair.ups(pair.eventsA) == 1 && MachinePair.ups(pair.eventsB) == 1)
        // Nothing else is scheduled without keepalives.
        #expect(pair.a.nextDeadline == nil && pair.b.nextDeadline == nil)
    }

    @Test func connectorRetriesWithBackoffUntilAnswered() {
        var pair = MachinePair(a: listener, b: connector)
        var line: [SerialFrame] = []
        // The listener is not running yet: the connector's hellos go nowhere.
        for case .send(let frame) in pair.b.start(now: pair.now) { line.append(frame) }
        var intervals: [Duration] = []
        var last = pair.now
        for _ in 0..<8 {
            guard let deadline = pair.b.nextDeadline else { break }
            intervals.append(deadline - last)
            last = deadline
            pair.now = deadline
            for case .send(let frame) in pair.b.tick(now: pair.now) { line.append(frame) }
        }
        #expect(line.count == 9)
        #expect(line.allSatisfy { if case .hello = $0 { return true } else { return false } })
        // 250 ms doubling, capped at 4 s.
        #expect(
            intervals == [
                .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(4), .seconds(4),
                .seconds(4),
            ])
        #expect(pair.b.helloRetries == 8)
        // All retries carry the same nonce; once the listener answers, the link is up.
        let nonces = Set(line.compactMap { if case .hello(let h) = $0 { return h.nonce } else { return nil } })
        #expect(nonces.count == 1)
        pair.deliver(pair.a.start(now: pair.now), fromA: true)
        if case .hello(let hello) = line.last! {
            pair.deliver(pair.a.receive(.hello(hello), now: pair.now), fromA: true)
        }
        #expect(pair.a.isLinked && pair.b.isLinked)
        #expect(pair.b.nextDeadline == nil)
    }

    @Test func lostAckIsRepairedByTheRetryWithoutASecondSession() {
        var pair = MachinePair(a: listener, b: connector)
        var dropFirstAck = true
        pair.dropBToA = { _ in false }
        pair.dropAToB = { frame in
            if case .helloAck = frame, dropFirstAck {
                dropFirstAck = false
                return true
            }
            return false
        }
        pair.deliver(pair.a.start(now: pair.now), fromA: true)
        // The listener's own hello reaches nobody (the connector is not started yet).
        pair.deliver(pair.b.start(now: pair.now), fromA: false)
        #expect(pair.a.isLinked)
        #expect(!pair.b.isLinked)
        pair.advance(.milliseconds(250))
        #expect(pair.a.isLinked && pair.b.isLinked)
        #expect(MachinePair.ups(pair.eventsA) == 1, "the listener keeps the session it had")
        #expect(MachinePair.downs(pair.eventsA).isEmpty)
    }

    @Test func peerRestartIsANewSession() {
        var pair = MachinePair(a: listener, b: connector)
        pair.deliver(pair.a.start(now: pair.now), fromA: true)
        pair.deliver(pair.b.start(now: pair.now), fromA: false)
        let firstNonce = pair.a.peer!.nonce
        // The device resets: a fresh machine with another seed says hello.
        pair.b = SerialLinkMachine(configuration: connector, seed: 77)
        pair.deliver(pair.b.start(now: pair.now), fromA: false)
        #expect(MachinePair.downs(pair.eventsA) == [.peerRestarted])
        #expect(MachinePair.ups(pair.eventsA) == 2)
        #expect(pair.a.peer!.nonce != firstNonce)
        #expect(pair.b.isLinked)
    }

    @Test func gatewayRestartIsNoticedByTheDevice() {
        var pair = MachinePair(a: listener, b: connector)
        pair.deliver(pair.a.start(now: pair.now), fromA: true)
        pair.deliver(pair.b.start(now: pair.now), fromA: false)
        // The gateway's port is reopened: a fresh listener announces itself with a new nonce.
        pair.eventsB = []
        pair.a = SerialLinkMachine(configuration: listener, seed: 99)
        pair.deliver(pair.a.start(now: pair.now), fromA: true)
        #expect(MachinePair.downs(pair.eventsB) == [.peerRestarted])
        #expect(MachinePair.ups(pair.eventsB) == 1)
        #expect(pair.a.isLinked && pair.b.isLinked)
    }

    @Test func dataWithoutASessionPromptsAHelloAtMostOncePerInterval() {
        var gateway = SerialLinkMachine(configuration: listener, seed: 5)
        let now = ContinuousClock.now
        _ = gateway.start(now: now)
        // Right after its own announcement, data is dropped without another hello.
        #expect(gateway.receive(.data([1]), now: now) == [.dropped(.notLinked)])
        let later = now + .milliseconds(300)
        let actions = gateway.receive(.keepalive, now: later)
        #expect(actions.first == .dropped(.notLinked))
        #expect(actions.count == 2)
        if case .send(.hello) = actions.last {} else { Issue.record("expected a hello, got \(actions)") }
        #expect(gateway.receive(.data([1]), now: later + .milliseconds(10)) == [.dropped(.notLinked)])
    }

    @Test func staleAckIsIgnored() {
        var device = SerialLinkMachine(configuration: connector, seed: 3)
        let now = ContinuousClock.now
        _ = device.start(now: now)
        let stale = SerialHello(maxFrameSize: 128, nonce: 5, peerNonce: 0xDEAD_BEEF, keepaliveMilliseconds: 0)
        #expect(device.receive(.helloAck(stale), now: now) == [.dropped(.staleHelloAck)])
        #expect(!device.isLinked)
    }

    @Test func keepalivesAndPeerTimeout() {
        var withKeepalive = listener
        withKeepalive.keepaliveInterval = .seconds(1)
        var deviceConfiguration = connector
        deviceConfiguration.keepaliveInterval = .seconds(2)
        var pair = MachinePair(a: withKeepalive, b: deviceConfiguration)
        pair.deliver(pair.a.start(now: pair.now), fromA: true)
        pair.deliver(pair.b.start(now: pair.now), fromA: false)
        #expect(pair.a.peer?.keepaliveInterval == .seconds(2))
        // Both sides idle: each sends keepalives at its own interval and stays up.
        for _ in 0..<20 { pair.advance(.milliseconds(500)) }
        let keepalivesFromA = pair.eventsA.filter { $0 == .send(.keepalive) }.count
        let keepalivesFromB = pair.eventsB.filter { $0 == .send(.keepalive) }.count
        #expect(keepalivesFromA >= 9 && keepalivesFromA <= 10)
        #expect(keepalivesFromB >= 4 && keepalivesFromB <= 5)
        #expect(pair.a.isLinked && pair.b.isLinked)
        // The device goes silent (its frames are lost): after 3 × 2 s the gateway takes the link down.
        pair.dropBToA = { _ in true }
        pair.eventsA = []
        for _ in 0..<14 { pair.advance(.milliseconds(500)) }
        #expect(MachinePair.downs(pair.eventsA) == [.peerSilent])
        #expect(!pair.a.isLinked)
    }

    @Test func dataRespectsThePeerLimit() throws {
        var pair = MachinePair(a: listener, b: connector)
        pair.deliver(pair.a.start(now: pair.now), fromA: true)
        pair.deliver(pair.b.start(now: pair.now), fromA: false)
        // The device accepts 256-byte frames: 251 bytes of routing message.
        let fits = [UInt8](repeating: 1, count: 251)
        #expect(try pair.a.prepareData(fits, now: pair.now) == .data(fits))
        #expect(throws: SerialLinkError.messageTooLarge(size: 252, limit: 251)) {
            try pair.a.prepareData([UInt8](repeating: 1, count: 252), now: pair.now)
        }
        var idle = SerialLinkMachine(configuration: listener, seed: 1)
        #expect(throws: SerialLinkError.notLinked) { try idle.prepareData([1], now: .now) }
        // Delivery only while linked; stop ends the session.
        #expect(pair.b.receive(.data([9]), now: pair.now) == [.deliver([9])])
        #expect(pair.b.stop(reason: "unplugged") == [.linkDown(.portClosed("unplugged"))])
        #expect(pair.b.receive(.data([9]), now: pair.now) == [])
    }

    @Test func twoConnectorsAlsoLink() {
        var pair = MachinePair(a: connector, b: connector)
        let helloA = pair.a.start(now: pair.now)
        let helloB = pair.b.start(now: pair.now)
        pair.deliver(helloA, fromA: true)
        pair.deliver(helloB, fromA: false)
        #expect(pair.a.isLinked && pair.b.isLinked)
        #expect(MachinePair.ups(pair.eventsA) == 1 && MachinePair.ups(pair.eventsB) == 1)
    }
}
