// Retrying a channel the kernel opened below the security asked for, once LE pairing has finished.

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
