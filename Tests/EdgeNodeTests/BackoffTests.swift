import EdgeTestSupport
import Testing

@testable import EdgeNode

@Suite("Backoff")
struct BackoffTests {
    @Test func growsExponentiallyUpToTheCap() {
        let backoff = Backoff(initial: .milliseconds(250), maximum: .seconds(30), multiplier: 2, jitter: 0.5)
        let expected: [Duration] = [
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16),
            .seconds(30), .seconds(30),
        ]
        #expect((0..<9).map { backoff.baseDelay(attempt: $0) } == expected)
        #expect(backoff.baseDelay(attempt: 10_000) == .seconds(30))
    }

    @Test func jitterStaysWithinItsFraction() {
        let backoff = Backoff(initial: .seconds(1), maximum: .seconds(8), jitter: 0.5)
        var generator = SeededGenerator(seed: 7)
        var delays: Set<Duration> = []
        for attempt in 0..<50 {
            let base = backoff.baseDelay(attempt: attempt)
            let delay = backoff.delay(attempt: attempt, using: &generator)
            #expect(delay <= base && delay >= base / 2, "attempt \(attempt): \(delay) vs \(base)")
            delays.insert(delay)
        }
        #expect(delays.count > 10)  // actually randomised
        let none = Backoff(initial: .seconds(1), maximum: .seconds(8), jitter: 0)
        #expect(none.delay(attempt: 2, using: &generator) == .seconds(4))
    }
}
