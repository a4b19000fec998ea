// VaultStressChild: test helper for EdgeVaultTests that writes to a vault until it is killed, or holds it open.
//
// Usage:
//   VaultStressChild <vault-dir> <seed> [--key-file <path>]          write forever; one "w <n>" line per write
//   VaultStressChild <vault-dir> <seed> [--key-file <path>] --hold   open, print "ready <pid>", wait for stdin EOF
//
// The crash-safety test kills the writer with SIGKILL after reading a random number of progress lines, then
// checks that the vault still opens and that every key and record in it is complete and valid. Record payloads
// follow a self-checking pattern (see `RecordPattern`), so the test can tell a torn record from a good one.
import EdgeVault
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// SplitMix64: a small deterministic generator, so a failing run can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The self-checking record payload: 8 bytes of little-endian `tag`, then byte `j` = low byte of
/// `tag + j * 0x9E`. The test side (`VaultCrashTests`) has the same definition.
enum RecordPattern {
    static func make(tag: UInt64, count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: max(count, 8))
        for index in 0..<8 { bytes[index] = UInt8(truncatingIfNeeded: tag >> (8 * UInt64(index))) }
        for index in 8..<bytes.count { bytes[index] = UInt8(truncatingIfNeeded: tag &+ UInt64(index) &* 0x9E) }
        return bytes
    }
}

@main
struct VaultStressChild {
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        let hold = arguments.contains("--hold")
        arguments.removeAll { $0 == "--hold" }
        var keyFile: String?
        if let index = arguments.firstIndex(of: "--key-file"), index + 1 < arguments.count {
            keyFile = arguments[index + 1]
            arguments.removeSubrange(index...index + 1)
        }
        guard arguments.count == 2, let seed = UInt64(arguments[1]) else {
            fail("usage: VaultStressChild <vault-dir> <seed> [--key-file <path>] [--hold]")
        }
        do {
            var options = VaultOptions()
            if let keyFile { options.encryptionKey = try Vault.loadEncryptionKey(from: FilePath(keyFile)) }
            let vault = try Vault.open(at: FilePath(arguments[0]), options: options)
            if hold {
                try holdOpen(vault)
            } else {
                try stress(vault, seed: seed)
            }
        } catch {
            fail("VaultStressChild: \(error)")
        }
    }

    /// Prints `ready <pid>`, then keeps the vault open until standard input reaches end of file.
    static func holdOpen(_ vault: Vault) throws {
        say("ready \(getpid())")
        var byte: UInt8 = 0
        while read(0, &byte, 1) > 0 {}
        vault.close()
        say("closed")
    }

    /// Generates, re-imports and deletes keys and writes and deletes records, forever.
    static func stress(_ vault: Vault, seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        var keys = try vault.listKeys().map(\.handle)
        var step: UInt64 = 0
        while true {
            switch random.next() % 10 {
            case 0, 1, 2:
                let type = KeyType.allCases[Int(random.next() % UInt64(KeyType.allCases.count))]
                keys.append(try vault.generateKey(type))
            case 3:
                if !keys.isEmpty {
                    let handle = keys[Int(random.next() % UInt64(keys.count))]
                    let type = try vault.publicKey(handle).type
                    _ = try vault.importKey(type, secret: try vault.secretKey(handle))
                }
            case 4:
                if keys.count > 8 {
                    try vault.deleteKey(keys.remove(at: Int(random.next() % UInt64(keys.count))))
                }
            case 5, 6, 7, 8:
                let kind = "kind\(random.next() % 3)"
                let name = "rec\(random.next() % 6)"
                let size = 8 + Int(random.next() % 16_384)
                try vault.writeRecord(kind: kind, name: name, bytes: RecordPattern.make(tag: seed &+ step, count: size))
            default:
                try vault.deleteRecord(kind: "kind\(random.next() % 3)", name: "rec\(random.next() % 6)")
            }
            say("w \(step)")
            step += 1
        }
    }

    /// Writes one line to standard output, unbuffered (the parent counts lines as they come).
    static func say(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = try? FileDescriptor.standardOutput.writeAll(bytes)
    }

    static func fail(_ message: String) -> Never {
        _ = try? FileDescriptor.standardError.writeAll(Array((message + "\n").utf8))
        exit(2)
    }
}
