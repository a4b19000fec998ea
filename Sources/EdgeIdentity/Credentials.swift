// Credentials (spec §6.4): attributes about a subject, signed by an authority's credential purpose key.
import EdgeCrypto
import EdgeWire

/// Attribute map with a schema number (`array(2) [schema, map{bytes: bytes}]`).
public struct Attributes: Hashable, Sendable {
    public var schema: UInt64
    /// Keys and values are byte strings, normally UTF-8.
    public var map: [[UInt8]: [UInt8]]

    public init(schema: UInt64 = 1, map: [[UInt8]: [UInt8]] = [:]) {
        self.schema = schema
        self.map = map
    }

    public init(schema: UInt64 = 1, strings: [String: String]) {
        self.schema = schema
        map = Dictionary(uniqueKeysWithValues: strings.map { (Array($0.key.utf8), Array($0.value.utf8)) })
    }

    /// UTF-8 attributes as strings (non-UTF-8 ones are left out).
    public var strings: [String: String] {
        var out: [String: String] = [:]
        for (k, v) in map {
            if let key = String(validating: k, as: UTF8.self), let value = String(validating: v, as: UTF8.self) {
                out[key] = value
            }
        }
        return out
    }

    func encode(into writer: inout CBORWriter) {
        writer.writeArrayHeader(2)
        writer.writeUnsigned(schema)
        writer.writeMapHeader(map.count)
        // BTreeMap iteration order: lexicographic by key bytes.
        for key in map.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            writer.writeBytes(key)
            writer.writeBytes(map[key]!)
        }
    }

    static func decode(_ reader: inout CBORReader) throws -> Attributes {
        let count = try reader.readArrayHeader(limit: 16)
        guard count >= 2 else { throw IdentityError.malformed("attributes") }
        let schema = try reader.readUnsigned()
        let entries = try reader.readMapHeader(limit: IdentityLimits.maxAttributes)
        var map: [[UInt8]: [UInt8]] = [:]
        for _ in 0..<entries {
            let key = Array(try reader.readBytes(limit: IdentityLimits.maxAttributeLength))
            let value = Array(try reader.readBytes(limit: IdentityLimits.maxAttributeLength))
            guard map[key] == nil else { throw IdentityError.malformed("duplicate attribute key") }
            map[key] = value
        }
        try reader.skipValues(count - 2)
        return Attributes(schema: schema, map: map)
    }
}

/// `CredentialData = array(5) [subject?, subject_latest_change_hash?, attributes, created_at, expires_at]`.
public struct CredentialData: Hashable, Sendable {
    public var subject: Identifier?
    public var subjectLatestChangeHash: ChangeHash?
    public var attributes: Attributes
    public var createdAt: Timestamp
    public var expiresAt: Timestamp

    public func encode() -> [UInt8] {
        var writer = CBORWriter(capacity: 128)
        writer.writeArrayHeader(5)
        if let subject { writer.writeBytes(subject.bytes) } else { writer.writeNull() }
        if let subjectLatestChangeHash { writer.writeBytes(subjectLatestChangeHash.bytes) } else { writer.writeNull() }
        attributes.encode(into: &writer)
        writer.writeUnsigned(createdAt)
        writer.writeUnsigned(expiresAt)
        return writer.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(IdentityError) -> CredentialData {
        do {
            var reader = CBORReader(bytes)
            let count = try reader.readArrayHeader(limit: 16)
            guard count >= 5 else { throw IdentityError.malformed("credential data") }
            let subject = try CBORDecoding.bytes32OrNull(&reader, "subject").map(Identifier.init(unchecked:))
            let hash = try CBORDecoding.bytes32OrNull(&reader, "subject change hash").map(ChangeHash.init(unchecked:))
            let attributes = try Attributes.decode(&reader)
            let created = try reader.readUnsigned()
            let expires = try reader.readUnsigned()
            try reader.skipValues(count - 5)
            try reader.expectEnd()
            return CredentialData(
                subject: subject, subjectLatestChangeHash: hash, attributes: attributes, createdAt: created,
                expiresAt: expires)
        } catch {
            throw IdentityError.wire(error, "credential data")
        }
    }
}

/// `Credential = array(2) [data (VersionedData bytes), signature]`.
public struct Credential: Hashable, Sendable {
    public let data: [UInt8]
    public let signature: Signature
    public let credentialData: CredentialData

    /// Default lifetime of a credential issued by an authority: 30 days (Ockam's default).
    public static let defaultLifetime: Timestamp = 30 * 24 * 3600

    init(data: [UInt8], signature: Signature) throws(IdentityError) {
        self.data = data
        self.signature = signature
        credentialData = try CredentialData.decode(VersionedData.decode(data, expecting: VersionedData.credential).data)
    }

    func encode(into writer: inout CBORWriter) {
        writer.writeArrayHeader(2)
        writer.writeBytes(data)
        signature.encode(into: &writer)
    }

