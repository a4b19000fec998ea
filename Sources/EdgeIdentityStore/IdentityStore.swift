// EdgeIdentityStore: named identities, purpose keys, credentials and trusted authorities kept in a vault.
import EdgeCrypto
import EdgeIdentity
import EdgeVault
import EdgeWire

/// An identity stored under a name, with the vault handle of its current primary key.
public struct NamedIdentity: Sendable {
    public var name: String
    public var identity: Identity
    public var keyHandle: KeyHandle
    public var isDefault: Bool
}

/// Errors of the identity store (vault errors pass through unchanged).
public enum IdentityStoreError: Error, Hashable, Sendable, CustomStringConvertible {
    case notFound(String)
    case alreadyExists(String)
    case noDefault
    case corrupt(String)

    public var description: String {
        switch self {
        case .notFound(let name): return "no identity named '\(name)' in the vault (create it: ockam-edge identity create \(name))"
        case .alreadyExists(let name): return "an identity named '\(name)' already exists"
        case .noDefault: return "the vault has no default identity (create one: ockam-edge identity create)"
        case .corrupt(let what): return "corrupt vault record: \(what)"
        }
    }
}

/// Identity data in a vault. Record kinds: `identities` (CBOR `[history, key handle]`), `purpose-keys`
/// (`<name>.sc` / `<name>.cred`: CBOR `[attestation, key handle]`), `credentials` (`<name>`: CBOR credential),
/// `authorities` (`<name>`: change history), `settings` (`default-identity`).
public struct IdentityStore: Sendable {
    public let vault: Vault

    public init(vault: Vault) { self.vault = vault }

    static let identities = "identities"
    static let purposeKeys = "purpose-keys"
    static let credentials = "credentials"
    static let authorities = "authorities"
    static let settings = "settings"

    // MARK: Identities

    public func defaultName() throws -> String? {
        try vault.readRecord(kind: Self.settings, name: "default-identity").map { String(decoding: $0, as: UTF8.self) }
    }

    public func setDefault(_ name: String) throws {
        _ = try get(name)
        try vault.writeRecord(kind: Self.settings, name: "default-identity", bytes: Array(name.utf8))
    }

    /// Creates an identity with a new primary key of `keyType` stored in the vault. The first one becomes the default.
    @discardableResult
    public func create(name: String, keyType: SigningKey.Kind = .ed25519, now: Timestamp = currentTimestamp()) throws
        -> NamedIdentity
    {
        if try vault.readRecord(kind: Self.identities, name: name) != nil { throw IdentityStoreError.alreadyExists(name) }
        let handle = try vault.generateKey(keyType == .ed25519 ? .ed25519 : .ecdsaP256)
        let key = try signingKey(handle)
        let identity = try Identity.create(key: key, now: now)
        try save(name: name, identity: identity, handle: handle)
        if try defaultName() == nil { try setDefault(name) }
        return try get(name)
    }

    /// Rotates the primary key of `name` to a new key of `keyType`; the identifier is unchanged.
    @discardableResult
    public func rotate(name: String, keyType: SigningKey.Kind = .ed25519, now: Timestamp = currentTimestamp()) throws
        -> NamedIdentity
    {
        let current = try get(name)
        let oldKey = try signingKey(current.keyHandle)
        let handle = try vault.generateKey(keyType == .ed25519 ? .ed25519 : .ecdsaP256)
        let rotated = try current.identity.rotated(from: oldKey, to: signingKey(handle), now: now)
        try save(name: name, identity: rotated, handle: handle)
        // Attestations name the latest change: drop them so they are re-issued by the new key.
        _ = try vault.deleteRecord(kind: Self.purposeKeys, name: "\(name).sc")
        _ = try vault.deleteRecord(kind: Self.purposeKeys, name: "\(name).cred")
        _ = try vault.deleteKey(current.keyHandle)
        return try get(name)
    }

