// EdgeIdentity: Ockam identities (change histories), purpose-key attestations, credentials and trust policies.
import EdgeCrypto
import EdgeWire

/// Errors decoding or verifying identities, attestations and credentials. Descriptions name the failed check.
public enum IdentityError: Error, Hashable, Sendable, CustomStringConvertible {
    case malformed(String)
    case unsupportedVersion(UInt64)
    case unexpectedDataType(expected: UInt8, found: UInt64)
    case invalidSignature(String)
    case brokenChain(String)
    case subjectMismatch(String)
    case expired(String)
    case notYetValid(String)
    case untrustedIssuer(String)
    case wrongKeyType(String)
    case limitExceeded(String)
    case keyMismatch(String)

    public var description: String {
        switch self {
        case .malformed(let s): return "malformed \(s)"
        case .unsupportedVersion(let v): return "unsupported version \(v)"
        case .unexpectedDataType(let e, let f): return "unexpected data type \(f) (expected \(e))"
        case .invalidSignature(let s): return "invalid signature: \(s)"
        case .brokenChain(let s): return "broken change history: \(s)"
        case .subjectMismatch(let s): return "subject mismatch: \(s)"
        case .expired(let s): return "expired: \(s)"
        case .notYetValid(let s): return "not yet valid: \(s)"
        case .untrustedIssuer(let s): return "untrusted issuer: \(s)"
        case .wrongKeyType(let s): return "wrong key type: \(s)"
        case .limitExceeded(let s): return "limit exceeded: \(s)"
        case .keyMismatch(let s): return "key mismatch: \(s)"
        }
    }

    static func wire(_ error: any Error, _ what: String) -> IdentityError {
        if let identity = error as? IdentityError { return identity }
        return .malformed("\(what): \(error)")
    }
}

/// Seconds since the Unix epoch, UTC (Ockam's `TimestampInSeconds`).
public typealias Timestamp = UInt64

/// Allowed clock drift when checking "created in the future" (Ockam: 60 s).
public let maxClockDrift: Timestamp = 60

// MARK: - Identifier and change hash

/// An identity's identifier: the 32-byte hash of its first change. Text form `I` + 64 lowercase hex.
public struct Identifier: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(IdentityError) {
        guard bytes.count == 32 else { throw .malformed("identifier must be 32 bytes") }
        self.bytes = bytes
    }

    init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    /// Parses `I<64 hex>`.
    public init(parsing text: String) throws(IdentityError) {
        guard text.hasPrefix("I"), text.utf8.count == 65, let bytes = Hex.decode(text.dropFirst()) else {
            throw .malformed("identifier '\(text)' (expected I followed by 64 hex characters)")
        }
        self.bytes = bytes
    }

    public var description: String { "I" + Hex.encode(bytes) }
    public static func < (a: Identifier, b: Identifier) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
}

/// SHA-256 of a change's `data` bytes.
public struct ChangeHash: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public init(bytes: [UInt8]) throws(IdentityError) {
        guard bytes.count == 32 else { throw .malformed("change hash must be 32 bytes") }
        self.bytes = bytes
    }
    init(unchecked bytes: [UInt8]) { self.bytes = bytes }
    public var description: String { Hex.encode(bytes) }
}

// MARK: - Keys and signatures

/// A signing public key: Ed25519 (32 bytes) or ECDSA P-256 (65-byte uncompressed SEC1).
public enum VerifyingKey: Hashable, Sendable, CustomStringConvertible {
    case ed25519([UInt8])
    case p256([UInt8])

    public var description: String {
        switch self {
        case .ed25519(let k): return "Ed25519:\(Hex.encode(k))"
        case .p256(let k): return "P256:\(Hex.encode(k))"
        }
    }

    public var keyTypeName: String {
        switch self {
        case .ed25519: return "Ed25519"
        case .p256: return "ECDSA-P256"
        }
    }

    public var rawBytes: [UInt8] {
        switch self {
        case .ed25519(let k), .p256(let k): return k
        }
    }

