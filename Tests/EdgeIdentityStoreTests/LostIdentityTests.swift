import EdgeIdentity
import EdgeVault
import Foundation
import SystemPackage
import Testing

@testable import EdgeIdentityStore

/// Key material of identities whose records are gone is recognised, so a node never mints a new identity over it.
@Suite("Lost identity records")
struct LostIdentityTests {
    func vaultPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("lost-\(UUID().uuidString)").path + "/vault"
    }

    @Test func keysWithoutIdentityRecordsAreReportedOnlyWhenAnIdentityExisted() throws {
        let path = vaultPath()
        do {
            let store = IdentityStore(vault: try Vault.open(at: FilePath(path)))
            defer { store.vault.close() }
            #expect(try store.keysOfLostIdentities().isEmpty)  // a new vault
            // A first start cut off after generating the identity's key: one signing key, no record. Not a lost identity.
            _ = try store.vault.generateKey(.ed25519)
            #expect(try store.keysOfLostIdentities().isEmpty)
            // A real identity with its secure-channel key: fine while its record is there.
            try store.create(name: "default")
            _ = try store.secureChannelCredentials(for: "default")
            #expect(try store.keysOfLostIdentities().isEmpty)
        }
        // The records are deleted, the keys are not.
        try FileManager.default.removeItem(atPath: path + "/records/identities")
        let store = IdentityStore(vault: try Vault.open(at: FilePath(path)))
        defer { store.vault.close() }
        let lost = try store.keysOfLostIdentities()
        #expect(lost.count == 3)
        #expect(lost.contains { $0.type == .x25519 })
    }
}
