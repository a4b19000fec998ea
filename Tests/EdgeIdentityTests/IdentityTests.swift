import EdgeCrypto
import EdgeTestSupport
import EdgeWire
import Testing

@testable import EdgeIdentity

/// Ockam's identity vectors from `../shared/vectors/ockam/ockam-kat.json`.
struct KATIdentity: Sendable, CustomTestStringConvertible {
    var name: String
    var keyType: String
    var changeHistory: [UInt8]
    var identifier: String
    var secret: [UInt8]?
    var testDescription: String { name }

    static func load() throws -> [KATIdentity] {
        let json = try #require(try TestData.vectorJSON("ockam/ockam-kat.json") as? [String: Any])
        let list = try #require(json["identities"] as? [[String: Any]])
        return try list.map { entry in
            KATIdentity(
                name: try #require(entry["name"] as? String), keyType: try #require(entry["key_type"] as? String),
                changeHistory: [UInt8](hex: try #require(entry["change_history"] as? String)),
                identifier: try #require(entry["identifier"] as? String),
                secret: (entry["ed25519_secret"] as? String).map { [UInt8](hex: $0) })
        }
    }
}

@Suite("Ockam identities", .cpuBound)
struct IdentityTests {
    @Test func allKATIdentitiesDecodeAndVerify() throws {
        let vectors = try KATIdentity.load()
        #expect(vectors.count == 3)
        var checked = 0
        for vector in vectors {
            let identity = try Identity(decoding: vector.changeHistory)
            #expect(identity.identifier.description == vector.identifier, "\(vector.name)")
            #expect(identity.encodedHistory == vector.changeHistory, "original bytes preserved")
            switch (vector.keyType, identity.primaryKey) {
            case ("Ed25519", .ed25519), ("ECDSA_P256", .p256): break
            default: Issue.record("\(vector.name): key type \(identity.primaryKey.keyTypeName)")
            }
            if let secret = vector.secret {
                // The identity whose secret is given: its public key must be derived from the secret.
                let key = try SigningKey(kind: .ed25519, secret: SecretKey(SecretBytes(copying: secret)))
                #expect(key.publicKey == identity.primaryKey, "secret key derives the identity's public key")
            }
            checked += 1
        }
        print("ockam-kat identities: \(checked) decoded and verified")
        #expect(checked == 3)
    }

    @Test func identifierTextRoundTrip() throws {
        let text = "I923829d0397a06fa862be5a87b7966959b8ef99ab6455b843ca9131a747b4819"
        #expect(try Identifier(parsing: text).description == text)
        for bad in ["923829d0", "I12", "Ixyz3829d0397a06fa862be5a87b7966959b8ef99ab6455b843ca9131a747b4819", ""] {
            #expect(throws: IdentityError.self) { try Identifier(parsing: bad) }
        }
    }

    @Test(arguments: [SigningKey.Kind.ed25519, .p256])
    func createdIdentitiesVerifyAndRoundTrip(kind: SigningKey.Kind) throws {
        let key = SigningKey.generate(kind)
        let identity = try Identity.create(key: key, now: 1_700_000_000)
        let decoded = try Identity(decoding: identity.encodedHistory)
        #expect(decoded == identity)
        #expect(decoded.identifier.bytes == SHA256.hash(identity.changes[0].data))
        #expect(identity.latestChange.changeData.attestationsValidUntil == 1_700_000_000 + Identity.defaultValidity)
    }

    @Test func rotationKeepsTheIdentifierAndIsSignedByBothKeys() throws {
        let first = SigningKey.generate()
        let second = SigningKey.generate(.p256)
        let identity = try Identity.create(key: first, now: 1_700_000_000)
        let rotated = try identity.rotated(from: first, to: second, now: 1_700_000_100)
        #expect(rotated.identifier == identity.identifier)
        #expect(rotated.primaryKey == second.publicKey)
        #expect(rotated.changes.count == 2)
        #expect(identity.isExtended(by: rotated))
        #expect(!rotated.isExtended(by: identity))
        #expect(try Identity(decoding: rotated.encodedHistory) == rotated)
        // Rotating with a key that is not the current one is refused.
        #expect(throws: IdentityError.self) { _ = try rotated.rotated(from: first, to: SigningKey.generate()) }
    }

    @Test func tamperedHistoriesAreRejected() throws {
        let vector = try #require(try KATIdentity.load().first)
        var failures = 0
        // Flip every byte of the history in turn: each flip must be rejected (never accepted, never a crash).
        for index in vector.changeHistory.indices {
            var tampered = vector.changeHistory
            tampered[index] ^= 0x01
            if (try? Identity(decoding: tampered)) == nil { failures += 1 }
        }
        #expect(failures == vector.changeHistory.count)
    }

