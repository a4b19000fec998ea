// EdgeNoise: Noise (rev 34) XX/NN/XXpsk3 handshakes and Ockam's secure-channel transport cipher; pure, synchronous.
//
// Wire formats and the Ockam deviations (reversed split, 8-byte nonce prefix, rekey every 32 messages, replay
// window) are described in docs/noise.md and in the project spec (ockam-wire.md §5.3, §5.5–§5.7). Every type here
// is a value: no I/O, no clocks, no Foundation. All primitives come from EdgeCrypto.
import EdgeCrypto

// MARK: - Errors

/// Errors thrown by EdgeNoise.
///
/// ### Invariants
/// - No case carries key material, plaintext or peer-supplied bytes: the associated strings are fixed reasons
///   chosen by this module.
/// - An operation that throws leaves the state it was called on exactly as it was (see each type's invariants).
public enum NoiseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// AEAD authentication failed (wrong key, modified, truncated or forged ciphertext).
    case decryptionFailed
    /// A message is malformed (too short for the tokens it must carry, or shorter than nonce + tag).
    case invalidMessage(String)
    /// A handshake message would exceed, or exceeds, 65535 bytes (Noise §3).
    case messageTooLong
    /// The nonce 2⁶⁴−1 is reserved (Noise §5.1): no further message can be encrypted or decrypted with this key.
    case nonceExhausted
    /// The call does not fit the state: not this party's turn, handshake not finished, already split.
    case wrongState(String)
    /// A Diffie-Hellman with the peer's public key gave the all-zero output (a low-order point).
    case weakPublicKey
    /// A key argument is missing or has the wrong length.
    case invalidKey(String)
    /// A protocol name or parameter is not supported.
    case unsupportedProtocol(String)
    /// Transport: this nonce was already accepted (replay).
    case replayedNonce
    /// Transport: the nonce is outside the acceptance window (more than 32 behind or ahead of the highest accepted
    /// nonce, or not in the current, previous or next rekey interval).
    case nonceOutOfWindow
    /// The crypto library failed unexpectedly.
    case internalFailure

    public var description: String {
        switch self {
        case .decryptionFailed: "Noise: decryption failed"
        case .invalidMessage(let reason): "Noise: invalid message (\(reason))"
        case .messageTooLong: "Noise: message longer than 65535 bytes"
        case .nonceExhausted: "Noise: nonce exhausted"
        case .wrongState(let reason): "Noise: wrong state (\(reason))"
        case .weakPublicKey: "Noise: weak public key"
        case .invalidKey(let reason): "Noise: invalid key (\(reason))"
        case .unsupportedProtocol(let reason): "Noise: unsupported protocol (\(reason))"
        case .replayedNonce: "Noise: replayed nonce"
        case .nonceOutOfWindow: "Noise: nonce out of window"
        case .internalFailure: "Noise: internal crypto failure"
        }
    }

    /// Maps an EdgeCrypto error onto the Noise vocabulary.
    init(_ error: CryptoError) {
        switch error {
        case .authenticationFailure: self = .decryptionFailed
        case .weakPublicKey: self = .weakPublicKey
        case .invalidKeySize, .invalidPublicKey, .invalidPrivateKey: self = .invalidKey("wrong key length")
        case .invalidLength: self = .messageTooLong
        default: self = .internalFailure
        }
    }
}

/// Runs an EdgeCrypto call, translating its error into ``NoiseError``.
@inline(__always)
func crypto<R>(_ body: () throws(CryptoError) -> R) throws(NoiseError) -> R {
    do {
        return try body()
    } catch {
        throw NoiseError(error)
    }
}

// MARK: - Parameters

