// EdgeQueueTests/QueueBehaviourTests: FIFO order, sequence numbers, peek/acknowledge, limits and restarts.
import EdgeTestSupport
import SystemPackage
import Testing

@testable import EdgeQueue

@Suite("Store-and-forward queue behaviour", .cpuBound)
struct QueueBehaviourTests {
    /// A random mix of appends, peeks and acknowledgements against a model array: the queue always holds exactly
    /// the model's records, in order, and sequences strictly increase; memory → spill → drain → memory repeats.
    @Test("FIFO order and monotonic sequences through memory → spill → drain cycles", arguments: [
        QueueDurability.spill, .always,
    ])
    func modelCheck(durability: QueueDurability) throws {
        try withQueuePath { path in
            let queue = try StoreAndForwardQueue.open(
                directory: path, limits: smallLimits(durability: durability), writePath: FaultInjector())
            var random = SeededGenerator(seed: 0xF1F0)
            var model: [QueuedRecord] = []
            var lastSequence: UInt64?
            var returnsToMemory = 0
            for step in 0..<600 {
                switch random.next() % 8 {
                case 0, 1, 2, 3:
                    let bytes = payload(UInt64(step), size: Int(random.next() % 65))
                    let result = try queue.append(bytes)
                    #expect(result.dropped == nil)
                    if let lastSequence { #expect(result.sequence > lastSequence) }
                    lastSequence = result.sequence
                    model.append(QueuedRecord(sequence: result.sequence, bytes: bytes))
                case 4, 5, 6:
                    let count = Int(random.next() % 5)
                    let peeked = try queue.peek(max: count)
                    #expect(peeked == Array(model.prefix(count)))
                    // What a sender with records in flight reads next: the records after any sequence, in memory, on
                    // disk or across segments.
                    if let first = model.first?.sequence, let last = model.last?.sequence {
                        let after = first + random.next() % (last - first + 2)
                        let ahead = Int(random.next() % 9)
                        #expect(try queue.peek(after: after, max: ahead) == Array(model.filter { $0.sequence > after }.prefix(ahead)))
                        #expect(try queue.peek(after: nil, max: ahead) == Array(model.prefix(ahead)))
                    }
                    if let last = peeked.last {
                        try queue.acknowledge(through: last.sequence)
                        model.removeFirst(peeked.count)
                    }
                default:
                    if let last = model.last, random.next() % 3 == 0 {
                        try queue.acknowledge(through: last.sequence)
                        model.removeAll()
                        if durability == .spill {
                            #expect(queue.segmentCount == 0)  // drained: back to memory mode
                            returnsToMemory += 1
                        }
                    }
                }
                #expect(try queue.all() == model, "step \(step)")
                #expect(queue.depth.messages == model.count)
                #expect(queue.depth.bytes == model.reduce(0) { $0 + $1.bytes.count })
            }
            let counters = queue.counters
            #expect(counters.appended == counters.acknowledged + model.count)
            #expect(counters.droppedOldest == 0 && counters.writeFailures == 0)
            if durability == .spill {
                #expect(counters.spills >= 5)
                #expect(returnsToMemory >= 5)
            } else {
                #expect(counters.spills == 0)
            }
            try queue.close()
        }
    }

    @Test("peek does not remove; acknowledging old, repeated or unknown sequences is harmless")
    func peekAndAcknowledge() throws {
        try withQueuePath { path in
            let queue = try StoreAndForwardQueue.open(directory: path, limits: smallLimits())
            #expect(try queue.peek(max: 5).isEmpty)
            try queue.acknowledge(through: 1000)  // nothing handed out yet
            let first = try queue.append(payload(1)).sequence
            let second = try queue.append(payload(2)).sequence
            #expect(try queue.peek(max: 1).map(\.sequence) == [first])
            #expect(try queue.peek(max: 1).map(\.sequence) == [first])
            #expect(try queue.peek(max: 0).isEmpty)
            try queue.acknowledge(through: first)
            try queue.acknowledge(through: first)  // repeated
            try queue.acknowledge(through: 0)  // older
            #expect(try queue.all().map(\.sequence) == [second])
            #expect(queue.counters.acknowledged == 1)

            // Far beyond anything handed out: acknowledges everything, but never a future record.
            try queue.acknowledge(through: .max)
            #expect(try queue.all().isEmpty)
            let third = try queue.append(payload(3)).sequence
            #expect(third > second)
            try queue.close()
            let reopened = try StoreAndForwardQueue.open(directory: path, limits: smallLimits())
            #expect(try reopened.all().map(\.sequence) == [third])
            try reopened.close()
        }
    }

    @Test("memory-only queue (diskBytes 0) drops the oldest records, with exact counts")
    func memoryOnlyDropsOldest() throws {
        try withQueuePath { path in
            // 256 bytes of memory; a 16-byte payload takes 33 encoded bytes, a 64-byte one 81.
            let queue = try StoreAndForwardQueue.open(
                directory: path, limits: smallLimits(memoryMessages: 8, diskBytes: 0))
            var sequences: [UInt64] = []
            for tag in 0..<7 { sequences.append(try queue.append(payload(UInt64(tag))).sequence) }
            let eighth = try queue.append(payload(7))  // 7 × 33 + 33 > 256: the oldest goes
            #expect(
                eighth == .storedDroppingOldest(
                    sequence: eighth.sequence,
                    dropped: DroppedRecords(count: 1, firstSequence: sequences[0], lastSequence: sequences[0])))
            let big = try queue.append(payload(8, size: 64))  // needs the room of two small ones
            #expect(big.dropped == DroppedRecords(count: 2, firstSequence: sequences[1], lastSequence: sequences[2]))
            #expect(queue.counters.droppedOldest == 3)
            #expect(try queue.all().map(\.sequence) == Array(sequences[3...]) + [eighth.sequence, big.sequence])
            #expect(try segmentFiles(path).isEmpty)
            try queue.close()
        }
        try withQueuePath { path in
            // The message-count limit.
            let queue = try StoreAndForwardQueue.open(
                directory: path, limits: smallLimits(memoryMessages: 2, diskBytes: 0))
            let first = try queue.append([1]).sequence
            _ = try queue.append([2])
            let third = try queue.append([3])
            #expect(third.dropped == DroppedRecords(count: 1, firstSequence: first, lastSequence: first))
            #expect(queue.depth.messages == 2 && queue.depth.bytes == 2)
            try queue.close()
        }
    }

