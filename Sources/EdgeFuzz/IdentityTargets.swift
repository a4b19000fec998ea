// Fuzz targets for the identity decoders (spec §6): change histories, purpose-key attestations, credentials and the
// handshake identity payload.
import EdgeCrypto
import EdgeIdentity
import EdgeWire

extension FuzzTargets {
    /// A change history that decodes (and therefore verifies):
    /// - keeps its bytes exactly (`encodedHistory == input`) and re-decodes from them to an equal identity;
    /// - has identifier = SHA-256 of the first change's `data`, and each change hash = SHA-256 of its `data`;
    /// - re-encoded canonically (definite minimal heads, no extra elements, no explicit null previous signature),
    ///   still decodes to the same changes and identifier: the decoder's meaning does not depend on surface form;
    /// - its identifier's text form parses back; it extends itself.
    static func identity(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        guard let identity = try? Identity(decoding: input) else { return }
        try check(identity.encodedHistory == input, "encodedHistory differs from the input bytes")
        try check(!identity.changes.isEmpty, "accepted an empty history")
        try check(identity.identifier.bytes == SHA256.hash(identity.changes[0].data), "identifier is not SHA-256(first change data)")
        for (index, change) in identity.changes.enumerated() {
            try check(change.hash.bytes == SHA256.hash(change.data), "change \(index) hash is not SHA-256(data)")
            if index == 0 {
                try check(change.changeData.previousChange == nil, "first change has a previous change")
            } else {
                try check(
                    change.changeData.previousChange == identity.changes[index - 1].hash,
                    "change \(index) does not chain to change \(index - 1)")
                try check(change.previousSignature != nil, "change \(index) accepted without a previous-key signature")
            }
        }
        guard let again = try? Identity(decoding: identity.encodedHistory) else {
            throw FuzzInvariantViolation(description: "encodedHistory of an accepted identity does not decode")
        }
        try check(again == identity, "re-decoding encodedHistory gave a different identity")
        try check(identity.isExtended(by: identity), "an identity does not extend itself")
        try check((try? Identifier(parsing: identity.identifier.description)) == identity.identifier, "identifier text round trip")

        let canonical = canonicalHistory(identity.changes)
        guard let recoded = try? Identity(decoding: canonical) else {
            throw FuzzInvariantViolation(description: "canonical re-encoding of an accepted history does not decode")
        }
        try check(recoded.changes == identity.changes, "canonical re-encoding changed the changes")
        try check(recoded.identifier == identity.identifier, "canonical re-encoding changed the identifier")
    }

    /// An attestation that decodes re-encodes to an equal value; the re-encoding is a fixed point (decoding it and
    /// encoding again gives the same bytes); `data` is kept byte-exact. Bytes equal the input only when the input was
    /// canonical (the reader also accepts non-minimal heads and extra trailing elements), so that is checked as
    /// "input == encode() ⇒ decode(encode()) has the same bytes", not asserted for every input.
    static func attestation(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        guard let attestation = try? PurposeKeyAttestation(decoding: input) else { return }
        let encoded = attestation.encode()
        guard let again = try? PurposeKeyAttestation(decoding: encoded) else {
            throw FuzzInvariantViolation(description: "re-encoded attestation does not decode")
        }
        try check(again == attestation, "attestation decode → encode → decode changed the value")
        try check(again.encode() == encoded, "attestation encoding is not a fixed point")
        try check(encoded.count <= input.count, "canonical attestation longer than the input it came from")
        try check(isSubsequence(attestation.data, of: input), "attestation data bytes are not preserved")
        try check(
            (try? VersionedData.decode(attestation.data, expecting: VersionedData.purposeKeyAttestation)) != nil,
            "accepted attestation data is not a VersionedData of type 2")
        // Verify against each fixture identity: only the attestations those identities actually made may pass
        // (the fuzzer cannot forge Ed25519 signatures); everything else must fail a check, never trap.
        for (identity, made) in FuzzFixtures.knownAttestations {
            if (try? attestation.verify(subject: identity, now: FuzzFixtures.now)) != nil {
                try check(made.contains(attestation), "an attestation \(identity.identifier) did not make verified against it")
            }
        }
    }

