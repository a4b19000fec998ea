// EdgeNodeTests/FlowControlTests: what a link's messages may reach, replies, and the forwarding policy.
import EdgeRouting
import EdgeSync
import EdgeTestSupport
import Testing

@testable import EdgeNode

/// Stands in for a transport's sender worker: records what the node routes to it.
private struct LinkSender: Worker {
    let continuation: AsyncStream<LocalMessage>.Continuation
    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws { continuation.yield(message) }
}

/// A transport whose every remote hop resolves to one fake link sender, counting the resolutions.
private final class FakeTransport: TransportResolver {
    let transportType: TransportType = .tcp
    let sender: Address
    let resolved = EdgeMutex<[Address]>([])
    init(sender: Address) { self.sender = sender }
    func resolve(_ address: Address) async throws -> Address {
        resolved.withLock { $0.append(address) }
        return sender
    }
}

@Suite("Flow control")
struct FlowControlTests {
    /// A node with two fake links (their sender workers) and a collector for each.
    struct Fixture {
        let node: Node
        let linkA = Address.local("link-a")
        let linkB = Address.local("link-b")
        let toA: AsyncStream<LocalMessage>
        let toB: AsyncStream<LocalMessage>

        init(forwarding: ForwardingPolicy = .none) throws {
            node = Node(options: Node.Options(forwarding: forwarding))
            let (a, aContinuation) = AsyncStream<LocalMessage>.makeStream()
            let (b, bContinuation) = AsyncStream<LocalMessage>.makeStream()
            toA = a
            toB = b
            try node.startWorker(LinkSender(continuation: aContinuation), at: linkA, options: WorkerOptions(reach: .linkSender))
            try node.startWorker(LinkSender(continuation: bContinuation), at: linkB, options: WorkerOptions(reach: .linkSender))
        }

        func collector(at address: Address, reach: WorkerOptions.Reach) throws -> AsyncStream<LocalMessage> {
            let (stream, continuation) = AsyncStream<LocalMessage>.makeStream()
            try node.startWorker(CollectorWorker(continuation: continuation), at: address, options: WorkerOptions(reach: reach))
            return stream
        }

        func fromLink(_ link: Address, to route: Route, payload: [UInt8] = [1]) async {
            await node.deliverFromTransport(
                LocalMessage(onwardRoute: route, returnRoute: [link, .local("peer")], payload: payload), link: link)
        }
    }

    @Test func aLinkReachesPublicWorkersButNotPrivateOnes() async throws {
        let f = try Fixture()
        let open = try f.collector(at: .local("open"), reach: .links)
        _ = try f.collector(at: .local("private"), reach: .local)
        await f.fromLink(f.linkA, to: [.local("private")])
        #expect(f.node.counters.droppedFlowControl == 1)
        await f.fromLink(f.linkA, to: [.local("open")], payload: [7])
        var iterator = open.makeAsyncIterator()
        #expect(await iterator.next()?.payload == [7])
        #expect(f.node.counters.delivered == 1)
        // The same private worker is reachable locally and out of a secure channel.
        try await f.node.send(LocalMessage(onwardRoute: [.local("private")], returnRoute: [], payload: []))
        try await f.node.deliver(
            LocalMessage(onwardRoute: [.local("private")], returnRoute: [], payload: []), origin: .secureChannel(.local("d")))
        #expect(f.node.counters.delivered == 3)
        #expect(f.node.counters.droppedFlowControl == 1)
        await f.node.shutdown()
    }

    @Test func aWorkerThatSentThroughALinkGetsThatLinksRepliesOnly() async throws {
        let f = try Fixture()
        let inbox = try f.collector(at: .local("inbox"), reach: .local)
        // Before it sent anything, neither link reaches it.
        await f.fromLink(f.linkA, to: [.local("inbox")])
        #expect(f.node.counters.droppedFlowControl == 1)
        try await f.node.send(LocalMessage(onwardRoute: [f.linkA, .local("x")], returnRoute: [.local("inbox")], payload: []))
        var toA = f.toA.makeAsyncIterator()
        #expect(await toA.next()?.returnRoute == [.local("inbox")])
        await f.fromLink(f.linkA, to: [.local("inbox")], payload: [2])
        var iterator = inbox.makeAsyncIterator()
        #expect(await iterator.next()?.payload == [2])
        // Link B still does not.
        await f.fromLink(f.linkB, to: [.local("inbox")])
        #expect(f.node.counters.droppedFlowControl == 2)
        // Once the worker stops, its registration goes with it: a new worker at the address starts with none.
        await f.node.stopWorker(at: .local("inbox"))
        _ = try f.collector(at: .local("inbox"), reach: .local)
        await f.fromLink(f.linkA, to: [.local("inbox")])
        #expect(f.node.counters.droppedFlowControl == 3)
        await f.node.shutdown()
    }

