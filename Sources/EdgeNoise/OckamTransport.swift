// EdgeNoise/OckamTransport: Ockam secure-channel data messages (ockam-wire.md §5.5–§5.7): nonce prefix, rekey, window.
import EdgeCrypto

/// Constants of Ockam's secure-channel transport (ockam-wire.md §5.5–§5.7).
public enum OckamTransport {
    /// Messages per key, and the size of the replay window (`KEY_RENEWAL_INTERVAL` in Ockam's `encryptor.rs`).
    public static let rekeyInterval: UInt64 = 32
    /// Length of the clear-text big-endian nonce that prefixes every message.
    public static let nonceByteCount = 8
    /// The shortest valid message: nonce + authentication tag (empty plaintext).
    public static let minimumMessageByteCount = nonceByteCount + NoiseCipher.tagByteCount
}

// MARK: - Encryptor

/// The sending half of an Ockam secure channel (ockam-wire.md §5.5, §5.7; Ockam `encryptor.rs`).
///
/// Message `n` (n = 0, 1, 2, …) is `n as 8 bytes big-endian ‖ AEAD(k_⌊n/32⌋, n, AD = empty, plaintext)`, with the
/// cipher's Noise nonce layout (AES-GCM: `00000000 ‖ n` big-endian). The key is replaced by `REKEY(k)` (Noise §4.2)
/// just before encrypting nonce 32, 64, 96, … (`n > 0 && n % 32 == 0`), exactly as Ockam does.
///
/// ### Invariants
/// - Nonces are used once, in increasing order, starting at 0; the nonce 2⁶⁴−1 is never used
///   (``NoiseError/nonceExhausted``).
/// - A call that throws changes nothing (neither the nonce nor the key).
/// - One ``SecretKey`` is allocated per rekey (every 32 messages), none per message.
public struct OckamEncryptor: Sendable {
    /// The cipher (AES-256-GCM for Ockam).
    public let cipher: NoiseCipher
    private var key: SecretKey
    /// The nonce the next message will carry.
    public private(set) var nextNonce: UInt64

    /// An encryptor whose first message uses nonce 0 with `key` (the split key `k_0`).
    ///
    /// - Throws: ``NoiseError/invalidKey(_:)`` if the key is not 32 bytes.
    public init(key: SecretKey, cipher: NoiseCipher = .aes256GCM) throws(NoiseError) {
        try self.init(key: key, cipher: cipher, nextNonce: 0)
    }

    /// An encryptor from the fresh sending cipher state returned by ``HandshakeState/split()``.
    ///
    /// - Throws: ``NoiseError/wrongState(_:)`` if the cipher state has no key or has already been used.
    public init(_ cipherState: CipherState) throws(NoiseError) {
        guard let key = cipherState.currentKey else { throw .wrongState("cipher state has no key") }
        guard cipherState.nonce == 0 else { throw .wrongState("cipher state already used") }
        try self.init(key: key, cipher: cipherState.cipher, nextNonce: 0)
    }

    /// An encryptor resuming at `nextNonce`; `key` must be the key of that nonce's interval (tests only).
    init(key: SecretKey, cipher: NoiseCipher, nextNonce: UInt64) throws(NoiseError) {
        guard key.count == NoiseCipher.keyByteCount else { throw .invalidKey("cipher keys are 32 bytes") }
        self.key = key
        self.cipher = cipher
        self.nextNonce = nextNonce
    }

    /// Encrypts one message.
    ///
    /// - Returns: `nonce (8 bytes, big-endian) ‖ ciphertext ‖ tag`.
    /// - Throws: ``NoiseError/nonceExhausted`` once nonce 2⁶⁴−1 is reached.
    public mutating func encrypt(_ plaintext: [UInt8]) throws(NoiseError) -> [UInt8] {
        let nonce = nextNonce
        guard nonce != .max else { throw .nonceExhausted }
        var messageKey = key
        if nonce > 0 && nonce % OckamTransport.rekeyInterval == 0 {
            messageKey = try cipher.rekey(key)
        }
        let ciphertext = try cipher.encrypt(key: messageKey, nonce: nonce, ad: [], plaintext: plaintext)
        key = messageKey
        nextNonce = nonce + 1
        var message: [UInt8] = []
        message.reserveCapacity(OckamTransport.nonceByteCount + ciphertext.count)
        for shift in stride(from: 56, through: 0, by: -8) {
            message.append(UInt8(truncatingIfNeeded: nonce >> UInt64(shift)))
        }
        message += ciphertext
        return message
    }
}