    /// The named identity, or the default one when `name` is nil.
    public func get(_ name: String? = nil) throws -> NamedIdentity {
        guard let name = try name ?? defaultName() else { throw IdentityStoreError.noDefault }
        guard let record = try vault.readRecord(kind: Self.identities, name: name) else {
            throw IdentityStoreError.notFound(name)
        }
        var reader = CBORReader(record)
        do {
            guard try reader.readArrayHeader() >= 2 else { throw IdentityStoreError.corrupt("identity \(name)") }
            let history = Array(try reader.readBytes())
            guard let handle = KeyHandle(bytes: Array(try reader.readBytes(limit: 32))) else {
                throw IdentityStoreError.corrupt("identity \(name) key handle")
            }
            return NamedIdentity(
                name: name, identity: try Identity(decoding: history), keyHandle: handle,
                isDefault: try defaultName() == name)
        } catch let error as IdentityStoreError {
            throw error
        } catch {
            throw IdentityStoreError.corrupt("identity \(name): \(error)")
        }
    }

    /// Keys that belonged to identities whose records are gone: the vault has no identity records, yet holds key
    /// material that only exists once an identity did (a secure-channel key, or more than one key). Empty otherwise —
    /// including after a first start cut off between generating the identity's key and saving its record, which
    /// leaves one signing key and nothing else. A node must not silently create a new default identity over these:
    /// its peers and authorities know the lost one (docs/vault.md).
    public func keysOfLostIdentities() throws -> [StoredKey] {
        guard try vault.listRecords(kind: Self.identities).isEmpty else { return [] }
        let keys = try vault.listKeys()
        return Self.keysOutliveTheirIdentities(keys.map(\.type), identityRecords: 0) ? keys : []
    }

    /// The rule of ``keysOfLostIdentities()`` on a vault's inventory (``Vault/inspect(at:options:)``, which does not
    /// open the vault): no identity records, yet a secure-channel key or more than one key.
    public static func keysOutliveTheirIdentities(_ keyTypes: [KeyType], identityRecords: Int) -> Bool {
        identityRecords == 0 && (keyTypes.count >= 2 || keyTypes.contains(.x25519))
    }

    /// The record kind identities are stored under.
    public static var identityRecordKind: String { identities }

    public func list() throws -> [NamedIdentity] {
        try vault.listRecords(kind: Self.identities).sorted().map { try get($0) }
    }

    private func save(name: String, identity: Identity, handle: KeyHandle) throws {
        var writer = CBORWriter()
        writer.writeArrayHeader(2)
        writer.writeBytes(identity.encodedHistory)
        writer.writeBytes(handle.bytes)
        try vault.writeRecord(kind: Self.identities, name: name, bytes: writer.bytes)
    }

    public func signingKey(_ handle: KeyHandle) throws -> SigningKey {
        let (type, _) = try vault.publicKey(handle)
        let kind: SigningKey.Kind
        switch type {
        case .ed25519: kind = .ed25519
        case .ecdsaP256: kind = .p256
        case .x25519: throw IdentityStoreError.corrupt("key \(handle) is not a signing key")
        }
        return try SigningKey(kind: kind, secret: vault.secretKey(handle))
    }

    // MARK: Purpose keys

    /// The identity's secure-channel static key and attestation, created once and reused (as Ockam does), and
    /// re-attested when the stored attestation no longer verifies (after a rotation or expiry).
    public func secureChannelCredentials(for name: String? = nil, now: Timestamp = currentTimestamp()) throws
        -> SecureChannelCredentials
    {
        let named = try get(name)
        let record = "\(named.name).sc"
        if let stored = try vault.readRecord(kind: Self.purposeKeys, name: record),
            let (attestation, handle) = try? decodePurposeRecord(stored),
            (try? attestation.verify(subject: named.identity, now: now)) != nil
        {
            return SecureChannelCredentials(
                identity: named.identity, staticKey: try vault.secretKey(handle), attestation: attestation,
                credentials: try storedCredentials(for: named.name))
        }
        let handle = try vault.generateKey(.x25519)
        let (_, publicKey) = try vault.publicKey(handle)
        let attestation = try PurposeKeyAttestation.create(
            for: named.identity, signingKey: signingKey(named.keyHandle), publicKey: .secureChannelStatic(publicKey),
            now: now)
        try vault.writeRecord(kind: Self.purposeKeys, name: record, bytes: encodePurposeRecord(attestation, handle))
        return SecureChannelCredentials(
            identity: named.identity, staticKey: try vault.secretKey(handle), attestation: attestation,
            credentials: try storedCredentials(for: named.name))
    }

