// EdgeQueueTests/QueueCrashTests: SIGKILL an `.always` writer at random points; every acknowledged append survives.
import EdgeTestSupport
import Foundation
import SystemPackage
import Testing

@testable import EdgeQueue

#if canImport(Glibc)
import Glibc
#endif

@Suite("Store-and-forward queue crash safety")
struct QueueCrashTests {
    /// Fixed for reproducible CI runs; override with `OCKAM_EDGE_QUEUE_CRASH_SEED=<n>` to explore.
    static let seed: UInt64 =
        ProcessInfo.processInfo.environment["OCKAM_EDGE_QUEUE_CRASH_SEED"].flatMap { UInt64($0) } ?? 0x0C0F_FEE5

    /// The child's limits (`QueueStress.limits` in Tests/StoreStressChild).
    static let limits = QueueLimits(
        memoryMessages: 64, memoryBytes: 8192, diskBytes: 4 << 20, segmentBytes: 8192, maxRecordBytes: 4096,
        durability: .always)

    @Test("SIGKILL at random points: every printed sequence is recovered, in order, once (20 runs)")
    func killAtRandomPoints() async throws {
        try await blocking { try Self().killAtRandomPointsBlocking() }
    }

    func killAtRandomPointsBlocking() throws {
        var random = SeededGenerator(seed: Self.seed)
        try withQueuePath { path in
            var highest: UInt64?
            var total = 0
            for run in 0..<20 {
                let context = "seed \(Self.seed), run \(run)"
                // Synchronisation, not timing: kill after `target` printed appends (run 0: straight after spawning).
                let target = run == 0 ? 0 : Int.random(in: 1...150, using: &random)
                let child = try StoreStressChild("queue", arguments: [path.string, String(random.next() >> 1)])
                var printed: [UInt64] = []
                while printed.count < target, let line = child.readLine() {
                    guard line.hasPrefix("a "), let sequence = UInt64(line.dropFirst(2)) else {
                        Issue.record("\(context): unexpected line \(line)")
                        break
                    }
                    printed.append(sequence)
                }
                child.kill()
                let exit = child.wait()
                #expect(printed.count == target, "\(context): child exited early: \(child.errorOutput())")
                // Lines the child printed before it died but we had not read yet: those appends returned too.
                while let line = child.readLine(), line.hasPrefix("a "), let sequence = UInt64(line.dropFirst(2)) {
                    printed.append(sequence)
                }
                #expect(exit?.reason == .uncaughtSignal, "\(context): \(String(describing: exit))")
                total += printed.count

                let queue = try StoreAndForwardQueue.open(directory: path, limits: Self.limits)
                let recovered = try queue.all()
                let sequences = recovered.map(\.sequence)
                #expect(zip(sequences, sequences.dropFirst()).allSatisfy { $0 < $1 }, "\(context): order")
                // Every printed append is there, in order; at most one more (appended, killed before printing).
                #expect(Array(sequences.prefix(printed.count)) == printed, "\(context): lost or reordered")
                #expect(sequences.count <= printed.count + 1, "\(context): unexpected records")
                if let highest, let first = sequences.first { #expect(first > highest, "\(context): reused") }
                for record in recovered { #expect(isStressPattern(record.bytes), "\(context): torn payload") }
                highest = sequences.last ?? highest
                if let last = sequences.last { try queue.acknowledge(through: last) }
                #expect(queue.depth.messages == 0)
                try queue.close()
            }
            #expect(total >= 20 * 40)
        }
    }
}

extension QueueCrashTests {
    @Test("another process cannot open a queue this process has open, and can once it is closed")
    func exclusiveAcrossProcesses() async throws {
        try await blocking {
            try withQueuePath { path in
                let queue = try StoreAndForwardQueue.open(directory: path, limits: Self.limits)
                let refused = try StoreStressChild("queue", arguments: [path.string, "1"])
                #expect(refused.readLine() == nil)
                #expect(refused.wait() == ChildExit(status: 2, reason: .exit))
                #expect(refused.errorOutput().contains("in use by another queue"))
                try queue.close()

                let child = try StoreStressChild("queue", arguments: [path.string, "1"])
                #expect(child.readLine()?.hasPrefix("a ") == true)
                child.kill()
                child.wait()
                // Killed while holding the directory: the kernel released its lock.
                try StoreAndForwardQueue.open(directory: path, limits: Self.limits).close()
            }
        }
    }
}
