// EdgeVault/Formats: the versioned on-disk formats (key files, vault.meta, records) and their bounded decoders.
//
// Every decoder takes the whole file, checks the hard size limit first, and reports malformed input as a
// `FormatError`; none of them traps or allocates in proportion to a length field. The layouts are documented
// byte by byte in docs/vault.md.
import EdgeCrypto
import EdgePOSIX

/// Why a vault file could not be decoded. Reasons name the structural defect only, never file contents.
enum FormatError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file is larger than the format's hard limit.
    case tooLarge(limit: Int)
    /// The file ends before the structure it announces.
    case truncated
    /// The file continues after the structure it announces.
    case trailingBytes
    /// The first four bytes are not the format's magic.
    case badMagic
    /// The version byte is not one this build reads.
    case unsupportedVersion(UInt8)
    /// The key-type byte names no known key type.
    case unknownKeyType(UInt8)
    /// Flag bits this version does not define are set.
    case unknownFlags(UInt8)
    /// Reserved bytes are not zero.
    case nonZeroReserved
    /// The record's SHA-256 checksum does not match its contents.
    case checksumMismatch
    /// The public key in the file does not hash to the handle in the file name (a renamed or swapped file).
    case handleMismatch
    /// The secret does not derive the public key stored in the file, or is not a valid key of its type.
    case publicKeyMismatch
    /// AEAD authentication of the encrypted secret failed (tampered or corrupted file, or another key).
    case authenticationFailed
    /// The key file is in plaintext but the vault is encrypted at rest, or the other way round.
    case encryptionMismatch(fileEncrypted: Bool)

    var description: String {
        switch self {
        case .tooLarge(let limit): "file is larger than the \(limit)-byte limit"
        case .truncated: "file is truncated"
        case .trailingBytes: "file has unexpected trailing bytes"
        case .badMagic: "file does not start with the expected magic bytes"
        case .unsupportedVersion(let version): "unsupported format version \(version)"
        case .unknownKeyType(let type): "unknown key type \(type)"
        case .unknownFlags(let flags): "unknown flag bits 0x\(Hex.encode([flags]))"
        case .nonZeroReserved: "reserved bytes are not zero"
        case .checksumMismatch: "checksum mismatch (corrupted contents)"
        case .handleMismatch:
            "the public key in the file does not match the handle in its name (renamed or swapped file)"
        case .publicKeyMismatch: "the secret does not match the public key stored with it (corrupted or swapped file)"
        case .authenticationFailed:
            "decryption failed: the file was modified or corrupted, or was encrypted with another key"
        case .encryptionMismatch(let fileEncrypted):
            fileEncrypted
                ? "the key file is encrypted but the vault is not encrypted at rest"
                : "the key file is stored in plaintext but the vault is encrypted at rest"
        }
    }
}

/// A bounds-checked forward reader over a file's bytes.
private struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func byte() throws(FormatError) -> UInt8 {
        guard remaining >= 1 else { throw .truncated }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func take(_ count: Int) throws(FormatError) -> UnsafeRawBufferPointer {
        guard count >= 0, remaining >= count else { throw .truncated }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
    }

    mutating func expectMagic(_ magic: [UInt8]) throws(FormatError) {
        guard remaining >= magic.count else {
            // A short prefix of the magic is a truncated file; anything else is foreign.
            if bytes.elementsEqual(magic.prefix(bytes.count)) { throw .truncated }
            throw .badMagic
        }
        guard try take(magic.count).elementsEqual(magic) else { throw .badMagic }
    }

    func expectEnd() throws(FormatError) {
        guard remaining == 0 else { throw .trailingBytes }
    }
}

// MARK: - Key files

