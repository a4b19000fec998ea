// EdgeNodeTests/EdgeMutexTests: EdgeSync's mutex gives exclusive access (the TSan stage checks its annotations).
import EdgeSync
import Foundation
import Testing

@Suite("EdgeMutex")
struct EdgeMutexTests {
    /// Eight threads each add 10,000 times; a lost update (no exclusion) would leave the total short.
    @Test func criticalSectionsAreExclusive() {
        let counter = EdgeMutex((value: 0, inside: 0, overlaps: 0))
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<10_000 {
                counter.withLock {
                    $0.inside += 1
                    if $0.inside > 1 { $0.overlaps += 1 }
                    $0.value += 1
                    $0.inside -= 1
                }
            }
        }
        let (value, _, overlaps) = counter.withLock { $0 }
        #expect(value == 80_000)
        #expect(overlaps == 0)
    }

    @Test func errorsAndResultsPassThrough() throws {
        struct Refused: Error, Equatable {}
        let mutex = EdgeMutex([1, 2, 3])
        #expect(mutex.withLock { $0.count } == 3)
        #expect(throws: Refused()) {
            try mutex.withLock { (value: inout [Int]) throws(Refused) -> Void in
                value.append(4)
                throw Refused()
            }
        }
        // A body that throws keeps what it changed before throwing, and the lock is released.
        #expect(mutex.withLock { $0 } == [1, 2, 3, 4])
    }

    /// Locks taken before and after suspension points that resume on other threads, in the shape that Swift 6.3.1
    /// miscompiled when the mutex was inlined into async code (a lock, an await, a lock in a `defer`): each lock must
    /// use the current thread's identity. Many tasks and yields make resumption on another thread near certain.
    @Test func locksAfterSuspensionPointsUseTheCurrentThread() async {
        let box = SuspendingLockBox()
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<64 {
                group.addTask {
                    for round in 0..<200 { _ = try? await box.shared(key: (task + round) % 7) }
                }
            }
        }
        #expect(box.finished == 64 * 200)
    }
}

/// A map of in-flight tasks shared by key: lock, await the task, forget it in a `defer` (the dial shape).
private final class SuspendingLockBox: Sendable {
    private struct State: ~Copyable {
        var inFlight: [Int: Task<Int, any Error>] = [:]
        var finished = 0
        var closed = false
    }
    private struct Closed: Error {}
    private let state = EdgeMutex(State())

    var finished: Int { state.withLock { $0.finished } }

    func shared(key: Int) async throws -> Int {
        let task: Task<Int, any Error> = try state.withLock { (state) throws(Closed) in
            if state.closed { throw Closed() }
            if let pending = state.inFlight[key] { return pending }
            let task = Task<Int, any Error> {
                try await Task.sleep(for: .microseconds(20))
                return key
            }
            state.inFlight[key] = task
            return task
        }
        defer {
            state.withLock { state in
                if state.inFlight[key] == task { state.inFlight[key] = nil }
                state.finished += 1
            }
        }
        await Task.yield()
        return try await task.value
    }
}