// MARK: - Decryptor

/// The receiving half of an Ockam secure channel (ockam-wire.md §5.5–§5.7; Ockam `decryptor.rs`,
/// `nonce_tracker.rs`, `key_tracker.rs`).
///
/// A message is `nonce (8 bytes, big-endian) ‖ ciphertext ‖ tag`. It is accepted when
/// 1. it is at least 8 + 16 bytes long (else ``NoiseError/invalidMessage(_:)``) and its nonce is not 2⁶⁴−1
///    (``NoiseError/nonceExhausted``);
/// 2. the replay window accepts the nonce: a nonce above the highest accepted one at most 32 ahead, or a nonce at
///    most 32 behind it that was not accepted before (else ``NoiseError/nonceOutOfWindow`` or
///    ``NoiseError/replayedNonce``);
/// 3. its interval `⌊n/32⌋` is the current key's, the previous one or the next one (the next key being
///    `REKEY(current)`), else ``NoiseError/nonceOutOfWindow``;
/// 4. the AEAD authenticates with that key (else ``NoiseError/decryptionFailed``).
///
/// Only then do the window and the keys move (the next key becomes current, the current one previous).
///
/// ### Invariants
/// - **Forged, replayed, truncated or stale messages cannot change the acceptance state**: the window, the
///   current/previous keys and the interval move only after a successful AEAD decryption. The only thing a
///   rejected message can leave behind is the cached value of `REKEY(current key)`, a pure function of the state
///   that is computed at most once per interval, so a flood of forged next-interval messages costs no key
///   allocations.
/// - Nonce 0 is accepted exactly once: the window starts at "highest = 0" with an empty bitmap, as in Ockam.
/// - At most three ``SecretKey``s are held (previous, current, cached next); one is allocated per rekey.
public struct OckamDecryptor: Sendable {
    /// The cipher (AES-256-GCM for Ockam).
    public let cipher: NoiseCipher
    private var keys: IntervalKeys
    private var window = ReplayWindow()

    /// A decryptor whose key for nonces 0…31 is `key` (the split key `k_0`).
    ///
    /// - Throws: ``NoiseError/invalidKey(_:)`` if the key is not 32 bytes.
    public init(key: SecretKey, cipher: NoiseCipher = .aes256GCM) throws(NoiseError) {
        guard key.count == NoiseCipher.keyByteCount else { throw .invalidKey("cipher keys are 32 bytes") }
        self.cipher = cipher
        self.keys = IntervalKeys(key: key)
    }

    /// A decryptor from the fresh receiving cipher state returned by ``HandshakeState/split()``.
    ///
    /// - Throws: ``NoiseError/wrongState(_:)`` if the cipher state has no key or has already been used.
    public init(_ cipherState: CipherState) throws(NoiseError) {
        guard let key = cipherState.currentKey else { throw .wrongState("cipher state has no key") }
        guard cipherState.nonce == 0 else { throw .wrongState("cipher state already used") }
        try self.init(key: key, cipher: cipherState.cipher)
    }

    /// The highest nonce accepted so far (0 before any message).
    public var highestNonce: UInt64 { window.highest }

