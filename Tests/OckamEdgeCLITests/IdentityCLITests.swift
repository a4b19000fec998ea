import EdgeTestSupport
import Foundation
import Testing

@Suite("identity, vault and credential commands", .serialized)
struct IdentityCLITests {
    func run(_ arguments: [String], vault: String) async throws -> Binary.Result {
        try await Binary.run(arguments + ["--vault", vault])
    }

    @Test func identityLifecycleWithJSON() async throws {
        let vault = try temporaryDirectory() + "/vault"
        let created = try await run(["identity", "create", "gateway", "--json"], vault: vault)
        #expect(created.status == 0, "\(created.stderr)")
        #expect(created.stdout.contains("\"default\": true"))
        let identifier = try await run(["identity", "show"], vault: vault).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(identifier.hasPrefix("I") && identifier.count == 65)
        #expect(created.stdout.contains(identifier))
        let full = try await run(["identity", "show", "gateway", "--full"], vault: vault).stdout
        #expect(full.count > 200)
        let rotated = try await run(["identity", "rotate", "gateway", "--key-type", "p256", "--json"], vault: vault)
        #expect(rotated.status == 0, "\(rotated.stderr)")
        #expect(rotated.stdout.contains("\"changes\": 2"))
        #expect(rotated.stdout.contains(identifier), "rotation keeps the identifier")
        #expect(rotated.stdout.contains("ECDSA-P256"))
        let duplicate = try await run(["identity", "create", "gateway"], vault: vault)
        #expect(duplicate.status == 1)
        #expect(duplicate.stderr.contains("already exists"))
        let list = try await run(["identity", "list", "--json"], vault: vault)
        #expect(list.stdout.contains("\"name\": \"gateway\""))
        let keys = try await run(["vault", "list", "--json"], vault: vault)
        // The rotated-away key is deleted: one signing key remains.
        #expect(keys.stdout.components(separatedBy: "\"handle\"").count == 2)
    }

    /// A node's first start killed between saving identity 'default' and making it the vault's default (found by
    /// `make reliability`, vault_kill9): the next start must use it, not fail with "already exists" forever.
    @Test func nodeStartsOnAVaultWhoseDefaultWasNotRecorded() async throws {
        let dir = try temporaryDirectory()
        let vault = dir + "/vault"
        let created = try await run(["identity", "create", "default"], vault: vault)
        #expect(created.status == 0, "\(created.stderr)")
        #expect(unlink(vault + "/records/settings/default-identity") == 0)  // the write the kill cut off
        #expect(try await run(["identity", "show"], vault: vault).status == 1)
        let node = try await NodeProcess.start(name: "resumed", stateDir: dir + "/state", extra: ["--vault", vault])
        let status = try await Binary.run(["status", "--from", "resumed", "--state-dir", dir + "/state"])
        #expect(status.stdout.contains(created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(status.stdout)")
        #expect(await node.stop() == 0)
        #expect(try await run(["identity", "show"], vault: vault).stdout == created.stdout)
    }

    @Test func vaultCheckReportsTooOpenPermissionsAndRefusesToOpen() async throws {
        let vault = try temporaryDirectory() + "/vault"
        #expect(try await run(["identity", "create"], vault: vault).status == 0)
        #expect(try await run(["vault", "check"], vault: vault).status == 0)
        chmod(vault, 0o755)
        defer { chmod(vault, 0o700) }
        let check = try await run(["vault", "check", "--json"], vault: vault)
        #expect(check.status == 1)
        #expect(check.stdout.contains("\"ok\": false"))
        #expect(check.stdout.contains("chmod 700 \(vault)"))
        let refused = try await run(["identity", "list"], vault: vault)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("too open"))
    }

    @Test func credentialIssueVerifyShowStore() async throws {
        let vault = try temporaryDirectory() + "/vault"
        #expect(try await run(["identity", "create", "authority"], vault: vault).status == 0)
        #expect(try await run(["identity", "create", "sensor"], vault: vault).status == 0)
        let authority = try await run(["identity", "show", "authority", "--full"], vault: vault).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let sensor = try await run(["identity", "show", "sensor", "--full"], vault: vault).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let sensorID = try await run(["identity", "show", "sensor"], vault: vault).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let issued = try await run(
            ["credential", "issue", "--as", "authority", "--for", sensor, "--attribute", "role=sensor", "--ttl", "1h"],
            vault: vault)
        #expect(issued.status == 0, "\(issued.stderr)")
        let credential = issued.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let shown = try await Binary.run(["credential", "show", credential, "--json"])
        #expect(shown.stdout.contains("\"role\": \"sensor\""))
        #expect(shown.stdout.contains(sensorID))
        let verified = try await Binary.run(["credential", "verify", credential, "--authority", authority])
        #expect(verified.status == 0, "\(verified.stderr)")
        // Wrong authority, wrong subject, tampered byte: each rejected with status 1.
        let wrongAuthority = try await Binary.run(["credential", "verify", credential, "--authority", sensor])
        #expect(wrongAuthority.status == 1)
        #expect(wrongAuthority.stderr.contains("not a trusted authority"))
        let authorityID = try await run(["identity", "show", "authority"], vault: vault).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let wrongSubject = try await Binary.run(["credential", "verify", credential, "--authority", authority, "--subject", authorityID])
        #expect(wrongSubject.status == 1)
        var bytes = Array(credential)
        let index = bytes.count - 10
        bytes[index] = bytes[index] == "0" ? "1" : "0"
        let tampered = try await Binary.run(["credential", "verify", String(bytes), "--authority", authority])
        #expect(tampered.status == 1)
        let stored = try await run(["credential", "store", credential, "--identity", "sensor"], vault: vault)
        #expect(stored.status == 0, "\(stored.stderr)")
        let wrongHolder = try await run(["credential", "store", credential, "--identity", "authority"], vault: vault)
        #expect(wrongHolder.status == 1)
    }
}