    static func decode(_ reader: inout CBORReader) throws -> Credential {
        let count = try reader.readArrayHeader(limit: 16)
        guard count >= 2 else { throw IdentityError.malformed("credential") }
        let data = Array(try reader.readBytes(limit: IdentityLimits.maxObjectSize))
        let signature = try Signature.decode(&reader)
        try reader.skipValues(count - 2)
        return try Credential(data: data, signature: signature)
    }
}

/// `CredentialAndPurposeKey = array(2) [Credential, PurposeKeyAttestation of the issuer's signing key]`.
public struct CredentialAndPurposeKey: Hashable, Sendable {
    public let credential: Credential
    public let issuerAttestation: PurposeKeyAttestation

    public var subject: Identifier? { credential.credentialData.subject }
    public var issuer: Identifier { issuerAttestation.attestationData.subject }
    public var attributes: Attributes { credential.credentialData.attributes }
    public var expiresAt: Timestamp { credential.credentialData.expiresAt }

    public func encode(into writer: inout CBORWriter) {
        writer.writeArrayHeader(2)
        credential.encode(into: &writer)
        issuerAttestation.encode(into: &writer)
    }

    public func encode() -> [UInt8] {
        var writer = CBORWriter(capacity: 512)
        encode(into: &writer)
        return writer.bytes
    }

    public static func decode(_ reader: inout CBORReader) throws -> CredentialAndPurposeKey {
        let count = try reader.readArrayHeader(limit: 16)
        guard count >= 2 else { throw IdentityError.malformed("credential and purpose key") }
        let credential = try Credential.decode(&reader)
        let attestation = try PurposeKeyAttestation.decode(&reader)
        try reader.skipValues(count - 2)
        return CredentialAndPurposeKey(credential: credential, issuerAttestation: attestation)
    }

    public init(credential: Credential, issuerAttestation: PurposeKeyAttestation) {
        self.credential = credential
        self.issuerAttestation = issuerAttestation
    }

    public init(decoding bytes: [UInt8]) throws(IdentityError) {
        do {
            var reader = CBORReader(bytes)
            self = try Self.decode(&reader)
            try reader.expectEnd()
        } catch {
            throw IdentityError.wire(error, "credential")
        }
    }

    /// Issues a credential: `authority` signs `attributes` about `subject` with its credential-signing purpose key.
    public static func issue(
        subject: Identity, attributes: Attributes, issuerAttestation: PurposeKeyAttestation,
        credentialSigningKey: SigningKey, now: Timestamp = currentTimestamp(), lifetime: Timestamp = Credential.defaultLifetime
    ) throws(IdentityError) -> CredentialAndPurposeKey {
        guard case .credentialSigning(let attested) = issuerAttestation.attestationData.publicKey,
            attested == credentialSigningKey.publicKey
        else { throw .keyMismatch("the signing key is not the attested credential-signing key") }
        let created = max(now, issuerAttestation.attestationData.createdAt)
        let expires = min(created + lifetime, issuerAttestation.attestationData.expiresAt)
        let body = CredentialData(
            subject: subject.identifier, subjectLatestChangeHash: subject.latestChangeHash, attributes: attributes,
            createdAt: created, expiresAt: expires)
        let data = VersionedData(dataType: VersionedData.credential, data: body.encode()).encode()
        do {
            let credential = try Credential(data: data, signature: credentialSigningKey.sign(data))
            return CredentialAndPurposeKey(credential: credential, issuerAttestation: issuerAttestation)
        } catch let error as IdentityError {
            throw error
        } catch {
            throw .invalidSignature("signing failed: \(error)")
        }
    }

    /// Checks only the credential's signature against the key in the attached issuer attestation (no trust decision).
    public func verifySignature() throws(IdentityError) {
        guard case .credentialSigning(let key) = issuerAttestation.attestationData.publicKey else {
            throw .wrongKeyType("issuer attestation is not for a credential-signing key")
        }
        guard key.verify(credential.signature, over: credential.data) else {
            throw .invalidSignature("credential signature does not verify with the issuer's credential key")
        }
    }

    /// Ockam's checks (spec §6.4): the issuer attestation verifies against a trusted authority, its key is a
    /// credential-signing key, the signature verifies, the subject is `subject`, validity nests inside the issuer
    /// key's, not created in the future (60 s drift), not expired.
    public func verify(
        subject expectedSubject: Identifier, authorities: [Identity], now: Timestamp = currentTimestamp()
    ) throws(IdentityError) {
        guard let authority = authorities.first(where: { $0.identifier == issuer }) else {
            throw .untrustedIssuer("credential issued by \(issuer), which is not a trusted authority")
        }
        try issuerAttestation.verify(subject: authority, now: now)
        try verifySignature()
        let body = credential.credentialData
        guard let subject = body.subject else { throw .subjectMismatch("credential has no subject") }
        guard subject == expectedSubject else {
            throw .subjectMismatch("credential is for \(subject), not \(expectedSubject)")
        }
        let purpose = issuerAttestation.attestationData
        guard purpose.createdAt <= body.createdAt else { throw .notYetValid("credential predates its issuer key") }
        guard body.expiresAt <= purpose.expiresAt else { throw .expired("credential outlives its issuer key") }
        guard body.createdAt <= now + maxClockDrift else { throw .notYetValid("credential created in the future") }
        guard body.expiresAt > now else { throw .expired("credential expired at \(body.expiresAt)") }
    }
}

/// The identity payload of handshake messages 2 and 3: `array(3) [change_history, purpose_key_attestation, credentials]`.
public struct IdentityAndCredentials: Sendable {
    public var identity: Identity
    public var attestation: PurposeKeyAttestation
    public var credentials: [CredentialAndPurposeKey]