    @Test func rotationWithoutPreviousSignatureIsRejected() throws {
        let first = SigningKey.generate()
        let identity = try Identity.create(key: first, now: 1_700_000_000)
        let rotated = try identity.rotated(from: first, to: SigningKey.generate(), now: 1_700_000_100)
        let second = rotated.changes[1]
        let stripped = try Change(data: second.data, signature: second.signature, previousSignature: nil)
        #expect(throws: IdentityError.invalidSignature("change 1 is not signed by the previous key")) {
            _ = try Identity(changes: [rotated.changes[0], stripped])
        }
        // A change from another identity does not chain.
        let stranger = try Identity.create(key: SigningKey.generate(), now: 1_700_000_000)
        #expect(throws: IdentityError.self) { _ = try Identity(changes: [rotated.changes[0], stranger.changes[0]]) }
    }

    @Test func truncatedHistoriesThrow() throws {
        let vector = try #require(try KATIdentity.load().last)
        for length in 0..<vector.changeHistory.count {
            #expect(throws: IdentityError.self) { _ = try Identity(decoding: Array(vector.changeHistory[..<length])) }
        }
    }
}

@Suite("Purpose keys and credentials", .cpuBound)
struct CredentialTests {
    let now: Timestamp = 1_750_000_000

    struct Authority {
        let key: SigningKey
        let identity: Identity
        let credentialKey: SigningKey
        let attestation: PurposeKeyAttestation
    }

    func makeAuthority() throws -> Authority {
        let key = SigningKey.generate()
        let identity = try Identity.create(key: key, now: now - 1000)
        let credentialKey = SigningKey.generate()
        let attestation = try PurposeKeyAttestation.create(
            for: identity, signingKey: key, publicKey: .credentialSigning(credentialKey.publicKey), now: now - 1000)
        return Authority(key: key, identity: identity, credentialKey: credentialKey, attestation: attestation)
    }

    @Test func secureChannelAttestationRoundTripAndChecks() throws {
        let key = SigningKey.generate()
        let identity = try Identity.create(key: key, now: now)
        let x25519 = try X25519.publicKey(privateKey: X25519.generatePrivateKey())
        let attestation = try PurposeKeyAttestation.create(
            for: identity, signingKey: key, publicKey: .secureChannelStatic(x25519), now: now)
        let decoded = try PurposeKeyAttestation(decoding: attestation.encode())
        #expect(decoded == attestation)
        #expect(decoded.secureChannelKey == x25519)
        try decoded.verify(subject: identity, now: now + 10)
        // Wrong subject.
        let other = try Identity.create(key: SigningKey.generate(), now: now)
        #expect(throws: IdentityError.self) { try decoded.verify(subject: other, now: now) }
        // Expired, and created in the future beyond the 60 s drift.
        #expect(throws: IdentityError.self) { try decoded.verify(subject: identity, now: now + PurposeKeyAttestation.defaultLifetime + 1) }
        #expect(throws: IdentityError.self) { try decoded.verify(subject: identity, now: now - 61) }
        try decoded.verify(subject: identity, now: now - 59)
        // After a rotation, the attestation no longer refers to the latest change.
        let rotated = try identity.rotated(from: key, to: SigningKey.generate(), now: now + 5)
        #expect(throws: IdentityError.self) { try decoded.verify(subject: rotated, now: now + 10) }
    }

    @Test func credentialIssueAndVerify() throws {
        let authority = try makeAuthority()
        let subject = try Identity.create(key: SigningKey.generate(), now: now)
        let credential = try CredentialAndPurposeKey.issue(
            subject: subject, attributes: Attributes(strings: ["role": "sensor", "site": "lab"]),
            issuerAttestation: authority.attestation, credentialSigningKey: authority.credentialKey, now: now)
        let decoded = try CredentialAndPurposeKey(decoding: credential.encode())
        #expect(decoded == credential)
        #expect(decoded.attributes.strings == ["role": "sensor", "site": "lab"])
        try decoded.verify(subject: subject.identifier, authorities: [authority.identity], now: now + 1)
    }

