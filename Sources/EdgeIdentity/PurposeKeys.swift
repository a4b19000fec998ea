// Purpose-key attestations (spec §6.3): an identity vouching for its secure-channel or credential-signing key.
import EdgeCrypto
import EdgeWire

/// `[0, [bytes32 X25519]]` (secure-channel static key) or `[1, [VerifyingKey]]` (credential signing key).
public enum PurposePublicKey: Hashable, Sendable {
    case secureChannelStatic([UInt8])
    case credentialSigning(VerifyingKey)

    func encode(into writer: inout CBORWriter) {
        writer.writeArrayHeader(2)
        switch self {
        case .secureChannelStatic(let key):
            writer.writeUnsigned(0)
            writer.writeArrayHeader(1)
            writer.writeBytes(key)
        case .credentialSigning(let key):
            writer.writeUnsigned(1)
            writer.writeArrayHeader(1)
            key.encode(into: &writer)
        }
    }

    static func decode(_ reader: inout CBORReader) throws -> PurposePublicKey {
        let (variant, fields) = try CBORDecoding.enumHeader(&reader)
        guard fields >= 1 else { throw IdentityError.malformed("purpose public key") }
        let result: PurposePublicKey
        switch variant {
        case 0:
            let key = Array(try reader.readBytes(limit: 32))
            guard key.count == 32 else { throw IdentityError.malformed("X25519 key length") }
            result = .secureChannelStatic(key)
        case 1:
            result = .credentialSigning(try VerifyingKey.decode(&reader))
        default:
            throw IdentityError.malformed("purpose key type \(variant)")
        }
        try reader.skipValues(fields - 1)
        return result
    }
}

/// `PurposeKeyAttestationData = array(5) [subject, subject_latest_change_hash, public_key, created_at, expires_at]`.
public struct PurposeKeyAttestationData: Hashable, Sendable {
    public var subject: Identifier
    public var subjectLatestChangeHash: ChangeHash
    public var publicKey: PurposePublicKey
    public var createdAt: Timestamp
    public var expiresAt: Timestamp

    public func encode() -> [UInt8] {
        var writer = CBORWriter(capacity: 128)
        writer.writeArrayHeader(5)
        writer.writeBytes(subject.bytes)
        writer.writeBytes(subjectLatestChangeHash.bytes)
        publicKey.encode(into: &writer)
        writer.writeUnsigned(createdAt)
        writer.writeUnsigned(expiresAt)
        return writer.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(IdentityError) -> PurposeKeyAttestationData {
        do {
            var reader = CBORReader(bytes)
            let count = try reader.readArrayHeader(limit: 16)
            guard count >= 5 else { throw IdentityError.malformed("attestation data") }
            guard let subject = try CBORDecoding.bytes32OrNull(&reader, "subject"),
                let hash = try CBORDecoding.bytes32OrNull(&reader, "subject latest change hash")
            else { throw IdentityError.malformed("attestation subject") }
            let key = try PurposePublicKey.decode(&reader)
            let created = try reader.readUnsigned()
            let expires = try reader.readUnsigned()
            try reader.skipValues(count - 5)
            try reader.expectEnd()
            return PurposeKeyAttestationData(
                subject: Identifier(unchecked: subject), subjectLatestChangeHash: ChangeHash(unchecked: hash),
                publicKey: key, createdAt: created, expiresAt: expires)
        } catch {
            throw IdentityError.wire(error, "attestation data")
        }
    }
}

/// `PurposeKeyAttestation = array(2) [data (VersionedData bytes), signature]`, signed by the subject's latest key.
public struct PurposeKeyAttestation: Hashable, Sendable {
    public let data: [UInt8]
    public let signature: Signature
    public let attestationData: PurposeKeyAttestationData

    /// Default lifetime of a purpose key: 5 years (Ockam's default).
    public static let defaultLifetime: Timestamp = 5 * 365 * 24 * 3600