    /// The identity's credential-signing key and attestation (authority side), created once and reused.
    public func credentialSigning(for name: String? = nil, now: Timestamp = currentTimestamp()) throws
        -> (key: SigningKey, attestation: PurposeKeyAttestation, identity: NamedIdentity)
    {
        let named = try get(name)
        let record = "\(named.name).cred"
        if let stored = try vault.readRecord(kind: Self.purposeKeys, name: record),
            let (attestation, handle) = try? decodePurposeRecord(stored),
            (try? attestation.verify(subject: named.identity, now: now)) != nil
        {
            return (try signingKey(handle), attestation, named)
        }
        let handle = try vault.generateKey(.ed25519)
        let key = try signingKey(handle)
        let attestation = try PurposeKeyAttestation.create(
            for: named.identity, signingKey: signingKey(named.keyHandle), publicKey: .credentialSigning(key.publicKey),
            now: now)
        try vault.writeRecord(kind: Self.purposeKeys, name: record, bytes: encodePurposeRecord(attestation, handle))
        return (key, attestation, named)
    }

    private func encodePurposeRecord(_ attestation: PurposeKeyAttestation, _ handle: KeyHandle) -> [UInt8] {
        var writer = CBORWriter()
        writer.writeArrayHeader(2)
        writer.writeBytes(attestation.encode())
        writer.writeBytes(handle.bytes)
        return writer.bytes
    }

    private func decodePurposeRecord(_ bytes: [UInt8]) throws -> (PurposeKeyAttestation, KeyHandle) {
        var reader = CBORReader(bytes)
        guard try reader.readArrayHeader() >= 2 else { throw IdentityStoreError.corrupt("purpose key") }
        let attestation = try PurposeKeyAttestation(decoding: Array(try reader.readBytes()))
        guard let handle = KeyHandle(bytes: Array(try reader.readBytes(limit: 32))) else {
            throw IdentityStoreError.corrupt("purpose key handle")
        }
        return (attestation, handle)
    }

    // MARK: Credentials (holder side)

    /// Stores a credential to present in handshakes as `name` (replacing one from the same issuer).
    public func storeCredential(_ credential: CredentialAndPurposeKey, for name: String? = nil) throws {
        let named = try get(name)
        var list = try storedCredentials(for: named.name).filter { $0.issuer != credential.issuer }
        list.append(credential)
        var writer = CBORWriter()
        writer.writeArrayHeader(list.count)
        for item in list { item.encode(into: &writer) }
        try vault.writeRecord(kind: Self.credentials, name: named.name, bytes: writer.bytes)
    }

    public func storedCredentials(for name: String) throws -> [CredentialAndPurposeKey] {
        guard let bytes = try vault.readRecord(kind: Self.credentials, name: name) else { return [] }
        var reader = CBORReader(bytes)
        let count = try reader.readArrayHeader(limit: IdentityLimits.maxCredentials)
        return try (0..<count).map { _ in try CredentialAndPurposeKey.decode(&reader) }
    }

    // MARK: Trusted authorities

    public func addAuthority(name: String, identity: Identity) throws {
        try vault.writeRecord(kind: Self.authorities, name: name, bytes: identity.encodedHistory)
    }

    public func authorities() throws -> [(name: String, identity: Identity)] {
        try vault.listRecords(kind: Self.authorities).sorted().compactMap { name in
            guard let bytes = try vault.readRecord(kind: Self.authorities, name: name) else { return nil }
            return (name, try Identity(decoding: bytes))
        }
    }
}
