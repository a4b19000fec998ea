// EdgeVaultTests/CrashTests: SIGKILL a writer at random points; the vault must always reopen whole.
import EdgeCrypto
import EdgeTestSupport
import Foundation
import SystemPackage
import Testing

@testable import EdgeVault

@Suite("Crash safety")
struct CrashTests {
    /// The seed: fixed for reproducible CI runs; override with `OCKAM_EDGE_VAULT_CRASH_SEED=<n>` to explore.
    static let seed: UInt64 =
        ProcessInfo.processInfo.environment["OCKAM_EDGE_VAULT_CRASH_SEED"].flatMap {
            UInt64($0)
        } ?? 0x5EED_0F_0A17

    @Test("SIGKILL at random points leaves every key and record complete (50 runs, plaintext and encrypted)")
    func killAtRandomPoints() async throws {
        try await blocking { try Self().killAtRandomPointsBlocking() }
    }

    func killAtRandomPointsBlocking() throws {
        var random = SeededGenerator(seed: Self.seed)
        try withTemporaryDirectory { directory in
            let plaintextVault = directory.appending("plaintext")
            let encryptedVault = directory.appending("encrypted")
            let keyFile = try makeKeyFile(in: directory)
            let iterations = 50
            var totalWrites = 0
            for iteration in 0..<iterations {
                let encrypted = iteration % 2 == 1
                let path = encrypted ? encryptedVault : plaintextVault
                var arguments = [path.string, String(random.next() >> 1)]
                if encrypted { arguments += ["--key-file", keyFile.path.string] }
                // Synchronisation, not timing: kill after `target` completed writes. Every 10th run (and the first
                // of each vault, which is still being created) is killed straight after spawning.
                let target = iteration % 10 == 0 || iteration == 1 ? 0 : Int.random(in: 1...100, using: &random)

                let child = try StoreStressChild("vault", arguments: arguments)
                var seen = 0
                while seen < target, let line = child.readLine() {
                    #expect(line.hasPrefix("w "))
                    seen += 1
                }
                child.kill()
                let exit = child.wait()
                #expect(
                    seen == target, "seed \(Self.seed), run \(iteration): child exited early: \(child.errorOutput())")
                #expect(exit?.reason == .uncaughtSignal, "\(String(describing: exit))")
                totalWrites += seen

                try verifyWhole(
                    path, key: encrypted ? keyFile.key : nil, context: "seed \(Self.seed), run \(iteration)")
            }
            #expect(totalWrites >= iterations * 10)
        }
    }

    /// Opens the vault (which removes temporary files), then loads and verifies every key and record.
    func verifyWhole(_ path: FilePath, key: SecretKey?, context: String) throws {
        let options = VaultOptions(encryptionKey: key)
        let vault = try Vault.open(at: path, options: options)
        defer { vault.close() }

        var directories = [path, path.appending("keys"), path.appending("records")]
        for kind in try vault.listRecordKinds() { directories.append(path.appending("records").appending(kind)) }
        for directory in directories {
            let leftovers = try entries(directory).filter { $0.hasPrefix(".tmp-") }
            #expect(leftovers.isEmpty, "\(context): temporary files left in \(directory)")
        }

        for stored in try vault.listKeys() {
            let secret = try vault.secretKey(stored.handle)
            let publicKey = try derivePublicKey(stored.type, secret)
            #expect(publicKey == stored.publicKey, "\(context)")
            #expect(KeyHandle(publicKey: publicKey) == stored.handle, "\(context)")
        }
        for kind in try vault.listRecordKinds() {
            #expect(kind.hasPrefix("kind"), "\(context)")
            for name in try vault.listRecords(kind: kind) {
                #expect(!name.hasPrefix("."), "\(context)")
                let bytes = try #require(try vault.readRecord(kind: kind, name: name), "\(context)")
                #expect(isStressPattern(bytes), "\(context): \(kind)/\(name) is not a complete record")
            }
        }
        vault.close()
        #expect(Vault.check(at: path, options: options).isEmpty, "\(context)")
    }
}