/// The key file format, version 1 (`keys/<handle>.key`):
///
///     offset  size  field
///     0       4     magic "OEVK"
///     4       1     version = 1
///     5       1     key type (1 Ed25519, 2 ECDSA P-256, 3 X25519)
///     6       1     flags (bit 0: secret encrypted; other bits must be 0)
///     7       P     public key (P = 32, or 65 for P-256)
///     7+P     32    secret                                  (flags bit 0 clear)
///     7+P     12+48 nonce ‖ ChaCha20-Poly1305(secret) ‖ tag (flags bit 0 set; AAD = bytes 0..<7+P)
///
/// ### Invariants
/// - Files are at most ``maximumByteCount`` bytes; the exact length is determined by type and flags, and any
///   other length is rejected.
/// - When encrypted, the AEAD binds the whole header, public key included: a file cannot be re-labelled with
///   another type or public key without failing authentication, and the public key must hash to the handle in
///   the file name, so a file moved to another key's name is detected.
enum KeyFile {
    static let magic: [UInt8] = Array("OEVK".utf8)
    static let version: UInt8 = 1
    /// Hard limit on a key file's size; real files are 71 to 132 bytes.
    static let maximumByteCount = 4096
    static let encryptedFlag: UInt8 = 0x01
    static let nonceByteCount = ChaCha20Poly1305.nonceByteCount
    static let tagByteCount = ChaCha20Poly1305.tagByteCount
    static let secretByteCount = 32

    /// A decoded key file. `body` points into the decoder's input and is valid only as long as it is.
    struct Parsed {
        let type: KeyType
        let isEncrypted: Bool
        let publicKey: [UInt8]
        /// Bytes `0..<7+P`: the associated data of the encrypted form.
        let header: [UInt8]
        /// The plaintext secret, or `nonce ‖ ciphertext ‖ tag`.
        let body: UnsafeRawBufferPointer
    }

    /// The header (`magic ‖ version ‖ type ‖ flags ‖ public key`) of a key file.
    static func header(type: KeyType, encrypted: Bool, publicKey: [UInt8]) -> [UInt8] {
        magic + [version, type.rawValue, encrypted ? encryptedFlag : 0] + publicKey
    }

    /// The total length of a file of this type and encryption state.
    static func byteCount(type: KeyType, encrypted: Bool) -> Int {
        7 + type.publicKeyByteCount + (encrypted ? nonceByteCount + secretByteCount + tagByteCount : secretByteCount)
    }

    /// Decodes the structure of a key file (no cryptography).
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(FormatError) -> Parsed {
        guard bytes.count <= maximumByteCount else { throw .tooLarge(limit: maximumByteCount) }
        var reader = ByteReader(bytes)
        try reader.expectMagic(magic)
        let fileVersion = try reader.byte()
        guard fileVersion == version else { throw .unsupportedVersion(fileVersion) }
        let typeByte = try reader.byte()
        guard let type = KeyType(rawValue: typeByte) else { throw .unknownKeyType(typeByte) }
        let flags = try reader.byte()
        guard flags & ~encryptedFlag == 0 else { throw .unknownFlags(flags) }
        let encrypted = flags & encryptedFlag != 0
        let publicKey = [UInt8](try reader.take(type.publicKeyByteCount))
        let headerCount = reader.offset
        let body = try reader.take(encrypted ? nonceByteCount + secretByteCount + tagByteCount : secretByteCount)
        try reader.expectEnd()
        return Parsed(
            type: type, isEncrypted: encrypted, publicKey: publicKey,
            header: [UInt8](UnsafeRawBufferPointer(rebasing: bytes[..<headerCount])), body: body
        )
    }

    /// Recovers and verifies the secret of a parsed file.
    ///
    /// Decrypts when the file is encrypted, then re-derives the public key from the secret and compares it with
    /// the one stored in the file. Every temporary copy of the secret is zeroed.
    ///
    /// - Parameter key: the key-file encryption key; required exactly when `parsed.isEncrypted`.
    static func secret(of parsed: Parsed, key: SecretKey?) throws(FormatError) -> SecretKey {
        guard parsed.isEncrypted == (key != nil) else { throw .encryptionMismatch(fileEncrypted: parsed.isEncrypted) }
        let secret: SecretKey
        if let key {
            let nonce = [UInt8](UnsafeRawBufferPointer(rebasing: parsed.body[..<nonceByteCount]))
            let sealed = [UInt8](UnsafeRawBufferPointer(rebasing: parsed.body[nonceByteCount...]))
            var plaintext: [UInt8]
            do {
                plaintext = try ChaCha20Poly1305.open(key: key, nonce: nonce, aad: parsed.header, ciphertext: sealed)
            } catch {
                throw .authenticationFailed
            }
            defer { Memory.zero(&plaintext) }
            guard plaintext.count == secretByteCount else { throw .authenticationFailed }
            secret = SecretKey(copying: plaintext, isolated: true)  // long-term: pages of its own, read-only
        } else {
            secret = SecretKey(SecretBytes(copying: parsed.body, isolated: true))
        }
        guard let derived = try? parsed.type.publicKey(secret: secret), derived == parsed.publicKey else {
            throw .publicKeyMismatch
        }
        return secret
    }