    init(data: [UInt8], signature: Signature) throws(IdentityError) {
        self.data = data
        self.signature = signature
        attestationData = try PurposeKeyAttestationData.decode(
            VersionedData.decode(data, expecting: VersionedData.purposeKeyAttestation).data)
    }

    public func encode(into writer: inout CBORWriter) {
        writer.writeArrayHeader(2)
        writer.writeBytes(data)
        signature.encode(into: &writer)
    }

    public func encode() -> [UInt8] {
        var writer = CBORWriter(capacity: data.count + 80)
        encode(into: &writer)
        return writer.bytes
    }

    static func decode(_ reader: inout CBORReader) throws -> PurposeKeyAttestation {
        let count = try reader.readArrayHeader(limit: 16)
        guard count >= 2 else { throw IdentityError.malformed("purpose key attestation") }
        let data = Array(try reader.readBytes(limit: IdentityLimits.maxObjectSize))
        let signature = try Signature.decode(&reader)
        try reader.skipValues(count - 2)
        return try PurposeKeyAttestation(data: data, signature: signature)
    }

    public init(decoding bytes: [UInt8]) throws(IdentityError) {
        do {
            var reader = CBORReader(bytes)
            self = try Self.decode(&reader)
            try reader.expectEnd()
        } catch {
            throw IdentityError.wire(error, "purpose key attestation")
        }
    }

    /// Attests `publicKey` for `identity`, signed with the identity's current primary key.
    public static func create(
        for identity: Identity, signingKey: SigningKey, publicKey: PurposePublicKey,
        now: Timestamp = currentTimestamp(), lifetime: Timestamp = defaultLifetime
    ) throws(IdentityError) -> PurposeKeyAttestation {
        guard signingKey.publicKey == identity.primaryKey else {
            throw .keyMismatch("the signing key is not the identity's primary key")
        }
        let latest = identity.latestChange.changeData
        let created = max(now, latest.attestationsValidFrom)
        let expires = min(created + lifetime, latest.attestationsValidUntil)
        let body = PurposeKeyAttestationData(
            subject: identity.identifier, subjectLatestChangeHash: identity.latestChangeHash, publicKey: publicKey,
            createdAt: created, expiresAt: expires)
        let data = VersionedData(dataType: VersionedData.purposeKeyAttestation, data: body.encode()).encode()
        do {
            return try PurposeKeyAttestation(data: data, signature: signingKey.sign(data))
        } catch let error as IdentityError {
            throw error
        } catch {
            throw .invalidSignature("signing failed: \(error)")
        }
    }

    /// Ockam's checks (spec §6.3): subject, latest change hash, validity window inside the identity's, not created
    /// more than 60 s in the future, not expired, signed by the latest primary key.
    public func verify(subject identity: Identity, now: Timestamp = currentTimestamp()) throws(IdentityError) {
        let body = attestationData
        guard body.subject == identity.identifier else {
            throw .subjectMismatch("attestation is for \(body.subject), not \(identity.identifier)")
        }
        guard body.subjectLatestChangeHash == identity.latestChangeHash else {
            throw .subjectMismatch("attestation does not refer to the identity's latest change")
        }
        let latest = identity.latestChange.changeData
        guard body.expiresAt <= latest.attestationsValidUntil else {
            throw .expired("attestation outlives the identity's validity")
        }
        guard body.createdAt >= latest.attestationsValidFrom else {
            throw .notYetValid("attestation predates the identity's latest change")
        }
        guard body.createdAt <= now + maxClockDrift else { throw .notYetValid("attestation created in the future") }
        guard body.expiresAt > now else { throw .expired("purpose key attestation expired at \(body.expiresAt)") }
        guard identity.primaryKey.verify(signature, over: data) else {
            throw .invalidSignature("purpose key attestation is not signed by \(identity.identifier)")
        }
    }

    /// The attested X25519 key, if this is a secure-channel attestation.
    public var secureChannelKey: [UInt8]? {
        if case .secureChannelStatic(let key) = attestationData.publicKey { return key }
        return nil
    }
}