    @Test func credentialRejections() throws {
        let authority = try makeAuthority()
        let subject = try Identity.create(key: SigningKey.generate(), now: now)
        let credential = try CredentialAndPurposeKey.issue(
            subject: subject, attributes: Attributes(strings: ["role": "sensor"]),
            issuerAttestation: authority.attestation, credentialSigningKey: authority.credentialKey, now: now)
        // Expired.
        #expect(throws: IdentityError.self) {
            try credential.verify(
                subject: subject.identifier, authorities: [authority.identity], now: now + Credential.defaultLifetime + 1)
        }
        // Wrong signer: an authority we do not trust.
        let stranger = try makeAuthority()
        #expect(throws: IdentityError.self) {
            try credential.verify(subject: subject.identifier, authorities: [stranger.identity], now: now)
        }
        // Signed by a key other than the attested one.
        #expect(throws: IdentityError.self) {
            _ = try CredentialAndPurposeKey.issue(
                subject: subject, attributes: Attributes(), issuerAttestation: authority.attestation,
                credentialSigningKey: stranger.credentialKey, now: now)
        }
        // Wrong subject.
        let other = try Identity.create(key: SigningKey.generate(), now: now)
        #expect(throws: IdentityError.self) {
            try credential.verify(subject: other.identifier, authorities: [authority.identity], now: now)
        }
        // Tampered bytes anywhere in the encoding are rejected (decode or verify).
        let encoded = credential.encode()
        var rejected = 0
        for index in encoded.indices {
            var tampered = encoded
            tampered[index] ^= 0x80
            do {
                try CredentialAndPurposeKey(decoding: tampered).verify(
                    subject: subject.identifier, authorities: [authority.identity], now: now)
            } catch {
                rejected += 1
            }
        }
        #expect(rejected == encoded.count)
    }

    @Test func refreshCredentialsFromRustDecodesAndItsCredentialVerifies() throws {
        let json = try #require(try TestData.vectorJSON("ockam/ockam-kat.json") as? [String: Any])
        let plaintexts = try #require(json["secure_channel_plaintexts"] as? [String: String])
        let bytes = [UInt8](hex: try #require(plaintexts["refresh_credentials_from_rust"]))
        #expect(bytes.count == 629)
        // SecureChannelPaddedMessage = [[1, [RefreshCredentialsMessage]], padding]
        var reader = CBORReader(bytes)
        #expect(try reader.readArrayHeader() == 2)
        #expect(try reader.readArrayHeader() == 2)
        #expect(try reader.readUnsigned() == 1)
        #expect(try reader.readArrayHeader() == 1)
        let refresh = try RefreshCredentials(reading: &reader)
        #expect(try reader.readBytes().isEmpty)
        try reader.expectEnd()
        #expect(refresh.credentials.count == 1)
        let credential = refresh.credentials[0]
        try credential.verifySignature()
        #expect(credential.subject == refresh.identity.identifier)
        let attributes = credential.attributes.strings
        #expect(attributes["ockam-relay"] == "*")
        #expect(attributes["ockam-role"] == "enroller")
        #expect(attributes["project_id"] != nil)
        // Re-encoding reproduces the exact bytes.
        var writer = CBORWriter()
        writer.writeArrayHeader(2)
        writer.writeArrayHeader(2)
        writer.writeUnsigned(1)
        writer.writeArrayHeader(1)
        refresh.encode(into: &writer)
        writer.writeBytes([UInt8]())
        #expect(writer.bytes == bytes)
        print("ockam-kat refresh_credentials_from_rust: 1 credential, signature verified")
    }

    @Test func trustPolicies() throws {
        let a = try Identity.create(key: SigningKey.generate(), now: now).identifier
        let b = try Identity.create(key: SigningKey.generate(), now: now).identifier
        let authority = try Identity.create(key: SigningKey.generate(), now: now).identifier
        let peerA = PeerInfo(identifier: a, attributes: [authority: ["role": "sensor"]])
        let peerB = PeerInfo(identifier: b)
        #expect(TrustPolicy.everyone.allows(peerB))
        #expect(TrustPolicy.identifiers([a]).allows(peerA))
        #expect(!TrustPolicy.identifiers([a]).allows(peerB))
        #expect(TrustPolicy.credential(authority: authority, required: ["role": "sensor"]).allows(peerA))
        #expect(!TrustPolicy.credential(authority: authority, required: ["role": "admin"]).allows(peerA))
        #expect(!TrustPolicy.credential(authority: authority, required: [:]).allows(peerB))
        #expect(TrustPolicy.any([.identifiers([b]), .credential(authority: authority, required: [:])]).allows(peerA))
        #expect(!TrustPolicy.all([.identifiers([b]), .credential(authority: authority, required: [:])]).allows(peerA))
    }
}
