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

    /// Swift 6.3.1 at -O hoisted the mutex's thread-local address out of the code after an await's hop back to the
    /// caller's executor (LLVM SimplifyCFG), so the lock in the `defer` used the thread that resumed the awaited task
    /// and the unlock the caller's: "Call to unlock Mutex on a thread which hasn't acquired the lock". The shape
    /// that triggers it (scripts/swift-bugs/mutex-tls-hoist.swift): a typed-throws lock, `try await` a task that
    /// finishes on a pool thread which has locked the mutex itself, a lock in a `defer`, on the main actor. With
    /// EdgeMutex.withLock inlined this trapped in every release run; out of line it cannot.
    @MainActor @Test func aLockAfterAnAwaitThatChangedThreadsUsesTheCurrentThread() async {
        let box = LockedCounter()
        for round in 0..<200 {
            let task = Task.detached { () async throws -> Int in
                try await Task.sleep(for: .milliseconds(1))
                box.mutex.withLock { $0 += 1 }  // this pool thread now has its thread id cached
                return round
            }
            #expect((try? await lockAwaitLock(box, task)) == round)
        }
        #expect(box.mutex.withLock { $0 } == 400)
    }
}

private struct Negative: Error {}

private final class LockedCounter: Sendable {
    let mutex = EdgeMutex(0)
}

@inline(never)
@MainActor private func lockAwaitLock(_ box: LockedCounter, _ task: Task<Int, any Error>) async throws -> Int {
    try box.mutex.withLock { (value: inout Int) throws(Negative) in if value < 0 { throw Negative() } }
    defer { box.mutex.withLock { $0 += 1 } }
    return try await task.value
}
