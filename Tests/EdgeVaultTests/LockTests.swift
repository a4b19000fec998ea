// EdgeVaultTests/LockTests: one open Vault per directory, in this process and across processes.
import EdgeCrypto
import EdgeTestSupport
import Foundation
import SystemPackage
import Testing

@testable import EdgeVault

#if canImport(Glibc)
import Glibc
#endif

@Suite("Lock")
struct LockTests {
    @Test("a second open in the same process fails with the in-use error naming our pid")
    func sameProcess() throws {
        try withVaultPath { path in
            let first = try Vault.open(at: path)
            let lockContents = String(decoding: try readBytes(path.appending(".lock")), as: UTF8.self)
            #expect(lockContents == "\(getpid())\n")

            let error = expectVaultError(.inUse) { try Vault.open(at: path) }
            #expect(error?.description == "vault '\(path)' is in use by another ockam-edge process (pid \(getpid()))")
            #expect(error?.lockHolderPID == getpid())
            // The failed attempt did not disturb the holder.
            _ = try first.generateKey(.ed25519)

            first.close()
            let second = try Vault.open(at: path)
            #expect(try second.listKeys().count == 1)
            second.close()
        }
    }

    @Test("releasing the last reference releases the lock")
    func deinitReleases() throws {
        try withVaultPath { path in
            do {
                let vault = try Vault.open(at: path)
                _ = try vault.generateKey(.x25519)
            }
            let again = try Vault.open(at: path)
            #expect(try again.listKeys().count == 1)
            again.close()
        }
    }

    @Test("close releases the lock even while a forked child still shares the lock's descriptor")
    func closeWithAForkedChild() throws {
        try withVaultPath { path in
            let vault = try Vault.open(at: path)
            var pipeEnds: [Int32] = [0, 0]
            try #require(pipe(&pipeEnds) == 0)
            let child = fork()
            if child == 0 {
                // The child holds a copy of every descriptor, the vault's lock among them, until it exits. It makes
                // system calls only: after fork in a threaded process, anything that may take a lock another thread
                // held (the Swift runtime's metadata caches, the testing library's checks) can deadlock the child.
                var byte: UInt8 = 0
                close(pipeEnds[1])
                _ = read(pipeEnds[0], &byte, 1)
                _exit(0)
            }
            try #require(child > 0)
            close(pipeEnds[0])
            defer {
                close(pipeEnds[1])
                var status: Int32 = 0
                waitpid(child, &status, 0)
            }
            vault.close()
            let again = try Vault.open(at: path)
            again.close()
        }
    }

    @Test("an open that fails after taking the lock leaves the lock free and forgets its pid")
    func failedOpenReleases() throws {
        try withVaultPath { path in
            let key = SecretKey(copying: Random.bytes(count: 32))
            _ = try populateVault(at: path, options: VaultOptions(encryptionKey: key))
            let other = SecretKey(copying: Random.bytes(count: 32))
            expectVaultError(.wrongEncryptionKey) {
                try Vault.open(at: path, options: VaultOptions(encryptionKey: other))
            }
            #expect(try readBytes(path.appending(".lock")).isEmpty)
            let vault = try Vault.open(at: path, options: VaultOptions(encryptionKey: key))
            vault.close()
        }
    }

    @Test("another process holding the vault makes open fail with its pid; open succeeds once it exits")
    func crossProcess() async throws {
        try await blocking { try Self().crossProcessBlocking() }
    }

    func crossProcessBlocking() throws {
        try withVaultPath { path in
            let child = try StoreStressChild("vault", arguments: [path.string, "1", "--hold"])
            defer {
                child.kill()
                child.wait()
            }
            let ready = try #require(child.readLine(), "child exited: \(child.errorOutput())")
            #expect(ready == "ready \(child.pid)")

            let error = expectVaultError(.inUse) { try Vault.open(at: path) }
            #expect(error?.lockHolderPID == child.pid)
            #expect(error?.description == "vault '\(path)' is in use by another ockam-edge process (pid \(child.pid))")

            child.closeInput()
            #expect(child.readLine() == "closed")
            #expect(child.wait() == ChildExit(status: 0, reason: .exit))
            let vault = try Vault.open(at: path)
            vault.close()
        }
    }

    @Test("a process that dies holding the lock (SIGKILL) leaves the vault openable")
    func killedHolder() async throws {
        try await blocking { try Self().killedHolderBlocking() }
    }

    func killedHolderBlocking() throws {
        try withVaultPath { path in
            let child = try StoreStressChild("vault", arguments: [path.string, "1", "--hold"])
            #expect(child.readLine() == "ready \(child.pid)")
            child.kill()
            child.wait()
            let vault = try Vault.open(at: path)
            vault.close()
        }
    }
}
