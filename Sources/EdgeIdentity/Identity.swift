// Identities: change histories (spec §6.2) — decoding with original bytes, verification, creation, rotation.
import EdgeCrypto
import EdgeWire

/// `ChangeData = array(5) [previous_change, primary_public_key, revoke_all_purpose_keys, valid_from, valid_until]`.
public struct ChangeData: Hashable, Sendable {
    public var previousChange: ChangeHash?
    public var primaryPublicKey: VerifyingKey
    public var revokeAllPurposeKeys: Bool
    public var attestationsValidFrom: Timestamp
    public var attestationsValidUntil: Timestamp

    public func encode() -> [UInt8] {
        var writer = CBORWriter(capacity: 128)
        writer.writeArrayHeader(5)
        if let previousChange { writer.writeBytes(previousChange.bytes) } else { writer.writeNull() }
        primaryPublicKey.encode(into: &writer)
        writer.writeBool(revokeAllPurposeKeys)
        writer.writeUnsigned(attestationsValidFrom)
        writer.writeUnsigned(attestationsValidUntil)
        return writer.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(IdentityError) -> ChangeData {
        do {
            var reader = CBORReader(bytes)
            let count = try reader.readArrayHeader(limit: 16)
            guard count >= 5 else { throw IdentityError.malformed("change data") }
            let previous = try CBORDecoding.bytes32OrNull(&reader, "previous change").map(ChangeHash.init(unchecked:))
            let key = try VerifyingKey.decode(&reader)
            let revoke = try reader.readBool()
            let from = try reader.readUnsigned()
            let until = try reader.readUnsigned()
            try reader.skipValues(count - 5)
            try reader.expectEnd()
            return ChangeData(
                previousChange: previous, primaryPublicKey: key, revokeAllPurposeKeys: revoke,
                attestationsValidFrom: from, attestationsValidUntil: until)
        } catch {
            throw IdentityError.wire(error, "change data")
        }
    }
}

/// One change: the original `data` bytes (a VersionedData), its signature and, after the first, the previous key's.
public struct Change: Hashable, Sendable {
    /// The VersionedData bytes exactly as received: hashes and signatures cover these.
    public let data: [UInt8]
    public let signature: Signature
    public let previousSignature: Signature?
    /// Decoded from `data`.
    public let changeData: ChangeData

    public var hash: ChangeHash { ChangeHash(unchecked: SHA256.hash(data)) }

    init(data: [UInt8], signature: Signature, previousSignature: Signature?) throws(IdentityError) {
        self.data = data
        self.signature = signature
        self.previousSignature = previousSignature
        let versioned = try VersionedData.decode(data, expecting: VersionedData.change)
        changeData = try ChangeData.decode(versioned.data)
    }

    func encode(into writer: inout CBORWriter) {
        writer.writeArrayHeader(previousSignature == nil ? 2 : 3)
        writer.writeBytes(data)
        signature.encode(into: &writer)
        previousSignature?.encode(into: &writer)
    }

    static func decode(_ reader: inout CBORReader) throws -> Change {
        let count = try reader.readArrayHeader(limit: 16)
        guard count >= 2 else { throw IdentityError.malformed("change") }
        let data = Array(try reader.readBytes(limit: IdentityLimits.maxObjectSize))
        let signature = try Signature.decode(&reader)
        var previous: Signature?
        if count >= 3 {
            previous = reader.readNullIfPresent() ? nil : try Signature.decode(&reader)
        }
        try reader.skipValues(max(0, count - 3))
        return try Change(data: data, signature: signature, previousSignature: previous)
    }
}

/// A verified identity: its change history (original bytes preserved) and what follows from it.
///
/// ### Invariants
/// - Every value of this type has passed ``verify(_:)``: the hash chain, self-signatures, previous-key signatures
///   and monotonic validity windows all hold.
public struct Identity: Hashable, Sendable {
    public let changes: [Change]
    public let identifier: Identifier
    /// The exact CBOR bytes of the change history (`ockam identity show --full` prints this as hex).
    public let encodedHistory: [UInt8]

    public var latestChange: Change { changes[changes.count - 1] }
    public var latestChangeHash: ChangeHash { latestChange.hash }
    public var primaryKey: VerifyingKey { latestChange.changeData.primaryPublicKey }