    /// Verifies an Ockam signature over `SHA-256(data)` (spec §6.2): Ed25519 signs the 32-byte hash; ECDSA signs it
    /// with ECDSA-SHA256 (so the curve sees the double hash).
    public func verify(_ signature: Signature, over data: some Collection<UInt8>) -> Bool {
        let digest = SHA256.hash(Array(data))
        switch (self, signature) {
        case (.ed25519(let key), .ed25519(let sig)): return Ed25519.verify(signature: sig, message: digest, publicKey: key)
        case (.p256(let key), .p256(let sig)): return ECDSAP256.verify(signature: sig, message: digest, publicKey: key)
        default: return false
        }
    }

    /// CBOR `[0, [bytes32]]` or `[1, [bytes65]]`.
    func encode(into writer: inout CBORWriter) {
        writer.writeArrayHeader(2)
        switch self {
        case .ed25519(let k):
            writer.writeUnsigned(0)
            writer.writeArrayHeader(1)
            writer.writeBytes(k)
        case .p256(let k):
            writer.writeUnsigned(1)
            writer.writeArrayHeader(1)
            writer.writeBytes(k)
        }
    }

    static func decode(_ reader: inout CBORReader) throws -> VerifyingKey {
        let (variant, fields) = try CBORDecoding.enumHeader(&reader)
        guard fields >= 1 else { throw IdentityError.malformed("public key") }
        let key = Array(try reader.readBytes(limit: 65))
        try reader.skipValues(fields - 1)
        switch variant {
        case 0:
            guard key.count == 32 else { throw IdentityError.malformed("Ed25519 public key length \(key.count)") }
            return .ed25519(key)
        case 1:
            guard key.count == 65, key[0] == 0x04 else { throw IdentityError.malformed("P-256 public key") }
            return .p256(key)
        default: throw IdentityError.malformed("public key type \(variant)")
        }
    }
}

/// A signature: Ed25519 or ECDSA P-256 (`r‖s`), 64 bytes each.
public enum Signature: Hashable, Sendable {
    case ed25519([UInt8])
    case p256([UInt8])

    func encode(into writer: inout CBORWriter) {
        writer.writeArrayHeader(2)
        switch self {
        case .ed25519(let s):
            writer.writeUnsigned(0)
            writer.writeArrayHeader(1)
            writer.writeBytes(s)
        case .p256(let s):
            writer.writeUnsigned(1)
            writer.writeArrayHeader(1)
            writer.writeBytes(s)
        }
    }

    static func decode(_ reader: inout CBORReader) throws -> Signature {
        let (variant, fields) = try CBORDecoding.enumHeader(&reader)
        guard fields >= 1 else { throw IdentityError.malformed("signature") }
        let bytes = Array(try reader.readBytes(limit: 64))
        try reader.skipValues(fields - 1)
        guard bytes.count == 64 else { throw IdentityError.malformed("signature length \(bytes.count)") }
        switch variant {
        case 0: return .ed25519(bytes)
        case 1: return .p256(bytes)
        default: throw IdentityError.malformed("signature type \(variant)")
        }
    }
}

/// A private signing key held in guarded memory.
public struct SigningKey: Sendable {
    public enum Kind: String, Sendable { case ed25519 = "Ed25519", p256 = "ECDSA-P256" }
    public let kind: Kind
    /// Ed25519 seed or P-256 scalar (32 bytes).
    public let secret: SecretKey
    public let publicKey: VerifyingKey

    public init(kind: Kind, secret: SecretKey) throws(CryptoError) {
        self.kind = kind
        self.secret = secret
        switch kind {
        case .ed25519: publicKey = .ed25519(try Ed25519.publicKey(seed: secret))
        case .p256: publicKey = .p256(try ECDSAP256.publicKey(privateKey: secret))
        }
    }

