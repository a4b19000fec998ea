// QueueStressChild: test helper for EdgeQueueTests that appends to a queue in `.always` mode until it is killed.
//
// Usage: QueueStressChild <queue-dir> <seed>
//
// Prints "a <sequence>" after each `append` returns (the record is then durable). The crash test kills it with
// SIGKILL after a random number of lines, reopens the queue and checks that every printed sequence is there, in
// order, exactly once. Payloads follow a self-checking pattern (`QueuePattern`), so torn records would show.
import EdgeQueue
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// SplitMix64, so a failing run can be replayed from its seed.
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

/// 8 bytes of little-endian `tag`, then byte j = low byte of (tag + j · 0x9E). Same definition in the tests.
enum QueuePattern {
    static func make(tag: UInt64, count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: max(count, 8))
        for index in 0..<8 { bytes[index] = UInt8(truncatingIfNeeded: tag >> (8 * UInt64(index))) }
        for index in 8..<bytes.count { bytes[index] = UInt8(truncatingIfNeeded: tag &+ UInt64(index) &* 0x9E) }
        return bytes
    }
}

@main
struct QueueStressChild {
    /// Limits shared with the test: small segments so runs cross segment boundaries.
    static let limits = QueueLimits(
        memoryMessages: 64, memoryBytes: 8192, diskBytes: 4 << 20, segmentBytes: 8192, maxRecordBytes: 4096,
        durability: .always)

    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard arguments.count == 2, let seed = UInt64(arguments[1]) else {
            fail("usage: QueueStressChild <queue-dir> <seed>")
        }
        do {
            let queue = try StoreAndForwardQueue.open(directory: FilePath(arguments[0]), limits: limits)
            var random = SplitMix64(seed: seed)
            while true {
                let size = 8 + Int(random.next() % 2048)
                let result = try queue.append(QueuePattern.make(tag: random.next(), count: size))
                say("a \(result.sequence)")
            }
        } catch {
            fail("QueueStressChild: \(error)")
        }
    }

    /// Writes one line to standard output, unbuffered (the parent counts lines as they come).
    static func say(_ line: String) {
        _ = try? FileDescriptor.standardOutput.writeAll(Array((line + "\n").utf8))
    }

    static func fail(_ message: String) -> Never {
        _ = try? FileDescriptor.standardError.writeAll(Array((message + "\n").utf8))
        exit(2)
    }
}
