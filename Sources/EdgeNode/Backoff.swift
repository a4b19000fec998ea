// Capped exponential backoff with jitter: the one retry schedule of BLE reconnects and listeners, serial reopens,
// session rebuilds and bridge uplinks.

/// A capped exponential backoff with proportional jitter.
///
/// Attempt `n` (0-based) waits `base(n) = min(maximum, initial × multiplier^n)` reduced by a random fraction
/// of up to `jitter` of itself: `base(n) × (1 − jitter × U)` with `U` uniform in [0, 1). Jitter spreads the
/// retries of many devices that lost the same gateway, so they do not retry in lock-step; it only ever shortens a
/// delay, so `maximum` is a true maximum. Callers count their attempts and start again from 0 after a success.
public struct Backoff: Hashable, Sendable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double
    /// Fraction in [0, 1] of each delay that is randomised away.
    public var jitter: Double

    public init(
        initial: Duration = .milliseconds(250), maximum: Duration = .seconds(30), multiplier: Double = 2,
        jitter: Double = 0.5
    ) {
        precondition(initial > .zero && maximum >= initial && multiplier >= 1 && (0...1).contains(jitter))
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// The un-jittered delay of attempt `attempt`.
    public func baseDelay(attempt: Int) -> Duration {
        let initialSeconds = Self.seconds(initial)
        let maximumSeconds = Self.seconds(maximum)
        var value = initialSeconds
        var n = 0
        while n < attempt && value < maximumSeconds {
            value *= multiplier
            n += 1
        }
        return Self.duration(min(value, maximumSeconds))
    }

    /// The jittered delay of attempt `attempt`.
    public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let base = Self.seconds(baseDelay(attempt: attempt))
        let u = Double.random(in: 0..<1, using: &generator)
        return Self.duration(base * (1 - jitter * u))
    }

    public func delay(attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &generator)
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    static func duration(_ seconds: Double) -> Duration {
        .nanoseconds(Int64((seconds * 1e9).rounded()))
    }
}