/// The Noise cipher functions `ENCRYPT`, `DECRYPT` and `REKEY` (Noise §4.2, §12.3, §12.4).
///
/// Both ciphers take a 32-byte key and a 96-bit nonce made of 32 zero bits followed by the 64-bit counter `n`:
/// big-endian for AES-GCM, little-endian for ChaCha20-Poly1305.
public enum NoiseCipher: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// `AESGCM`: AES-256-GCM, nonce `00000000 ‖ n` (big-endian).
    case aes256GCM = "AESGCM"
    /// `ChaChaPoly`: ChaCha20-Poly1305 (RFC 8439), nonce `00000000 ‖ n` (little-endian).
    case chaCha20Poly1305 = "ChaChaPoly"

    /// Key length (32).
    public static let keyByteCount = 32
    /// Authentication tag length (16).
    public static let tagByteCount = 16

    public var description: String { rawValue }

    /// The 12-byte AEAD nonce for counter `n` (Noise §12.3, §12.4).
    func nonce(_ n: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 12)
        switch self {
        case .aes256GCM:
            for index in 0..<8 { bytes[4 + index] = UInt8(truncatingIfNeeded: n >> (56 - 8 * UInt64(index))) }
        case .chaCha20Poly1305:
            for index in 0..<8 { bytes[4 + index] = UInt8(truncatingIfNeeded: n >> (8 * UInt64(index))) }
        }
        return bytes
    }

    /// `ENCRYPT(k, n, ad, plaintext)`: `ciphertext ‖ tag`.
    func encrypt(key: SecretKey, nonce n: UInt64, ad: [UInt8], plaintext: [UInt8]) throws(NoiseError) -> [UInt8] {
        let nonce = nonce(n)
        return try crypto { () throws(CryptoError) in
            switch self {
            case .aes256GCM: try AES256GCM.seal(key: key, nonce: nonce, aad: ad, plaintext: plaintext)
            case .chaCha20Poly1305: try ChaCha20Poly1305.seal(key: key, nonce: nonce, aad: ad, plaintext: plaintext)
            }
        }
    }

    /// `DECRYPT(k, n, ad, ciphertext)`; throws ``NoiseError/decryptionFailed`` on authentication failure.
    func decrypt(key: SecretKey, nonce n: UInt64, ad: [UInt8], ciphertext: [UInt8]) throws(NoiseError) -> [UInt8] {
        let nonce = nonce(n)
        return try crypto { () throws(CryptoError) in
            switch self {
            case .aes256GCM: try AES256GCM.open(key: key, nonce: nonce, aad: ad, ciphertext: ciphertext)
            case .chaCha20Poly1305:
                try ChaCha20Poly1305.open(key: key, nonce: nonce, aad: ad, ciphertext: ciphertext)
            }
        }
    }

    /// `REKEY(k)` (Noise §4.2): the first 32 bytes of `ENCRYPT(k, 2⁶⁴−1, empty, 32 zero bytes)`.
    ///
    /// Allocates one ``SecretKey``; the intermediate ciphertext is zeroed before it is released.
    func rekey(_ key: SecretKey) throws(NoiseError) -> SecretKey {
        var output = try encrypt(
            key: key, nonce: .max, ad: [], plaintext: [UInt8](repeating: 0, count: Self.keyByteCount)
        )
        defer { Memory.zero(&output) }
        return output.withUnsafeBytes { bytes in
            SecretKey(SecretBytes(copying: UnsafeRawBufferPointer(rebasing: bytes[..<Self.keyByteCount])))
        }
    }
}

/// Which of the two `Split()` outputs (Noise §5.2) the initiator sends with.
public enum SplitOrder: Hashable, Sendable, CustomStringConvertible {
    /// Standard Noise (§5.2, §5.3): the initiator sends with the first key `k1` and receives with `k2`.
    case standard
    /// Ockam (ockam-wire.md §5.3, "Split (deviation from Noise!)"): the initiator sends with `k2` and receives with
    /// `k1`; the responder sends with `k1`.
    case reversed

    public var description: String {
        switch self {
        case .standard: "standard"
        case .reversed: "reversed"
        }
    }
}

/// A supported handshake pattern (Noise §7): `XX`, `NN` and `XXpsk3`.
///
/// None of these has pre-messages, so no remote key is known before the handshake.
public struct HandshakePattern: Hashable, Sendable, CustomStringConvertible {
    /// A token of a message pattern (Noise §7.1, §9.2).
    enum Token: Hashable, Sendable {
        case e, s, ee, es, se, ss, psk
    }

    /// The pattern name as it appears in a protocol name (`XX`).
    public let name: String
    /// The message patterns, in order; even indices are sent by the initiator.
    let messages: [[Token]]

    /// Whether the pattern contains a `psk` token (Noise §9.2: `e` tokens then also call `MixKey`).
    var isPSK: Bool { messages.contains { $0.contains(.psk) } }

    /// Whether some message carries the sender's static key.
    var usesStaticKeys: Bool { messages.contains { $0.contains(.s) } }