    /// A credential (with its issuer attestation) that decodes re-encodes to an equal value and a fixed point;
    /// the attribute map is canonicalised (sorted keys), so bytes equal the input only for canonical inputs.
    /// Verification against the fixture authority must not accept anything the authority did not sign.
    static func credential(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        guard let credential = try? CredentialAndPurposeKey(decoding: input) else { return }
        let encoded = credential.encode()
        guard let again = try? CredentialAndPurposeKey(decoding: encoded) else {
            throw FuzzInvariantViolation(description: "re-encoded credential does not decode")
        }
        try check(again == credential, "credential decode → encode → decode changed the value")
        try check(again.encode() == encoded, "credential encoding is not a fixed point")
        try check(encoded.count <= input.count, "canonical credential longer than the input it came from")
        try check(isSubsequence(credential.credential.data, of: input), "credential data bytes are not preserved")
        _ = credential.attributes.strings
        _ = try? credential.verifySignature()
        if let subject = credential.subject,
            (try? credential.verify(subject: subject, authorities: [FuzzFixtures.authority.identity], now: FuzzFixtures.now))
                != nil
        {
            // Only the authority's credential key can sign; the fuzzer cannot forge Ed25519.
            try check(
                credential.issuerAttestation == FuzzFixtures.authority.attestation,
                "a credential verified with an issuer attestation the authority did not make")
            try check(
                credential.credential.signature == (try? FuzzFixtures.authority.credentialKey.sign(credential.credential.data)),
                "a credential verified that the authority's key did not sign")
        }
    }

    /// The handshake identity payload: decode → encode → decode is stable (equal parts, equal bytes the second time).
    static func identityPayload(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        guard let payload = try? IdentityAndCredentials(decoding: input) else { return }
        let encoded = payload.encode()
        guard let again = try? IdentityAndCredentials(decoding: encoded) else {
            throw FuzzInvariantViolation(description: "re-encoded identity payload does not decode")
        }
        try check(again.identity == payload.identity, "identity payload round trip changed the identity")
        try check(again.attestation == payload.attestation, "identity payload round trip changed the attestation")
        try check(again.credentials == payload.credentials, "identity payload round trip changed the credentials")
        try check(again.encode() == encoded, "identity payload encoding is not a fixed point")
        try check(encoded.count <= input.count, "canonical identity payload longer than the input it came from")
        try check(isSubsequence(payload.identity.encodedHistory, of: input), "change history bytes are not preserved")
        try check(payload.credentials.count <= IdentityLimits.maxCredentials, "more credentials than the limit")
    }

    // MARK: Helpers

    /// The canonical CBOR of a change history, written independently of EdgeIdentity's encoder.
    static func canonicalHistory(_ changes: [Change]) -> [UInt8] {
        var writer = CBORWriter(capacity: 160 * changes.count)
        writer.writeArrayHeader(changes.count)
        for change in changes {
            writer.writeArrayHeader(change.previousSignature == nil ? 2 : 3)
            writer.writeBytes(change.data)
            writeSignature(change.signature, into: &writer)
            if let previous = change.previousSignature { writeSignature(previous, into: &writer) }
        }
        return writer.bytes
    }

    static func writeSignature(_ signature: Signature, into writer: inout CBORWriter) {
        writer.writeArrayHeader(2)
        switch signature {
        case .ed25519(let bytes):
            writer.writeUnsigned(0)
            writer.writeArrayHeader(1)
            writer.writeBytes(bytes)
        case .p256(let bytes):
            writer.writeUnsigned(1)
            writer.writeArrayHeader(1)
            writer.writeBytes(bytes)
        }
    }

    /// Whether `needle` occurs contiguously in `haystack` (decoded byte strings are slices of the input).
    static func isSubsequence(_ needle: [UInt8], of haystack: [UInt8]) -> Bool {
        if needle.isEmpty { return true }
        guard needle.count <= haystack.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<start + needle.count].elementsEqual(needle) { return true }
        }
        return false
    }
}