    /// Decrypts one message.
    ///
    /// - Returns: the message's nonce and its plaintext.
    /// - Throws: ``NoiseError/invalidMessage(_:)``, ``NoiseError/nonceExhausted``, ``NoiseError/replayedNonce``,
    ///   ``NoiseError/nonceOutOfWindow``, ``NoiseError/decryptionFailed``; the acceptance state is unchanged then.
    public mutating func decrypt(_ message: [UInt8]) throws(NoiseError) -> (nonce: UInt64, plaintext: [UInt8]) {
        guard message.count >= OckamTransport.minimumMessageByteCount else {
            throw .invalidMessage("shorter than nonce and tag")
        }
        var nonce: UInt64 = 0
        for index in 0..<OckamTransport.nonceByteCount {
            nonce = nonce << 8 | UInt64(message[index])
        }
        guard nonce != .max else { throw .nonceExhausted }
        let markedWindow = try window.marking(nonce)
        let (key, interval) = try keys.key(for: nonce, cipher: cipher)
        let plaintext = try cipher.decrypt(
            key: key, nonce: nonce, ad: [], ciphertext: Array(message[OckamTransport.nonceByteCount...])
        )
        window = markedWindow
        if interval == .next { keys.advance() }
        return (nonce, plaintext)
    }
}

// MARK: - Replay window

/// Ockam's `NonceTracker` (`nonce_tracker.rs`): the highest accepted nonce and a 64-bit bitmap of accepted nonces
/// relative to it (bit `i` = nonce `highest − i`).
///
/// ### Invariants
/// - Starts at `highest = 0` with an empty bitmap, so nonce 0 is accepted once and only once.
/// - Pure: ``marking(_:)`` returns the updated window and never mutates; the caller commits it after decryption.
struct ReplayWindow: Hashable, Sendable {
    private(set) var highest: UInt64 = 0
    private(set) var bitmap: UInt64 = 0

    /// The window after accepting `nonce`.
    ///
    /// - Throws: ``NoiseError/nonceOutOfWindow`` if `nonce` is more than 32 ahead of or behind `highest`;
    ///   ``NoiseError/replayedNonce`` if it was already accepted.
    func marking(_ nonce: UInt64) throws(NoiseError) -> ReplayWindow {
        let window = OckamTransport.rekeyInterval
        if nonce > highest {
            let shift = nonce - highest
            guard shift <= window else { throw .nonceOutOfWindow }
            return ReplayWindow(highest: nonce, bitmap: bitmap << shift | 1)  // shift ≤ 32 < 64
        }
        let age = highest - nonce
        guard age <= window else { throw .nonceOutOfWindow }
        let bit: UInt64 = 1 << age
        guard bitmap & bit == 0 else { throw .replayedNonce }
        return ReplayWindow(highest: highest, bitmap: bitmap | bit)
    }
}

// MARK: - Key tracker

/// Ockam's `KeyTracker` (`key_tracker.rs`): the key of the current rekey interval, the previous one, and (cached)
/// the next one. Interval `i` covers nonces `32·i … 32·i + 31` and uses `k_i`, with `k_{i+1} = REKEY(k_i)`.
struct IntervalKeys: Sendable {
    /// Which interval a nonce falls into, relative to the current one.
    enum Interval: Hashable, Sendable {
        case previous, current, next
    }

    /// Index `i` of the current interval.
    private(set) var currentInterval: UInt64 = 0
    private var current: SecretKey
    private var previous: SecretKey?
    /// `REKEY(current)`, computed on first use and kept until it becomes current.
    private var next: SecretKey?

    init(key: SecretKey) {
        current = key
    }

    /// The key for `nonce` and where its interval lies.
    ///
    /// - Throws: ``NoiseError/nonceOutOfWindow`` if the nonce is two or more intervals ahead, or older than the
    ///   previous interval (or in the previous interval before any rekey).
    mutating func key(for nonce: UInt64, cipher: NoiseCipher) throws(NoiseError) -> (SecretKey, Interval) {
        let interval = nonce / OckamTransport.rekeyInterval
        if interval == currentInterval { return (current, .current) }
        if interval == currentInterval + 1 {  // cannot overflow: currentInterval ≤ (2⁶⁴−1)/32
            if let next { return (next, .next) }
            let rekeyed = try cipher.rekey(current)
            next = rekeyed
            return (rekeyed, .next)
        }
        if interval + 1 == currentInterval, let previous { return (previous, .previous) }
        throw .nonceOutOfWindow
    }

    /// Commits the next interval (after a message in it was authenticated): next → current → previous.
    mutating func advance() {
        guard let next else { preconditionFailure("EdgeNoise: advance() without a next key") }
        previous = current
        current = next
        self.next = nil
        currentInterval += 1
    }
}
