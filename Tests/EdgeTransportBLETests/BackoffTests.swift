import EdgeTestSupport
import Testing

@testable import EdgeTransportBLE

@Suite("reconnect backoff")
struct BackoffTests {
    @Test func growsExponentiallyUpToTheCap() {
        let backoff = BLEBackoff(initial: .milliseconds(250), maximum: .seconds(30), multiplier: 2, jitter: 0.5)
        let expected: [Duration] = [
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16),
            .seconds(30), .seconds(30),
        ]
        #expect((0..<9).map { backoff.baseDelay(attempt: $0) } == expected)
        #expect(backoff.baseDelay(attempt: 10_000) == .seconds(30))
    }

    @Test func jitterStaysWithinItsFraction() {
        let backoff = BLEBackoff(initial: .seconds(1), maximum: .seconds(8), jitter: 0.5)
        var generator = SeededGenerator(seed: 7)
        var delays: Set<Duration> = []
        for attempt in 0..<50 {
            let base = backoff.baseDelay(attempt: attempt)
            let delay = backoff.delay(attempt: attempt, using: &generator)
            #expect(delay <= base && delay >= base / 2, "attempt \(attempt): \(delay) vs \(base)")
            delays.insert(delay)
        }
        #expect(delays.count > 10)  // actually randomised
        let none = BLEBackoff(initial: .seconds(1), maximum: .seconds(8), jitter: 0)
        #expect(none.delay(attempt: 2, using: &generator) == .seconds(4))
    }

    @Test func onlyALinkBelowTheAskedSecurityIsRetriedAndOnlyAsOftenAsConfigured() {
        let retry = BLESecurityRetry(retries: 2, pause: .milliseconds(700))
        let low = BLETransportError.insufficientSecurity(peer: "00:AA:01:01:00:01/public,psm=0x83", link: .low, required: .medium)
        #expect(retry.pause(after: low, retries: 0) == .milliseconds(700))
        #expect(retry.pause(after: low, retries: 1) == .milliseconds(700))
        #expect(retry.pause(after: low, retries: 2) == nil)
        for other: BLETransportError in [
            .connectTimeout(peer: "x", .seconds(20)), .connectFailed(peer: "x", errno: 111), .shutDown,
        ] {
            #expect(retry.pause(after: other, retries: 0) == nil, "\(other)")
        }
        #expect(BLESecurityRetry(retries: 0).pause(after: low, retries: 0) == nil)
        #expect(BLETransportOptions().securityRetry.retries > 0)
    }
}
