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
}