    /// Decodes and verifies a CBOR change history.
    public init(decoding bytes: [UInt8]) throws(IdentityError) {
        guard bytes.count <= IdentityLimits.maxObjectSize * IdentityLimits.maxChanges else {
            throw .limitExceeded("change history size")
        }
        var changes: [Change] = []
        do {
            var reader = CBORReader(bytes)
            let count = try reader.readArrayHeader(limit: IdentityLimits.maxChanges)
            guard count >= 1 else { throw IdentityError.malformed("empty change history") }
            for _ in 0..<count { changes.append(try Change.decode(&reader)) }
            try reader.expectEnd()
        } catch {
            throw IdentityError.wire(error, "change history")
        }
        try self.init(changes: changes, encoded: bytes)
    }

    init(changes: [Change], encoded: [UInt8]? = nil) throws(IdentityError) {
        try Identity.verify(changes)
        self.changes = changes
        identifier = Identifier(unchecked: changes[0].hash.bytes)
        if let encoded {
            encodedHistory = encoded
        } else {
            var writer = CBORWriter(capacity: 160 * changes.count)
            writer.writeArrayHeader(changes.count)
            for change in changes { change.encode(into: &writer) }
            encodedHistory = writer.bytes
        }
    }

    /// Ockam's history verification (spec §6.2). Change timestamps are not compared with the current time.
    static func verify(_ changes: [Change]) throws(IdentityError) {
        guard !changes.isEmpty else { throw .malformed("empty change history") }
        guard changes.count <= IdentityLimits.maxChanges else { throw .limitExceeded("more than \(IdentityLimits.maxChanges) changes") }
        var previous: Change?
        for (index, change) in changes.enumerated() {
            let data = change.changeData
            guard data.attestationsValidFrom <= data.attestationsValidUntil else {
                throw .brokenChain("change \(index): valid_from after valid_until")
            }
            guard change.changeData.primaryPublicKey.verify(change.signature, over: change.data) else {
                throw .invalidSignature("change \(index) self-signature")
            }
            if let previous {
                guard data.previousChange == previous.hash else {
                    throw .brokenChain("change \(index) does not point at change \(index - 1)")
                }
                guard data.attestationsValidFrom >= previous.changeData.attestationsValidFrom else {
                    throw .brokenChain("change \(index): valid_from decreases")
                }
                guard let previousSignature = change.previousSignature,
                    previous.changeData.primaryPublicKey.verify(previousSignature, over: change.data)
                else {
                    throw .invalidSignature("change \(index) is not signed by the previous key")
                }
            } else {
                guard data.previousChange == nil else { throw .brokenChain("first change has a previous change") }
            }
            previous = change
        }
    }

    // MARK: Creation and rotation

    /// Default validity of a change's attestations: 10 years (Ockam's default).
    public static let defaultValidity: Timestamp = 315_360_000

    /// Creates a new identity whose first change is signed by `key`.
    public static func create(
        key: SigningKey, now: Timestamp = currentTimestamp(), validity: Timestamp = defaultValidity
    ) throws(IdentityError) -> Identity {
        let change = try makeChange(key: key, previous: nil, now: now, validity: validity)
        return try Identity(changes: [change])
    }

    /// Appends a change that moves the primary key to `newKey`, signed by the new and the current key.
    /// The identifier does not change.
    public func rotated(
        from currentKey: SigningKey, to newKey: SigningKey, now: Timestamp = currentTimestamp(),
        validity: Timestamp = defaultValidity
    ) throws(IdentityError) -> Identity {
        guard currentKey.publicKey == primaryKey else { throw .keyMismatch("the current key is not this identity's primary key") }
        let from = max(now, latestChange.changeData.attestationsValidFrom)
        let change = try Identity.makeChange(key: newKey, previous: (self.latestChange, currentKey), now: from, validity: validity)
        return try Identity(changes: changes + [change])
    }

    private static func makeChange(
        key: SigningKey, previous: (Change, SigningKey)?, now: Timestamp, validity: Timestamp
    ) throws(IdentityError) -> Change {
        let changeData = ChangeData(
            previousChange: previous?.0.hash, primaryPublicKey: key.publicKey, revokeAllPurposeKeys: false,
            attestationsValidFrom: now, attestationsValidUntil: now + validity)
        let data = VersionedData(dataType: VersionedData.change, data: changeData.encode()).encode()
        do {
            let signature = try key.sign(data)
            let previousSignature = try previous.map { try $0.1.sign(data) }
            return try Change(data: data, signature: signature, previousSignature: previousSignature)
        } catch let error as IdentityError {
            throw error
        } catch {
            throw .invalidSignature("signing failed: \(error)")
        }
    }

    /// True if `other` is this history extended by zero or more changes (a stored history may only be replaced by
    /// one that extends it).
    public func isExtended(by other: Identity) -> Bool {
        other.identifier == identifier && other.changes.count >= changes.count
            && zip(changes, other.changes).allSatisfy { $0.data == $1.data }
    }
}
