// Capped exponential backoff with jitter, for reconnecting connectors and re-binding listeners.

/// A capped exponential backoff with proportional jitter.
///
/// Attempt `n` (0-based) waits `base(n) = min(maximum, initial × multiplier^n)` reduced by a random fraction
/// of up to `jitter` of itself: `base(n) × (1 − jitter × U)` with `U` uniform in [0, 1). Jitter spreads the
/// reconnects of many devices that lost the same gateway, so they do not retry in lock-step.
public struct BLEBackoff: Hashable, Sendable {
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

/// When a connect whose channel the kernel opened below the security asked for is tried again.
///
/// A channel asking for `medium` or more over an LE connection that is already open unencrypted (another channel
/// to the same device, or one just closed whose connection the kernel has not dropped yet) was seen to open at the
/// connection's old level while the kernel paired (Linux 6.1, virtual rig). The link is closed
/// (``BLETransportError/insufficientSecurity``); once pairing has finished, the connection is encrypted and the
/// next channel opens at the level asked for. Only that error is retried: anything else is the caller's to handle.
public struct BLESecurityRetry: Hashable, Sendable {
    /// Further attempts after the first (0 disables the retry).
    public var retries: Int
    /// Pause before each further attempt, long enough for LE pairing to finish.
    public var pause: Duration

    public init(retries: Int = 3, pause: Duration = .seconds(1)) {
        precondition(retries >= 0 && pause >= .zero)
        self.retries = retries
        self.pause = pause
    }

    /// The pause before the next attempt after `error`, with `retries` attempts already retried; nil: give up.
    public func pause(after error: BLETransportError, retries done: Int) -> Duration? {
        guard case .insufficientSecurity = error, done < retries else { return nil }
        return pause
    }
}