    public init(identity: Identity, attestation: PurposeKeyAttestation, credentials: [CredentialAndPurposeKey]) {
        self.identity = identity
        self.attestation = attestation
        self.credentials = credentials
    }

    public func encode() -> [UInt8] {
        var writer = CBORWriter(capacity: 512)
        writer.writeArrayHeader(3)
        writer.writeRaw(identity.encodedHistory)
        attestation.encode(into: &writer)
        writer.writeArrayHeader(credentials.count)
        for credential in credentials { credential.encode(into: &writer) }
        return writer.bytes
    }

    public init(decoding bytes: [UInt8]) throws(IdentityError) {
        do {
            var reader = CBORReader(bytes)
            let count = try reader.readArrayHeader(limit: 16)
            guard count >= 3 else { throw IdentityError.malformed("identity payload") }
            let history = try reader.skipValue()
            identity = try Identity(decoding: Array(history))
            attestation = try PurposeKeyAttestation.decode(&reader)
            let n = try reader.readArrayHeader(limit: IdentityLimits.maxCredentials)
            credentials = try (0..<n).map { _ in try CredentialAndPurposeKey.decode(&reader) }
            try reader.skipValues(count - 3)
            try reader.expectEnd()
        } catch {
            throw IdentityError.wire(error, "identity payload")
        }
    }
}

/// The `RefreshCredentials` message of a secure channel: `array(2) [ChangeHistory, [CredentialAndPurposeKey…]]`.
public struct RefreshCredentials: Sendable {
    public var identity: Identity
    public var credentials: [CredentialAndPurposeKey]

    public init(identity: Identity, credentials: [CredentialAndPurposeKey]) {
        self.identity = identity
        self.credentials = credentials
    }

    public init(reading reader: inout CBORReader) throws(IdentityError) {
        do {
            let count = try reader.readArrayHeader(limit: 16)
            guard count >= 2 else { throw IdentityError.malformed("refresh credentials") }
            identity = try Identity(decoding: Array(try reader.skipValue()))
            let n = try reader.readArrayHeader(limit: IdentityLimits.maxCredentials)
            credentials = try (0..<n).map { _ in try CredentialAndPurposeKey.decode(&reader) }
            try reader.skipValues(count - 2)
        } catch {
            throw IdentityError.wire(error, "refresh credentials")
        }
    }

    public func encode(into writer: inout CBORWriter) {
        writer.writeArrayHeader(2)
        writer.writeRaw(identity.encodedHistory)
        writer.writeArrayHeader(credentials.count)
        for credential in credentials { credential.encode(into: &writer) }
    }
}

/// What a node presents in secure-channel handshakes: identity, X25519 static key and its attestation, credentials.
public struct SecureChannelCredentials: Sendable {
    public var identity: Identity
    public var staticKey: SecretKey {
        didSet { staticPublicKey = Self.publicKey(of: staticKey) }
    }
    /// `staticKey`'s public key, computed once here rather than in every handshake (a base-point multiplication,
    /// ~37 µs); nil if `staticKey` is not an X25519 key (the handshake then refuses it).
    public private(set) var staticPublicKey: [UInt8]?
    public var attestation: PurposeKeyAttestation
    public var credentials: [CredentialAndPurposeKey]

    public init(identity: Identity, staticKey: SecretKey, attestation: PurposeKeyAttestation, credentials: [CredentialAndPurposeKey]) {
        self.identity = identity
        self.staticKey = staticKey
        self.staticPublicKey = Self.publicKey(of: staticKey)
        self.attestation = attestation
        self.credentials = credentials
    }

    static func publicKey(of key: SecretKey) -> [UInt8]? { try? X25519.publicKey(privateKey: key) }

    /// A fresh in-memory identity (nothing written anywhere), for one-shot CLI commands without a vault.
    public static func ephemeral(now: Timestamp = currentTimestamp()) throws -> SecureChannelCredentials {
        let key = SigningKey.generate()
        let identity = try Identity.create(key: key, now: now)
        let staticKey = X25519.generatePrivateKey()
        let attestation = try PurposeKeyAttestation.create(
            for: identity, signingKey: key, publicKey: .secureChannelStatic(X25519.publicKey(privateKey: staticKey)),
            now: now)
        return SecureChannelCredentials(identity: identity, staticKey: staticKey, attestation: attestation, credentials: [])
    }
}
