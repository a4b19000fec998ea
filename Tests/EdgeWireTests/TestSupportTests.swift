// EdgeWireTests/TestSupportTests: the shared test helpers keep CPU-bound and blocking work off the concurrency pool.
import EdgeTestSupport
import Foundation
import Testing

@Suite("Test support: work off the concurrency pool")
struct TestSupportTests {
    @Test(.cpuBound) func cpuBoundTestsRunOnTheirOwnThreads() async throws {
        #expect(currentThreadName().hasPrefix("cpubound"), "\(currentThreadName())")
        // Still there after a suspension: the preference holds for the whole test.
        try await Task.sleep(for: .milliseconds(1))
        #expect(currentThreadName().hasPrefix("cpubound"), "\(currentThreadName())")
    }

    @Test(.cpuBound) func synchronousCPUBoundTestsRunOnTheirOwnThreads() {
        #expect(currentThreadName().hasPrefix("cpubound"), "\(currentThreadName())")
    }

    @Test func blockingRunsOnAThreadOfItsOwnInsideTheTest() async throws {
        let name = try await blocking { currentThreadName() }
        #expect(name.hasPrefix("blocking"))
        // Expectations inside are attributed to this test (the body runs in the calling task).
        try await blocking { #expect(Test.current?.name.hasPrefix("blockingRuns") == true) }
        #expect(!currentThreadName().hasPrefix("blocking"))
    }
}

