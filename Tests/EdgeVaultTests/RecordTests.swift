// EdgeVaultTests/RecordTests: the named-record store, name validation, size limits, and default paths.
import EdgeTestSupport
import EdgeCrypto
import Foundation
import SystemPackage
import Testing

@testable import EdgeVault

@Suite("Records", .cpuBound)
struct RecordTests {
    @Test("write, overwrite, read, list and delete records")
    func lifecycle() throws {
        try withVaultPath { path in
            let vault = try Vault.open(at: path)
            defer { vault.close() }
            #expect(try vault.readRecord(kind: "credentials", name: "a") == nil)
            #expect(try vault.listRecords(kind: "credentials") == [])
            #expect(try vault.listRecordKinds() == [])
            #expect(try vault.deleteRecord(kind: "credentials", name: "a") == false)

            try vault.writeRecord(kind: "credentials", name: "b", bytes: [2])
            try vault.writeRecord(kind: "credentials", name: "a", bytes: [1])
            try vault.writeRecord(kind: "change-history", name: "I0123", bytes: [])
            try vault.writeRecord(kind: "credentials", name: "a", bytes: [1, 1])
            #expect(try vault.readRecord(kind: "credentials", name: "a") == [1, 1])
            #expect(try vault.readRecord(kind: "change-history", name: "I0123") == [])
            #expect(try vault.listRecords(kind: "credentials") == ["a", "b"])
            #expect(try vault.listRecordKinds() == ["change-history", "credentials"])
            #expect(try vault.deleteRecord(kind: "credentials", name: "a"))
            #expect(try vault.listRecords(kind: "credentials") == ["b"])
            vault.close()

            let reopened = try Vault.open(at: path)
            defer { reopened.close() }
            #expect(try reopened.readRecord(kind: "credentials", name: "b") == [2])
        }
    }

    @Test("kinds and names must be [A-Za-z0-9._-]{1,128} and not start with a dot")
    func names() throws {
        try withVaultPath { path in
            let vault = try Vault.open(at: path)
            defer { vault.close() }
            let good = ["a", "Z9", "ok-name_1.2", String(repeating: "x", count: 128), "a..b"]
            for name in good {
                try vault.writeRecord(kind: name, name: name, bytes: [1])
                #expect(try vault.readRecord(kind: name, name: name) == [1])
            }
            let bad = [
                "", ".", "..", ".hidden", ".tmp-0011", ".lock", "a/b", "../x", "a b", "é",
                String(repeating: "x", count: 129), "a\0b",
            ]
            for name in bad {
                let error = expectVaultError(.invalidName) { try vault.writeRecord(kind: "ok", name: name, bytes: [1]) }
                #expect(error?.description.contains("invalid record name") == true)
                expectVaultError(.invalidName) { try vault.writeRecord(kind: name, name: "ok", bytes: [1]) }
                expectVaultError(.invalidName) { try vault.readRecord(kind: "ok", name: name) }
                expectVaultError(.invalidName) { try vault.deleteRecord(kind: name, name: "ok") }
                expectVaultError(.invalidName) { try vault.listRecords(kind: name) }
            }
        }
    }

    @Test("records up to 1 MiB are accepted; larger ones are refused")
    func sizeLimit() throws {
        try withVaultPath { path in
            let vault = try Vault.open(at: path)
            defer { vault.close() }
            let largest = [UInt8](repeating: 0xab, count: Vault.maximumRecordByteCount)
            try vault.writeRecord(kind: "big", name: "max", bytes: largest)
            #expect(try vault.readRecord(kind: "big", name: "max") == largest)
            let error = expectVaultError(.recordTooLarge) {
                try vault.writeRecord(kind: "big", name: "over", bytes: largest + [0])
            }
            #expect(error?.description == "record of 1048577 bytes exceeds the 1048576-byte limit")
            #expect(try vault.listRecords(kind: "big") == ["max"])
        }
    }
}

@Suite("Default paths")
struct DefaultPathTests {
    func path(_ environment: [String: String], home: String? = nil) -> FilePath? {
        Vault.defaultPath(environment: { environment[$0] }, homeDirectory: { home })
    }

    @Test("OCKAM_EDGE_VAULT, then XDG_DATA_HOME, then HOME, then the password database")
    func precedence() {
        let all = ["OCKAM_EDGE_VAULT": "/srv/vault", "XDG_DATA_HOME": "/data", "HOME": "/home/edge"]
        #expect(path(all) == "/srv/vault")
        #expect(path(all.filter { $0.key != "OCKAM_EDGE_VAULT" }) == "/data/ockam-edge/vault")
        #expect(path(["HOME": "/home/edge"]) == "/home/edge/.local/share/ockam-edge/vault")
        #expect(path([:], home: "/root") == "/root/.local/share/ockam-edge/vault")
        #expect(path([:]) == nil)
    }

    @Test("empty variables count as unset; a relative XDG_DATA_HOME is ignored")
    func edgeCases() {
        #expect(
            path(["OCKAM_EDGE_VAULT": "", "XDG_DATA_HOME": "", "HOME": "/h"]) == "/h/.local/share/ockam-edge/vault")
        #expect(path(["XDG_DATA_HOME": "relative/dir", "HOME": "/h"]) == "/h/.local/share/ockam-edge/vault")
        #expect(Vault.systemServicePath == "/var/lib/ockam-edge/vault")
        #expect(Vault.defaultPath() != nil)
    }
}