    @Test("disk mode drops whole oldest segments at the cap, reports them exactly, never exceeds diskBytes")
    func diskModeDropsOldest() throws {
        try withQueuePath { path in
            let limits = smallLimits(diskBytes: 2 * (256 + 81))
            let queue = try StoreAndForwardQueue.open(directory: path, limits: limits, writePath: FaultInjector())
            var model: [UInt64] = []
            var reported = 0
            for tag in 0..<200 {
                let result = try queue.append(payload(UInt64(tag), size: 40))
                if let dropped = result.dropped {
                    #expect(Array(model.prefix(dropped.count)).first == dropped.firstSequence)
                    #expect(Array(model.prefix(dropped.count)).last == dropped.lastSequence)
                    model.removeFirst(dropped.count)
                    reported += dropped.count
                }
                model.append(result.sequence)
                #expect(queue.diskBytesUsed <= Int64(limits.diskBytes))
                #expect(try queue.all().map(\.sequence) == model)
            }
            #expect(reported > 0)
            #expect(queue.counters.droppedOldest == reported)
            #expect(queue.counters.appended == 200)
            #expect(queue.depth.messages == 200 - reported)
            try queue.close()
        }
    }

    @Test("a record over maxRecordBytes is refused and counted; exactly maxRecordBytes is stored")
    func oversizeRefused() throws {
        try withQueuePath { path in
            let queue = try StoreAndForwardQueue.open(directory: path, limits: smallLimits())
            let error = expectQueueError(.recordTooLarge) { _ = try queue.append([UInt8](repeating: 1, count: 65)) }
            #expect(error?.description.contains("65 bytes") == true)
            #expect(queue.counters.refusedOversize == 1)
            #expect(queue.counters.appended == 0)
            _ = try queue.append([UInt8](repeating: 1, count: 64))
            #expect(queue.depth.messages == 1)
            try queue.close()
        }
    }

