import EdgeSync
import EdgeCrypto
import EdgeIdentity
import EdgeNode
import EdgeRouting
import EdgeTestSupport
import Testing

@testable import EdgeSecureChannel

/// The paired identifiers a test's trust provider reads.
final class PairedSet: Sendable {
    let set = EdgeMutex<Set<Identifier>>([])
}

@Suite("Pairing: verification codes and live trust", .serialized)
struct PairingTests {
    @Test func codeDerivationMatchesTheDocumentedFormula() {
        let hash = (0..<32).map { UInt8($0) }
        // Independently: SHA-256 over the literal prefix and the hash, first 4 bytes big-endian, mod 10^6.
        let digest = SHA256.hash(Array("ockam-edge pairing code v1".utf8) + hash)
        let expected =
            (UInt32(digest[0]) << 24 | UInt32(digest[1]) << 16 | UInt32(digest[2]) << 8 | UInt32(digest[3])) % 1_000_000
        let code = VerificationCode(handshakeHash: hash)
        #expect(code.value == expected)
        // Pinned (computed with Python's hashlib): adc0f253 → 2914054739 mod 10^6.
        #expect(code.value == 103_315)
        #expect(code.description == "103 315")
        #expect(code.digits == "103315")
        #expect(VerificationCode(handshakeHash: [UInt8](repeating: 0xff, count: 32)).description == "156 744")
    }

    @Test func leadingZerosAreShown() {
        let code = VerificationCode(handshakeHash: [UInt8](repeating: 7, count: 32))
        #expect(code.value == 93_439)
        #expect(code.description == "093 439")
        #expect(VerificationCode(parsing: "093439") == code)
        #expect(VerificationCode(parsing: "093 439") == code)
    }

    @Test(arguments: ["", "12345", "1234567", "abc def", "12 34 5", "１２３４５６", "-12345"])
    func malformedTypedCodesAreRejected(_ text: String) {
        #expect(VerificationCode(parsing: text) == nil)
    }

    @Test func bothEndsOfARealChannelShowTheSameCode() async throws {
        let c = try await Peer.start("c")
        let a = try await Peer.start("a", listener: nil)
        let channel = try await a.channels.createChannel(to: [.tcp(c.address), .local("api")])
        try await eventually("responder established") { c.channels.channels.count == 1 }
        let responder = try #require(c.channels.channels.first)
        #expect(responder.verificationCode == channel.verificationCode)
        // A second channel between the same identities has fresh ephemeral keys, hence (almost surely) another code.
        let second = try await a.channels.createChannel(to: [.tcp(c.address), .local("api")])
        try await eventually("second responder") { c.channels.channels.count == 2 }
        #expect(c.channels.channels.contains { $0.verificationCode == second.verificationCode })
        await a.stop()
        await c.stop()
    }

    @Test func pairedIdentifiersWidenAPolicyButNotEveryone() throws {
        let a = try SecureChannelCredentials.ephemeral().identity.identifier
        let b = try SecureChannelCredentials.ephemeral().identity.identifier
        let c = try SecureChannelCredentials.ephemeral().identity.identifier
        let base = TrustPolicy.identifiers([a])
        #expect(base.admitting(paired: []) == base)
        #expect(TrustPolicy.everyone.admitting(paired: [b]) == .everyone)
        let widened = base.admitting(paired: [b])
        #expect(widened.allows(PeerInfo(identifier: a)))
        #expect(widened.allows(PeerInfo(identifier: b)))
        #expect(!widened.allows(PeerInfo(identifier: c)))
    }

    /// The listener consults the trust provider for every handshake: pairing admits a peer without restarting the
    /// listener, and revocation (`closeChannels(withPeer:)`) closes both ends of its channels.
    @Test func trustProviderChangesTakeEffectForTheNextHandshakeAndRevocationClosesChannels() async throws {
        let stranger = try SecureChannelCredentials.ephemeral().identity.identifier
        let paired = PairedSet()
        var options = SecureChannelOptions(trust: TrustContext(policy: .identifiers([stranger])))
        options.trustProvider = {
            TrustContext(policy: TrustPolicy.identifiers([stranger]).admitting(paired: paired.set.withLock { $0 }))
        }
        let gateway = try await Peer.start("gateway", listener: options)
        let device = try await Peer.start("device", listener: nil)

        let refused = try await device.channels.createChannel(to: [.tcp(gateway.address), .local("api")])
        try await eventually("refused channel closed") { device.channels.channel(refused.encryptor) == nil }
        #expect(gateway.channels.counters.handshakesRefusedTrust == 1)

        paired.set.withLock { _ = $0.insert(device.identifier) }
        let admitted = try await device.channels.createChannel(to: [.tcp(gateway.address), .local("api")])
        try await eventually("gateway side up") { gateway.channels.channels.count == 1 }
        #expect(gateway.channels.counters.handshakesRefusedTrust == 1)

        paired.set.withLock { _ = $0.remove(device.identifier) }
        let closed = await gateway.channels.closeChannels(withPeer: device.identifier)
        #expect(closed.count == 1)
        #expect(gateway.channels.channels.isEmpty)
        try await eventually("device side closed by the Close message") { device.channels.channel(admitted.encryptor) == nil }

        let again = try await device.channels.createChannel(to: [.tcp(gateway.address), .local("api")])
        try await eventually("refused again") { device.channels.channel(again.encryptor) == nil }
        #expect(gateway.channels.counters.handshakesRefusedTrust == 2)
        await device.stop()
        await gateway.stop()
    }
}
