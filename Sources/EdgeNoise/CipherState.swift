// EdgeNoise/CipherState: Noise §5.1, a key `k` and a 64-bit nonce `n`.
import EdgeCrypto

/// A Noise `CipherState` (Noise §5.1): an optional 32-byte key `k` and a nonce counter `n`.
///
/// Used inside ``SymmetricState`` during the handshake and returned by ``HandshakeState/split()`` for standard Noise
/// transport messages (Ockam transport messages use ``OckamEncryptor`` / ``OckamDecryptor`` instead).
///
/// ### Invariants
/// - `n` only advances after a successful encryption or decryption: a ciphertext that fails authentication leaves
///   the state exactly as it was (Noise §5.1, `DecryptWithAd`).
/// - `n = 2⁶⁴−1` is reserved (Noise §5.1): once reached, ``encryptWithAd(_:plaintext:)`` and
///   ``decryptWithAd(_:ciphertext:)`` throw ``NoiseError/nonceExhausted`` while a key is set.
/// - The key lives in a ``SecretKey``; no per-message secret allocation happens (only ``rekey()`` allocates).
/// - No message-size limit is applied here; handshake messages are limited by ``HandshakeState``.
public struct CipherState: Sendable {
    /// The cipher functions used with `k`.
    public let cipher: NoiseCipher
    private var key: SecretKey?
    /// The nonce `n` that the next encryption or decryption will use.
    public private(set) var nonce: UInt64 = 0

    /// An empty cipher state (`k = empty`, `n = 0`).
    public init(cipher: NoiseCipher) {
        self.cipher = cipher
    }

    /// `InitializeKey(key)` (Noise §5.1): sets `k = key` (or empty for `nil`) and `n = 0`.
    ///
    /// - Throws: ``NoiseError/invalidKey(_:)`` if the key is not 32 bytes.
    public mutating func initializeKey(_ key: SecretKey?) throws(NoiseError) {
        if let key, key.count != NoiseCipher.keyByteCount { throw .invalidKey("cipher keys are 32 bytes") }
        self.key = key
        nonce = 0
    }

    /// `HasKey()` (Noise §5.1): whether `k` is set.
    public var hasKey: Bool { key != nil }

    /// `SetNonce(nonce)` (Noise §5.1).
    public mutating func setNonce(_ nonce: UInt64) {
        self.nonce = nonce
    }

    /// `EncryptWithAd(ad, plaintext)` (Noise §5.1): `ENCRYPT(k, n++, ad, plaintext)` if a key is set, otherwise the
    /// plaintext unchanged.
    ///
    /// - Throws: ``NoiseError/nonceExhausted`` if `n` is 2⁶⁴−1; the state is unchanged on any error.
    public mutating func encryptWithAd(_ ad: [UInt8], plaintext: [UInt8]) throws(NoiseError) -> [UInt8] {
        guard let key else { return plaintext }
        guard nonce != .max else { throw .nonceExhausted }
        let ciphertext = try cipher.encrypt(key: key, nonce: nonce, ad: ad, plaintext: plaintext)
        nonce += 1
        return ciphertext
    }

    /// `DecryptWithAd(ad, ciphertext)` (Noise §5.1): `DECRYPT(k, n++, ad, ciphertext)` if a key is set, otherwise the
    /// ciphertext unchanged.
    ///
    /// - Throws: ``NoiseError/decryptionFailed`` (then `n` is **not** incremented), ``NoiseError/nonceExhausted``.
    public mutating func decryptWithAd(_ ad: [UInt8], ciphertext: [UInt8]) throws(NoiseError) -> [UInt8] {
        guard let key else { return ciphertext }
        guard nonce != .max else { throw .nonceExhausted }
        let plaintext = try cipher.decrypt(key: key, nonce: nonce, ad: ad, ciphertext: ciphertext)
        nonce += 1
        return plaintext
    }

    /// `Rekey()` (Noise §5.1, §11.3): `k = REKEY(k)`; `n` is unchanged. Allocates one ``SecretKey``.
    ///
    /// - Throws: ``NoiseError/wrongState(_:)`` if no key is set.
    public mutating func rekey() throws(NoiseError) {
        guard let key else { throw .wrongState("rekey without a key") }
        self.key = try cipher.rekey(key)
    }

    /// The key, for this module's Ockam transport types (not public).
    var currentKey: SecretKey? { key }
}