    /// The number of handshake messages.
    public var messageCount: Int { messages.count }

    public var description: String { name }

    /// `XX`: `-> e`, `<- e, ee, s, es`, `-> s, se` (Noise §7.5).
    public static let xx = HandshakePattern(name: "XX", messages: [[.e], [.e, .ee, .s, .es], [.s, .se]])

    /// `NN`: `-> e`, `<- e, ee` (Noise §7.4).
    public static let nn = HandshakePattern(name: "NN", messages: [[.e], [.e, .ee]])

    /// `XXpsk3`: `XX` with `psk` appended to the third message (Noise §9.4).
    public static let xxpsk3 = HandshakePattern(
        name: "XXpsk3", messages: [[.e], [.e, .ee, .s, .es], [.s, .se, .psk]]
    )

    /// Every supported pattern.
    public static let all: [HandshakePattern] = [.xx, .nn, .xxpsk3]
}

/// A concrete Noise protocol: the name hashed into the handshake, the pattern, the cipher and the split order.
///
/// DH is always X25519 and the hash always SHA-256. The name is taken as bytes and is **not** required to follow the
/// Noise naming grammar: Ockam's `OCKAM_XX_25519_AES256_GCM_SHA256` does not (ockam-wire.md §5.3).
public struct NoiseProtocol: Hashable, Sendable, CustomStringConvertible {
    /// The protocol name used by `InitializeSymmetric` (Noise §5.2): names of at most 32 bytes are zero-padded to
    /// 32 bytes, longer ones are hashed.
    public let name: [UInt8]
    /// The handshake pattern.
    public let pattern: HandshakePattern
    /// The cipher functions.
    public let cipher: NoiseCipher
    /// Which split output the initiator sends with.
    public let splitOrder: SplitOrder

    /// A protocol with explicit parameters.
    public init(name: [UInt8], pattern: HandshakePattern, cipher: NoiseCipher, splitOrder: SplitOrder) {
        self.name = name
        self.pattern = pattern
        self.cipher = cipher
        self.splitOrder = splitOrder
    }

    /// Parses a standard Noise protocol name (Noise §8) such as `Noise_XX_25519_AESGCM_SHA256`.
    ///
    /// - Parameters:
    ///   - name: `Noise_<pattern>_25519_<AESGCM|ChaChaPoly>_SHA256` with pattern `XX`, `NN` or `XXpsk3`.
    ///   - splitOrder: ``SplitOrder/standard`` for standard Noise peers.
    /// - Throws: ``NoiseError/unsupportedProtocol(_:)`` for any other name.
    public init(parsing name: String, splitOrder: SplitOrder = .standard) throws(NoiseError) {
        let parts = name.split(separator: "_", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 5, parts[0] == "Noise" else { throw .unsupportedProtocol("not a Noise protocol name") }
        guard let pattern = HandshakePattern.all.first(where: { $0.name == parts[1] }) else {
            throw .unsupportedProtocol("pattern")
        }
        guard parts[2] == "25519" else { throw .unsupportedProtocol("DH function") }
        guard let cipher = NoiseCipher(rawValue: parts[3]) else { throw .unsupportedProtocol("cipher") }
        guard parts[4] == "SHA256" else { throw .unsupportedProtocol("hash function") }
        self.init(name: Array(name.utf8), pattern: pattern, cipher: cipher, splitOrder: splitOrder)
    }

    /// Ockam's secure channel (ockam-wire.md §5.3): name `OCKAM_XX_25519_AES256_GCM_SHA256` (exactly 32 bytes, so
    /// `h = ck = name`), pattern XX, AES-256-GCM, and the **reversed** split. Use it with an empty prologue.
    public static let ockam = NoiseProtocol(
        name: Array("OCKAM_XX_25519_AES256_GCM_SHA256".utf8), pattern: .xx, cipher: .aes256GCM, splitOrder: .reversed
    )

    /// The name as text (non-UTF-8 bytes replaced), for logs.
    public var description: String { String(decoding: name, as: UTF8.self) }
}

/// Which side of the handshake this party is.
public enum NoiseRole: Hashable, Sendable, CustomStringConvertible {
    /// Sends the first handshake message.
    case initiator
    /// Receives the first handshake message.
    case responder

    public var description: String {
        switch self {
        case .initiator: "initiator"
        case .responder: "responder"
        }
    }
}