    @Test func aLinkReachesItsOwnSenderButNotAnotherLinks() async throws {
        let f = try Fixture()
        await f.fromLink(f.linkA, to: [f.linkA, .local("back")], payload: [3])
        var toA = f.toA.makeAsyncIterator()
        #expect(await toA.next()?.payload == [3])
        // A device on link A cannot write to link B through the gateway's sender address, and the refused message
        // opens no reply path either: link B's peer still cannot reach link A's sender.
        await f.fromLink(f.linkA, to: [f.linkB, .local("elsewhere")])
        #expect(f.node.counters.droppedFlowControl == 1)
        await f.fromLink(f.linkB, to: [f.linkA, .local("peer")])
        #expect(f.node.counters.droppedFlowControl == 2)
        await f.node.shutdown()
    }

    @Test func remoteHopsOfALinksMessagesFollowTheForwardingPolicy() async throws {
        let allowed = Address.tcp("10.0.0.5:4000")
        let f = try Fixture(forwarding: ForwardingPolicy(summary: { ["10.0.0.5:4000"] }) { $0 == allowed })
        let uplink = FakeTransport(sender: f.linkB)
        f.node.registerTransport(uplink)

        await f.fromLink(f.linkA, to: [.tcp("192.168.1.1:22"), .local("ssh")])
        #expect(f.node.counters.droppedForwardNotAllowed == 1)
        #expect(uplink.resolved.withLock { $0 }.isEmpty, "nothing was dialled for the refused hop")

        // The allowed uplink is forwarded (the resolved sender is reached though link A may not address it directly).
        await f.fromLink(f.linkA, to: [allowed, .local("api")], payload: [4])
        var toB = f.toB.makeAsyncIterator()
        let out = await toB.next()
        #expect(out?.payload == [4])
        #expect(out?.returnRoute == [f.linkA, .local("peer")])
        // Link A's sender is now a consumer of link B: the uplink's replies reach it.
        await f.fromLink(f.linkB, to: [f.linkA, .local("peer")], payload: [5])
        var toA = f.toA.makeAsyncIterator()
        #expect(await toA.next()?.payload == [5])

        // Out of a secure channel: the same policy. From this node itself: anywhere.
        await #expect(throws: NodeError.forwardingNotAllowed(.tcp("192.168.1.1:22"))) {
            try await f.node.deliver(
                LocalMessage(onwardRoute: [.tcp("192.168.1.1:22")], returnRoute: [], payload: []),
                origin: .secureChannel(.local("d")))
        }
        try await f.node.send(LocalMessage(onwardRoute: [.tcp("192.168.1.1:22"), .local("x")], returnRoute: [], payload: [6]))
        #expect(await toB.next()?.payload == [6])
        #expect(f.node.counters.droppedForwardNotAllowed == 2)
        await f.node.shutdown()
    }

    @Test func forwardingOffRefusesEvenAllowedHops() async throws {
        let policy = ForwardingPolicy(enabled: false, summary: { ["*"] }) { _ in true }
        let f = try Fixture(forwarding: policy)
        f.node.registerTransport(FakeTransport(sender: f.linkB))
        await f.fromLink(f.linkA, to: [.tcp("10.0.0.5:4000")])
        #expect(f.node.counters.droppedForwardingDisabled == 1)
        #expect(f.node.flowControlSummary.forwarding == false)
        await f.node.shutdown()
    }

    @Test func aRequestFailsAtOnceWhenItsLinkClosesAndAnUnreachableHopIsCounted() async throws {
        let f = try Fixture()
        let request = Task { try await f.node.request(to: [f.linkA, .local("echo")], payload: [1], timeout: .seconds(600)) }
        var toA = f.toA.makeAsyncIterator()
        _ = await toA.next()  // the request went out on link A
        await f.node.stopWorker(at: f.linkA)  // the link closes without a reply
        await #expect(throws: NodeError.linkClosed(f.linkA)) { try await request.value }

        struct Refusing: TransportResolver {
            var transportType: TransportType { .tcp }
            func resolve(_ address: Address) async throws -> Address { throw NodeError.shuttingDown }
        }
        f.node.registerTransport(Refusing())
        await #expect(throws: NodeError.shuttingDown) {
            try await f.node.send(LocalMessage(onwardRoute: [.tcp("127.0.0.1:1")], returnRoute: [], payload: []))
        }
        #expect(f.node.counters.droppedUnreachable == 1)
        await f.node.shutdown()
    }

    @Test func statusListsThePublicWorkersButNotDecryptors() async throws {
        let f = try Fixture()
        _ = try f.collector(at: .local("api"), reach: .links)
        _ = try f.collector(at: .local("d"), reach: .linksAuthenticated)
        _ = try f.collector(at: .local("private"), reach: .local)
        #expect(f.node.flowControlSummary.reachableFromLinks == [.local("api")])
        await f.node.shutdown()
    }
}