    @Test("close + reopen keeps every unacknowledged record in order; sequences continue above all handed out")
    func restartKeepsRecords() throws {
        try withQueuePath { path in
            var expected: [QueuedRecord] = []
            var highest: UInt64?
            for round in 0..<4 {
                let queue = try StoreAndForwardQueue.open(directory: path, limits: smallLimits())
                #expect(try queue.all() == expected, "round \(round)")
                #expect(queue.counters.recoveredOnOpen == expected.count)
                // 3 stay in memory; later rounds spill too.
                for tag in 0..<(3 + round * 3) {
                    let bytes = payload(UInt64(round * 100 + tag))
                    let sequence = try queue.append(bytes).sequence
                    if let highest { #expect(sequence > highest) }
                    highest = sequence
                    expected.append(QueuedRecord(sequence: sequence, bytes: bytes))
                }
                try queue.acknowledge(through: expected[1].sequence)
                expected.removeFirst(2)
                try queue.close()
                try queue.close()  // idempotent
                _ = expectQueueError(.closed) { _ = try queue.append([1]) }
            }
            let final = try StoreAndForwardQueue.open(directory: path, limits: smallLimits())
            #expect(try final.all() == expected)
            try final.close()
        }
    }

    @Test("crash (no close) in .always mode keeps every appended record; sequences are never reused")
    func crashInAlwaysMode() throws {
        try withQueuePath { path in
            let limits = smallLimits(durability: .always)
            var appended: [QueuedRecord] = []
            var handedOut: UInt64 = 0
            do {
                let queue = try StoreAndForwardQueue.open(directory: path, limits: limits)
                for tag in 0..<20 {
                    let bytes = payload(UInt64(tag))
                    appended.append(QueuedRecord(sequence: try queue.append(bytes).sequence, bytes: bytes))
                }
                try queue.acknowledge(through: appended[4].sequence)
                handedOut = queue.nextSequence
                // The queue is dropped without close(): descriptors close, nothing is written (as in kill -9).
            }
            let reopened = try StoreAndForwardQueue.open(directory: path, limits: limits)
            let recovered = try reopened.all()
            // Acknowledged progress is persisted lazily: acknowledged records may come back (at-least-once).
            #expect(recovered.count >= 15)
            #expect(Array(recovered.suffix(15)) == Array(appended.suffix(15)))
            #expect(Set(recovered).isSubset(of: Set(appended)))
            #expect(try reopened.append([9]).sequence >= handedOut)
            try reopened.close()
        }
    }

    @Test(".spill mode: a crash loses only the memory records, and their sequences are not reused")
    func crashInSpillModeLosesMemoryOnly() throws {
        try withQueuePath { path in
            var lost: UInt64 = 0
            do {
                let queue = try StoreAndForwardQueue.open(directory: path, limits: smallLimits())
                for tag in 0..<3 { lost = try queue.append(payload(UInt64(tag))).sequence }
                #expect(try segmentFiles(path).isEmpty)
            }
            let reopened = try StoreAndForwardQueue.open(directory: path, limits: smallLimits())
            #expect(try reopened.all().isEmpty)
            #expect(try reopened.append([1]).sequence > lost)
            try reopened.close()
        }
    }

    @Test("sequence reservations: reopening after crashes never goes back, and the next file bounds all numbers")
    func reservationsSurviveCrashes() throws {
        try withQueuePath { path in
            var previous: UInt64?
            for _ in 0..<5 {
                let queue = try StoreAndForwardQueue.open(directory: path, limits: smallLimits(durability: .always))
                let first = try queue.append([1]).sequence
                if let previous { #expect(first > previous) }
                for _ in 0..<10 { previous = try queue.append([2]).sequence }
                try queue.acknowledge(through: previous!)
                let reserved = StateFile.next.decode(try readFile(path.appending("next")))
                #expect(reserved.map { $0 > previous! } == true)
                // crash: no close
            }
        }
    }

    @Test("a second queue on the same directory is refused while the first is open")
    func exclusive() throws {
        try withQueuePath { path in
            let queue = try StoreAndForwardQueue.open(directory: path, limits: smallLimits())
            _ = expectQueueError(.inUse) { _ = try StoreAndForwardQueue.open(directory: path, limits: smallLimits()) }
            try queue.close()
            try StoreAndForwardQueue.open(directory: path, limits: smallLimits()).close()
        }
    }

    @Test("inconsistent limits are refused with a reason")
    func invalidLimits() throws {
        try withQueuePath { path in
            var limits = smallLimits()
            limits.memoryBytes = 512  // > segmentBytes
            _ = expectQueueError(.invalidLimits) { _ = try StoreAndForwardQueue.open(directory: path, limits: limits) }
            limits = smallLimits(diskBytes: 600)  // < two segments
            _ = expectQueueError(.invalidLimits) { _ = try StoreAndForwardQueue.open(directory: path, limits: limits) }
            limits = smallLimits(diskBytes: 0, durability: .always)
            _ = expectQueueError(.invalidLimits) { _ = try StoreAndForwardQueue.open(directory: path, limits: limits) }
            #expect(QueueLimits().problem == nil)
        }
    }
}