    /// Calls `body` with the encoded file for `secret`, then zeroes the encoding (it holds the plaintext secret
    /// when `key` is `nil`).
    ///
    /// - Parameter key: the key-file encryption key, or `nil` for a plaintext file.
    static func withEncoded<R, E: Error>(
        type: KeyType, publicKey: [UInt8], secret: SecretKey, key: SecretKey?,
        _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        let header = header(type: type, encrypted: key != nil, publicKey: publicKey)
        var encoded: [UInt8]
        if let key {
            var plaintext = secret.withUnsafeBytes { [UInt8]($0) }
            defer { Memory.zero(&plaintext) }
            let nonce = Random.bytes(count: nonceByteCount)
            // Cannot fail: the key is 32 bytes, the nonce 12, the message 32.
            let sealed = (try? ChaCha20Poly1305.seal(key: key, nonce: nonce, aad: header, plaintext: plaintext)) ?? []
            precondition(sealed.count == secretByteCount + tagByteCount, "EdgeVault: ChaCha20-Poly1305 seal failed")
            encoded = header + nonce + sealed
        } else {
            encoded = [UInt8](repeating: 0, count: header.count + secretByteCount)
            encoded.withUnsafeMutableBytes { out in
                out.copyBytes(from: header)
                secret.withUnsafeBytes { s in
                    UnsafeMutableRawBufferPointer(rebasing: out[header.count...]).copyMemory(from: s)
                }
            }
        }
        defer { Memory.zero(&encoded) }
        return try withBytes(encoded, body)
    }
}

// MARK: - vault.meta

/// The vault metadata file, version 1 (`vault.meta`): records whether the vault is encrypted at rest and, if so,
/// lets the vault recognise its key before touching any key file.
///
///     offset  size  field
///     0       4     magic "OEVM"
///     4       1     version = 1
///     5       1     flags (bit 0: encrypted at rest; other bits must be 0)
///     6       2     reserved, zero
///     8       12    nonce          (encrypted only)
///     20      16    key-check tag  (encrypted only): ChaCha20-Poly1305 tag of the empty message,
///                                  AAD = bytes 0..<8 ‖ "ockam-edge vault key check", under the check key
enum MetaFile {
    static let fileName = "vault.meta"
    static let magic: [UInt8] = Array("OEVM".utf8)
    static let version: UInt8 = 1
    static let encryptedFlag: UInt8 = 0x01
    /// Hard limit on the file's size; real files are 8 or 36 bytes.
    static let maximumByteCount = 256
    static let checkLabel: [UInt8] = Array("ockam-edge vault key check".utf8)

    struct Parsed: Equatable {
        let isEncrypted: Bool
        let header: [UInt8]
        let nonce: [UInt8]
        let tag: [UInt8]
    }

    static func header(encrypted: Bool) -> [UInt8] {
        magic + [version, encrypted ? encryptedFlag : 0, 0, 0]
    }

    /// A new metadata file; `checkKey` (the derived check key) makes it an encrypted vault's.
    static func encode(checkKey: SecretKey?) -> [UInt8] {
        let header = header(encrypted: checkKey != nil)
        guard let checkKey else { return header }
        let nonce = Random.bytes(count: ChaCha20Poly1305.nonceByteCount)
        let tag =
            (try? ChaCha20Poly1305.seal(key: checkKey, nonce: nonce, aad: header + checkLabel, plaintext: [])) ?? []
        precondition(tag.count == ChaCha20Poly1305.tagByteCount, "EdgeVault: ChaCha20-Poly1305 seal failed")
        return header + nonce + tag
    }

    static func parse(_ bytes: UnsafeRawBufferPointer) throws(FormatError) -> Parsed {
        guard bytes.count <= maximumByteCount else { throw .tooLarge(limit: maximumByteCount) }
        var reader = ByteReader(bytes)
        try reader.expectMagic(magic)
        let fileVersion = try reader.byte()
        guard fileVersion == version else { throw .unsupportedVersion(fileVersion) }
        let flags = try reader.byte()
        guard flags & ~encryptedFlag == 0 else { throw .unknownFlags(flags) }
        let reserved = try reader.take(2)
        guard reserved.allSatisfy({ $0 == 0 }) else { throw .nonZeroReserved }
        let encrypted = flags & encryptedFlag != 0
        var nonce: [UInt8] = []
        var tag: [UInt8] = []
        if encrypted {
            nonce = [UInt8](try reader.take(ChaCha20Poly1305.nonceByteCount))
            tag = [UInt8](try reader.take(ChaCha20Poly1305.tagByteCount))
        }
        try reader.expectEnd()
        return Parsed(isEncrypted: encrypted, header: header(encrypted: encrypted), nonce: nonce, tag: tag)
    }

