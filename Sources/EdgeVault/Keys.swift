// EdgeVault/Keys: key types, key handles, and the mapping from a key type to its EdgeCrypto primitive.
import EdgeCrypto

/// The kinds of secret key a vault stores. Every secret is 32 bytes.
///
/// The raw value is the key-type byte of the key file format (docs/vault.md, "Key files").
public enum KeyType: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Ed25519 signing key: the 32-byte RFC 8032 seed; 32-byte public key.
    case ed25519 = 1
    /// ECDSA P-256 signing key: the 32-byte big-endian scalar in `1..<n`; 65-byte uncompressed public key.
    case ecdsaP256 = 2
    /// X25519 key-agreement key: the 32-byte scalar (clamped by the primitive); 32-byte public key.
    case x25519 = 3

    /// The length of the secret (32 for every type).
    public var secretByteCount: Int { 32 }

    /// The length of the public key: 32 (Ed25519, X25519) or 65 (P-256, uncompressed SEC1 `04 ‖ X ‖ Y`).
    public var publicKeyByteCount: Int {
        switch self {
        case .ed25519: Ed25519.publicKeyByteCount
        case .ecdsaP256: ECDSAP256.publicKeyByteCount
        case .x25519: X25519.keyByteCount
        }
    }

    /// A short lowercase name (`ed25519`, `ecdsa-p256`, `x25519`), as shown by `ockam-edge vault` commands.
    public var description: String {
        switch self {
        case .ed25519: "ed25519"
        case .ecdsaP256: "ecdsa-p256"
        case .x25519: "x25519"
        }
    }

    /// A new random secret of this type (P-256 scalars are redrawn until in range).
    func generateSecret() -> SecretKey {
        switch self {
        case .ed25519: Ed25519.generateSeed()
        case .ecdsaP256: ECDSAP256.generatePrivateKey()
        case .x25519: X25519.generatePrivateKey()
        }
    }

    /// The public key for `secret`, derived with the EdgeCrypto primitive.
    ///
    /// - Throws: ``CryptoError/invalidKeySize`` or ``CryptoError/invalidPrivateKey`` (P-256 scalar out of range).
    func publicKey(secret: some KeyMaterial) throws(CryptoError) -> [UInt8] {
        switch self {
        case .ed25519: try Ed25519.publicKey(seed: secret)
        case .ecdsaP256: try ECDSAP256.publicKey(privateKey: secret)
        case .x25519: try X25519.publicKey(privateKey: secret)
        }
    }
}

/// The identifier of a key in a vault: SHA-256 of its public key bytes (32 bytes for Ed25519 and X25519, the
/// 65-byte uncompressed encoding for P-256), as Ockam's vaults name keys. Shown as 64 lowercase hex characters.
///
/// ### Invariants
/// - Always exactly 32 bytes.
/// - Derived from public data only: a handle reveals nothing about the secret.
public struct KeyHandle: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The 32 digest bytes.
    public let bytes: [UInt8]

    /// The handle of `publicKey`: `SHA-256(publicKey)`.
    public init(publicKey: [UInt8]) {
        bytes = SHA256.hash(publicKey)
    }

    /// A handle from its 32 digest bytes; `nil` for any other length.
    public init?(bytes: [UInt8]) {
        guard bytes.count == SHA256.digestByteCount else { return nil }
        self.bytes = bytes
    }

    /// A handle from 64 hex characters (either case); `nil` for anything else.
    public init?(hex: String) {
        guard let decoded = Hex.decode(hex), decoded.count == SHA256.digestByteCount else { return nil }
        bytes = decoded
    }

    /// The 64 lowercase hex characters.
    public var hex: String { Hex.encode(bytes) }

    /// The 64 lowercase hex characters.
    public var description: String { hex }

    /// Orders handles by their bytes (the same order as their hex strings).
    public static func < (lhs: KeyHandle, rhs: KeyHandle) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    /// The key file name: `<64 lowercase hex>.key`.
    var fileName: String { hex + KeyHandle.fileSuffix }

    static let fileSuffix = ".key"

    /// The handle named by a key file name, or `nil` if `name` is not exactly `<64 lowercase hex>.key`.
    init?(fileName name: String) {
        guard name.utf8.count == 64 + KeyHandle.fileSuffix.utf8.count, name.hasSuffix(KeyHandle.fileSuffix) else {
            return nil
        }
        let hex = String(name.dropLast(KeyHandle.fileSuffix.count))
        guard hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return nil }
        self.init(hex: hex)
    }
}

/// A key stored in a vault, as listed by ``Vault/listKeys()``: public information only.
public struct StoredKey: Hashable, Sendable, CustomStringConvertible {
    /// The key's handle, `SHA-256(publicKey)`.
    public let handle: KeyHandle
    /// The key's type.
    public let type: KeyType
    /// The public key bytes (32, or 65 for P-256).
    public let publicKey: [UInt8]

    /// `<type> <handle>`.
    public var description: String { "\(type) \(handle.hex)" }
}

/// Lowercase hex encoding and decoding for public values (handles, diagnostics).
enum Hex {
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The value of one ASCII hex digit (either case), or `nil`.
    static func value(_ character: UInt8) -> UInt8? {
        switch character {
        case 0x30...0x39: character - 0x30
        case 0x61...0x66: character - 0x61 + 10
        case 0x41...0x46: character - 0x41 + 10
        default: nil
        }
    }

    static func decode(_ string: String) -> [UInt8]? {
        let utf8 = Array(string.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = value(utf8[index]), let low = value(utf8[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }
}