    public static func generate(_ kind: Kind = .ed25519) -> SigningKey {
        switch kind {
        case .ed25519: return try! SigningKey(kind: kind, secret: Ed25519.generateSeed())  // fresh seed is always valid
        case .p256: return try! SigningKey(kind: kind, secret: ECDSAP256.generatePrivateKey())
        }
    }

    /// Signs `SHA-256(data)` the Ockam way.
    public func sign(_ data: [UInt8]) throws(CryptoError) -> Signature {
        let digest = SHA256.hash(data)
        switch kind {
        case .ed25519: return .ed25519(try Ed25519.sign(message: digest, seed: secret))
        case .p256: return .p256(try ECDSAP256.sign(message: digest, privateKey: secret))
        }
    }
}

// MARK: - VersionedData

/// `array(3) [version = 1, data_type, data bytes]`: the signed envelope of every identity object (spec §6.1).
public struct VersionedData: Hashable, Sendable {
    public static let change: UInt8 = 1
    public static let purposeKeyAttestation: UInt8 = 2
    public static let credential: UInt8 = 3

    public var version: UInt64
    public var dataType: UInt8
    public var data: [UInt8]

    public init(dataType: UInt8, data: [UInt8]) {
        version = 1
        self.dataType = dataType
        self.data = data
    }

    public func encode() -> [UInt8] {
        var writer = CBORWriter(capacity: data.count + 8)
        writer.writeArrayHeader(3)
        writer.writeUnsigned(version)
        writer.writeUnsigned(UInt64(dataType))
        writer.writeBytes(data)
        return writer.bytes
    }

    /// Decodes and checks version 1 and the expected data type.
    public static func decode(_ bytes: [UInt8], expecting dataType: UInt8) throws(IdentityError) -> VersionedData {
        do {
            var reader = CBORReader(bytes)
            let count = try reader.readArrayHeader(limit: 16)
            guard count >= 3 else { throw IdentityError.malformed("versioned data") }
            let version = try reader.readUnsigned()
            guard version == 1 else { throw IdentityError.unsupportedVersion(version) }
            let type = try reader.readUnsigned()
            guard type == UInt64(dataType) else { throw IdentityError.unexpectedDataType(expected: dataType, found: type) }
            let data = Array(try reader.readBytes(limit: IdentityLimits.maxObjectSize))
            try reader.skipValues(count - 3)
            try reader.expectEnd()
            var result = VersionedData(dataType: dataType, data: data)
            result.version = version
            return result
        } catch {
            throw IdentityError.wire(error, "versioned data")
        }
    }
}

/// Size limits for identity objects decoded from the network.
public enum IdentityLimits {
    /// Largest encoded change, attestation or credential.
    public static let maxObjectSize = 16 * 1024
    /// Most changes in a history.
    public static let maxChanges = 64
    /// Most attributes in a credential, and longest attribute key/value.
    public static let maxAttributes = 64
    public static let maxAttributeLength = 1024
    /// Most credentials presented at once.
    public static let maxCredentials = 8
}

enum CBORDecoding {
    /// minicbor enum: `array(2) [variant uint, array(k) fields]`; returns (variant, k) with the reader at the fields.
    static func enumHeader(_ reader: inout CBORReader) throws -> (UInt64, Int) {
        let count = try reader.readArrayHeader(limit: 16)
        guard count == 2 else { throw IdentityError.malformed("enum") }
        let variant = try reader.readUnsigned()
        let fields = try reader.readArrayHeader(limit: 16)
        return (variant, fields)
    }

    static func bytes32OrNull(_ reader: inout CBORReader, _ what: String) throws -> [UInt8]? {
        if reader.readNullIfPresent() { return nil }
        let bytes = Array(try reader.readBytes(limit: 32))
        guard bytes.count == 32 else { throw IdentityError.malformed("\(what) must be 32 bytes") }
        return bytes
    }
}

/// The current wall-clock time in Unix seconds (CLOCK_REALTIME).
public func currentTimestamp() -> Timestamp {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Timestamp(max(0, spec.tv_sec))
}

#if canImport(Glibc)
import Glibc
#endif
