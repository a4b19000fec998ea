// StoreStressChild: the crash-test child of the vault and queue tests. It writes to a store until it is killed (the
// tests SIGKILL it at random points, reopen the store and check that everything it reported is there and whole), or
// holds a vault open.
//
// Usage:
//   StoreStressChild vault <vault-dir> <seed> [--key-file <path>]          write forever; "w <n>" per write
//   StoreStressChild vault <vault-dir> <seed> [--key-file <path>] --hold   open, print "ready <pid>", wait for stdin EOF
//   … --umask0                                                            run under umask 0 (the vault's modes test)
//   StoreStressChild queue <queue-dir> <seed>                              append in `.always` mode; "a <sequence>"
//
// Payloads follow a self-checking pattern (`StressPattern`; `isStressPattern` in EdgeTestSupport checks it), so a
// torn record shows.
import EdgeQueue
import EdgeSync
import EdgeVault
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

@main
struct StoreStressChild {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch arguments.first {
        case "vault": VaultStress.run(Array(arguments.dropFirst()))
        case "queue": QueueStress.run(Array(arguments.dropFirst()))
        default: fail("usage: StoreStressChild vault|queue <directory> <seed> [options]")
        }
    }
}


/// The self-checking payload: 8 bytes of little-endian `tag`, then byte `j` = low byte of `tag + j * 0x9E`.
enum StressPattern {
    static func make(tag: UInt64, count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: max(count, 8))
        for index in 0..<8 { bytes[index] = UInt8(truncatingIfNeeded: tag >> (8 * UInt64(index))) }
        for index in 8..<bytes.count { bytes[index] = UInt8(truncatingIfNeeded: tag &+ UInt64(index) &* 0x9E) }
        return bytes
    }
}

/// Writes one line to standard output, unbuffered (the parent counts lines as they come).
func say(_ line: String) {
    _ = try? FileDescriptor.standardOutput.writeAll(Array((line + "\n").utf8))
}

func fail(_ message: String) -> Never {
    _ = try? FileDescriptor.standardError.writeAll(Array((message + "\n").utf8))
    exit(2)
}

enum VaultStress {
    static func run(_ arguments: [String]) {
        var arguments = arguments
        let hold = arguments.contains("--hold")
        if arguments.contains("--umask0") { umask(0) }  // this process only: the test runner's other tests keep theirs
        arguments.removeAll { $0 == "--hold" || $0 == "--umask0" }
        var keyFile: String?
        if let index = arguments.firstIndex(of: "--key-file"), index + 1 < arguments.count {
            keyFile = arguments[index + 1]
            arguments.removeSubrange(index...index + 1)
        }
        guard arguments.count == 2, let seed = UInt64(arguments[1]) else {
            fail("usage: StoreStressChild vault <vault-dir> <seed> [--key-file <path>] [--hold]")
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
            fail("StoreStressChild vault: \(error)")
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
                try vault.writeRecord(kind: kind, name: name, bytes: StressPattern.make(tag: seed &+ step, count: size))
            default:
                try vault.deleteRecord(kind: "kind\(random.next() % 3)", name: "rec\(random.next() % 6)")
            }
            say("w \(step)")
            step += 1
        }
    }
}

enum QueueStress {
    /// Limits shared with the test: small segments so runs cross segment boundaries.
    static let limits = QueueLimits(
        memoryMessages: 64, memoryBytes: 8192, diskBytes: 4 << 20, segmentBytes: 8192, maxRecordBytes: 4096,
        durability: .always)

    static func run(_ arguments: [String]) {
        guard arguments.count == 2, let seed = UInt64(arguments[1]) else {
            fail("usage: StoreStressChild queue <queue-dir> <seed>")
        }
        do {
            let queue = try StoreAndForwardQueue.open(directory: FilePath(arguments[0]), limits: limits)
            var random = SplitMix64(seed: seed)
            while true {
                let size = 8 + Int(random.next() % 2048)
                let result = try queue.append(StressPattern.make(tag: random.next(), count: size))
                say("a \(result.sequence)")
            }
        } catch {
            fail("StoreStressChild queue: \(error)")
        }
    }
}