    /// Whether `checkKey` is the key this (encrypted) metadata was written with.
    static func accepts(_ parsed: Parsed, checkKey: SecretKey) -> Bool {
        guard parsed.isEncrypted else { return false }
        return
            (try? ChaCha20Poly1305.open(
                key: checkKey, nonce: parsed.nonce, aad: parsed.header + checkLabel, ciphertext: parsed.tag
            )) != nil
    }
}

// MARK: - Records

/// The record file format, version 1 (`records/<kind>/<name>`): non-secret identity data with an integrity
/// checksum (SD cards do flip bits).
///
///     offset  size  field
///     0       4     magic "OEVR"
///     4       1     version = 1
///     5       3     reserved, zero
///     8       4     payload length N, big-endian (N ≤ 1 MiB)
///     12      N     payload
///     12+N    32    SHA-256 of bytes 0..<12+N
enum RecordFile {
    static let magic: [UInt8] = Array("OEVR".utf8)
    static let version: UInt8 = 1
    /// The largest payload a record may hold: 1 MiB.
    static let maximumPayloadByteCount = 1 << 20
    static let overhead = 12 + SHA256.digestByteCount
    /// Hard limit on a record file's size.
    static var maximumByteCount: Int { maximumPayloadByteCount + overhead }

    static func encode(_ payload: [UInt8]) -> [UInt8] {
        precondition(payload.count <= maximumPayloadByteCount)
        let length = UInt32(payload.count)
        var out = magic + [version, 0, 0, 0]
        out += [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)]
        out += payload
        out += SHA256.hash(out)
        return out
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws(FormatError) -> [UInt8] {
        guard bytes.count <= maximumByteCount else { throw .tooLarge(limit: maximumByteCount) }
        var reader = ByteReader(bytes)
        try reader.expectMagic(magic)
        let fileVersion = try reader.byte()
        guard fileVersion == version else { throw .unsupportedVersion(fileVersion) }
        guard try reader.take(3).allSatisfy({ $0 == 0 }) else { throw .nonZeroReserved }
        let lengthBytes = try reader.take(4)
        let length = lengthBytes.reduce(0) { $0 << 8 | Int($1) }
        guard length <= maximumPayloadByteCount else { throw .tooLarge(limit: maximumByteCount) }
        let payload = try reader.take(length)
        let checksum = try reader.take(SHA256.digestByteCount)
        try reader.expectEnd()
        let expected = SHA256.hash(UnsafeRawBufferPointer(rebasing: bytes[..<(12 + length)]))
        guard checksum.elementsEqual(expected) else { throw .checksumMismatch }
        return [UInt8](payload)
    }
}

// MARK: - Encryption keys

/// The keys a vault encrypted at rest uses, derived from the operator's 32-byte key with HKDF-SHA256
/// (salt `"ockam-edge vault v1"`): one for key files (info `"key files"`) and one for the key check in
/// `vault.meta` (info `"key check"`).
///
/// ### Invariants
/// - The operator key itself never encrypts anything; the two derived keys are independent.
struct VaultCipher: Sendable {
    static let salt: [UInt8] = Array("ockam-edge vault v1".utf8)
    let keyFileKey: SecretKey
    let checkKey: SecretKey

    /// - Returns: `nil` if `operatorKey` is not 32 bytes.
    init?(operatorKey: SecretKey) {
        guard operatorKey.count == 32,
            let keyFileKey = try? HKDF.deriveKey(
                salt: Self.salt, ikm: operatorKey, info: Array("key files".utf8), length: 32),
            let checkKey = try? HKDF.deriveKey(
                salt: Self.salt, ikm: operatorKey, info: Array("key check".utf8), length: 32)
        else { return nil }
        self.keyFileKey = keyFileKey
        self.checkKey = checkKey
    }
}
