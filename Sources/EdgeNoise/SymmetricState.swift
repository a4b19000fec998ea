// EdgeNoise/SymmetricState: Noise §5.2, the chaining key `ck`, the handshake hash `h` and a CipherState.
import EdgeCrypto

/// A Noise `SymmetricState` (Noise §5.2) with SHA-256 (`HASHLEN = 32`) and the Noise HKDF (§4.3).
///
/// ### Invariants
/// - `ck` and every derived key live in ``SecretKey``s; `h` is not secret and is a plain array.
/// - A failed ``decryptAndHash(_:)`` changes nothing (neither `h` nor the cipher state's nonce).
/// - Copying a `SymmetricState` is cheap and safe: keys are immutable reference-counted values, so a copy can be
///   updated speculatively and dropped on failure (``HandshakeState`` does exactly that).
public struct SymmetricState: Sendable {
    /// `HASHLEN` for SHA-256.
    public static let hashByteCount = 32

    private var chainingKey: SecretKey
    private var h: [UInt8]
    private var cipherState: CipherState

    /// `InitializeSymmetric(protocol_name)` (Noise §5.2): `h = protocol_name` zero-padded to 32 bytes when it is at
    /// most 32 bytes long, otherwise `h = SHA-256(protocol_name)`; `ck = h`; empty cipher key.
    public init(protocolName: [UInt8], cipher: NoiseCipher) {
        if protocolName.count <= Self.hashByteCount {
            h = protocolName + [UInt8](repeating: 0, count: Self.hashByteCount - protocolName.count)
        } else {
            h = SHA256.hash(protocolName)
        }
        chainingKey = SecretKey(copying: h)  // h is public; nothing to zero
        cipherState = CipherState(cipher: cipher)
    }

    /// `MixKey(input_key_material)` (Noise §5.2): `ck, temp_k = HKDF(ck, ikm, 2)`; `InitializeKey(temp_k)`.
    public mutating func mixKey(_ inputKeyMaterial: some KeyMaterial) throws(NoiseError) {
        let outputs = try crypto { () throws(CryptoError) in
            try HKDF.noise(chainingKey: chainingKey, inputKeyMaterial: inputKeyMaterial, outputs: 2)
        }
        chainingKey = outputs[0]
        try cipherState.initializeKey(outputs[1])
    }

    /// `MixHash(data)` (Noise §5.2): `h = SHA-256(h ‖ data)`.
    public mutating func mixHash(_ data: [UInt8]) {
        var hasher = SHA256.Hasher()
        hasher.update(h)
        hasher.update(data)
        h = hasher.finalize()
    }

    /// `MixKeyAndHash(input_key_material)` (Noise §5.2), used by `psk` tokens:
    /// `ck, temp_h, temp_k = HKDF(ck, ikm, 3)`; `MixHash(temp_h)`; `InitializeKey(temp_k)`.
    public mutating func mixKeyAndHash(_ inputKeyMaterial: some KeyMaterial) throws(NoiseError) {
        let outputs = try crypto { () throws(CryptoError) in
            try HKDF.noise(chainingKey: chainingKey, inputKeyMaterial: inputKeyMaterial, outputs: 3)
        }
        chainingKey = outputs[0]
        outputs[1].withUnsafeBytes { tempH in
            var hasher = SHA256.Hasher()
            hasher.update(h)
            hasher.update(tempH)
            h = hasher.finalize()
        }
        try cipherState.initializeKey(outputs[2])
    }

    /// `GetHandshakeHash()` (Noise §5.2): the current `h`.
    public func getHandshakeHash() -> [UInt8] { h }

    /// Whether the cipher state has a key (Noise §5.2 uses `HasKey()` to size encrypted static keys).
    public var hasKey: Bool { cipherState.hasKey }

    /// `EncryptAndHash(plaintext)` (Noise §5.2): `ciphertext = EncryptWithAd(h, plaintext)`; `MixHash(ciphertext)`.
    public mutating func encryptAndHash(_ plaintext: [UInt8]) throws(NoiseError) -> [UInt8] {
        let ciphertext = try cipherState.encryptWithAd(h, plaintext: plaintext)
        mixHash(ciphertext)
        return ciphertext
    }

    /// `DecryptAndHash(ciphertext)` (Noise §5.2): `plaintext = DecryptWithAd(h, ciphertext)`; `MixHash(ciphertext)`.
    ///
    /// - Throws: ``NoiseError/decryptionFailed``; nothing changes then.
    public mutating func decryptAndHash(_ ciphertext: [UInt8]) throws(NoiseError) -> [UInt8] {
        let plaintext = try cipherState.decryptWithAd(h, ciphertext: ciphertext)
        mixHash(ciphertext)
        return plaintext
    }

    /// `Split()` (Noise §5.2): `temp_k1, temp_k2 = HKDF(ck, empty, 2)`, returned as two fresh cipher states in that
    /// order. Which one each party sends with is decided by ``SplitOrder`` in ``HandshakeState/split()``.
    public func split() throws(NoiseError) -> (CipherState, CipherState) {
        let outputs = try crypto { () throws(CryptoError) in
            try HKDF.noise(chainingKey: chainingKey, inputKeyMaterial: [UInt8](), outputs: 2)
        }
        var c1 = CipherState(cipher: cipherState.cipher)
        var c2 = CipherState(cipher: cipherState.cipher)
        try c1.initializeKey(outputs[0])
        try c2.initializeKey(outputs[1])
        return (c1, c2)
    }
}
