// EdgeNodeTests/MailboxTests: mailboxes bounded in bytes as well as messages, and senders that choose not to wait.
import EdgeRouting
import EdgeSync
import EdgeTestSupport
import Testing

@testable import EdgeNode

@Suite("Mailbox budgets")
struct MailboxTests {
    func message(_ bytes: Int, tag: UInt8 = 0) -> LocalMessage {
        LocalMessage(onwardRoute: [.local("m")], returnRoute: [], payload: [tag] + [UInt8](repeating: 0, count: bytes - 1))
    }

    @Test func theByteBudgetBoundsWhatIsBufferedButOneMessageAlwaysFits() async throws {
        let mailbox = Mailbox(capacity: 100, capacityBytes: 10_000, address: .local("m"))
        #expect(mailbox.trySend(message(8_000, tag: 1)))
        #expect(!mailbox.trySend(message(8_000, tag: 2)), "over the byte budget")
        #expect(mailbox.trySend(message(100, tag: 3)), "a small one still fits")
        #expect(mailbox.bufferedBytes <= 10_000)
        #expect(await mailbox.next()?.payload.first == 1)
        #expect(mailbox.trySend(message(8_000, tag: 4)), "room again once the first was taken")
        #expect(await mailbox.next()?.payload.first == 3)
        #expect(await mailbox.next()?.payload.first == 4)
        #expect(mailbox.bufferedBytes == 0)
        #expect(mailbox.trySend(message(50_000, tag: 5)), "an empty mailbox takes a message of any size")
        #expect(!mailbox.trySend(message(10, tag: 6)))
    }

    @Test func aSenderWaitingForBytesIsAdmittedInOrderAndLosesNothing() async throws {
        let mailbox = Mailbox(capacity: 100, capacityBytes: 10_000, address: .local("m"))
        #expect(mailbox.trySend(message(9_000, tag: 1)))
        let (sent, sentContinuation) = AsyncStream<UInt8>.makeStream()
        let producer = Task {
            for tag: UInt8 in 2...4 {
                try await mailbox.send(message(9_000, tag: tag))
                sentContinuation.yield(tag)
            }
            sentContinuation.finish()
        }
        var received: [UInt8] = []
        for _ in 1...4 {
            received.append(try #require(await mailbox.next()?.payload.first))
            #expect(mailbox.bufferedBytes <= 10_000)
        }
        try await producer.value
        #expect(received == [1, 2, 3, 4])
        var acknowledged: [UInt8] = []
        for await tag in sent { acknowledged.append(tag) }
        #expect(acknowledged == [2, 3, 4])
    }

    @Test func aSenderThatWillNotWaitHasItsMessageDroppedAndCounted() async throws {
        let node = Node()
        let (started, startedContinuation) = AsyncStream<Void>.makeStream()
        let worker = GatedWorker(started: startedContinuation)
        try node.startWorker(worker, at: .local("busy"), options: WorkerOptions(mailboxCapacity: 1))
        try await node.send(LocalMessage(onwardRoute: [.local("busy")], returnRoute: [], payload: [0]))
        var startedIterator = started.makeAsyncIterator()
        _ = await startedIterator.next()  // the worker holds message 0
        try await node.send(LocalMessage(onwardRoute: [.local("busy")], returnRoute: [], payload: [1]), ifFull: .drop)
        await #expect(throws: NodeError.mailboxFull(.local("busy"))) {
            try await node.send(LocalMessage(onwardRoute: [.local("busy")], returnRoute: [], payload: [2]), ifFull: .drop)
        }
        #expect(node.counters.droppedMailboxFull == 1)
        worker.gateContinuation.yield()
        _ = await startedIterator.next()
        worker.gateContinuation.yield()
        await node.stopWorker(at: .local("busy"))
        #expect(worker.received.withLock { $0 } == [0, 1])
    }
}
