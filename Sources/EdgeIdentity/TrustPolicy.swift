// Trust policies (spec §6.5): who may complete a secure-channel handshake with us.

/// What is known about a peer when a trust decision is made.
public struct PeerInfo: Sendable {
    public var identifier: Identifier
    /// Attributes from credentials that verified against a trusted authority, by authority.
    public var attributes: [Identifier: [String: String]]

    public init(identifier: Identifier, attributes: [Identifier: [String: String]] = [:]) {
        self.identifier = identifier
        self.attributes = attributes
    }
}

/// A predicate on the peer, evaluated during the handshake; a refusal aborts the channel.
public indirect enum TrustPolicy: Sendable, Hashable, CustomStringConvertible {
    /// Trust every peer whose identity and purpose key verify (Ockam's default).
    case everyone
    /// Trust exactly these identifiers.
    case identifiers(Set<Identifier>)
    /// Trust peers holding a valid credential from `authority` carrying every attribute in `required`
    /// (an empty set requires only a valid credential).
    case credential(authority: Identifier, required: [String: String])
    case all([TrustPolicy])
    case any([TrustPolicy])

    public func allows(_ peer: PeerInfo) -> Bool {
        switch self {
        case .everyone: return true
        case .identifiers(let set): return set.contains(peer.identifier)
        case .credential(let authority, let required):
            guard let attributes = peer.attributes[authority] else { return false }
            return required.allSatisfy { attributes[$0.key] == $0.value }
        case .all(let policies): return policies.allSatisfy { $0.allows(peer) }
        case .any(let policies): return policies.contains { $0.allows(peer) }
        }
    }

    public var description: String {
        switch self {
        case .everyone: return "trust everyone"
        case .identifiers(let set): return "trust " + set.sorted().map(\.description).joined(separator: ", ")
        case .credential(let authority, let required):
            let attrs = required.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            return "trust credentials from \(authority)" + (attrs.isEmpty ? "" : " with \(attrs)")
        case .all(let p): return "all(" + p.map(\.description).joined(separator: "; ") + ")"
        case .any(let p): return "any(" + p.map(\.description).joined(separator: "; ") + ")"
        }
    }
}

extension TrustPolicy {
    /// This policy, widened to also admit the identifiers of paired devices (docs/pairing.md): `.any([self,
    /// .identifiers(paired)])`. Unchanged when `paired` is empty or the policy already admits everyone.
    public func admitting(paired: Set<Identifier>) -> TrustPolicy {
        if paired.isEmpty { return self }
        if case .everyone = self { return self }
        return .any([self, .identifiers(paired)])
    }
}
