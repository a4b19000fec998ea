// EdgeTestSupport: helpers shared by the test targets (hex, locating ../shared/vectors, JSON loading).
import Foundation

/// Errors raised while loading test data. A missing vector file is a test failure, never a skip.
public struct TestDataError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public enum TestData {
    /// The package root, derived from this file's path (`Tests/EdgeTestSupport/…`).
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // EdgeTestSupport
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // package root
    }

    /// `../shared/vectors` next to the package root (override with `OCKAM_EDGE_VECTORS`).
    public static var vectorsDirectory: URL {
        if let override = ProcessInfo.processInfo.environment["OCKAM_EDGE_VECTORS"] {
            return URL(fileURLWithPath: override)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/vectors")
    }

    /// Reads a vector file; throws (and so fails the test) if it is missing.
    public static func vectorFile(_ relativePath: String) throws -> Data {
        let url = vectorsDirectory.appendingPathComponent(relativePath)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TestDataError("vector file missing: \(url.path)")
        }
        return try Data(contentsOf: url)
    }

    /// Parses a vector file as JSON.
    public static func vectorJSON(_ relativePath: String) throws -> Any {
        try JSONSerialization.jsonObject(with: vectorFile(relativePath))
    }

    /// Directory holding the built products of the running test bundle (`.build/<triple>/<config>`).
    public static var productsDirectory: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }
}

extension Array where Element == UInt8 {
    /// Decodes a hex string (whitespace ignored); traps on invalid input since it is test data.
    public init(hex: String) {
        let digits = hex.filter { !$0.isWhitespace }
        precondition(digits.count % 2 == 0, "odd hex length")
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            guard let byte = UInt8(digits[index..<next], radix: 16) else { preconditionFailure("bad hex: \(hex)") }
            bytes.append(byte)
            index = next
        }
        self = bytes
    }

    public var hexString: String {
        let table: [Character] = "0123456789abcdef".map { $0 }
        var out = ""
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(table[Int(byte >> 4)])
            out.append(table[Int(byte & 0x0f)])
        }
        return out
    }
}

/// A small deterministic PRNG (SplitMix64) for property tests: reproducible from a printed seed.
public struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Runs blocking work (waiting on child processes, pipes, DispatchGroups) on a GCD thread and awaits it, so
/// the Swift concurrency pool — two threads on a 2-core machine — is never blocked by one test while other
/// tests' async work (NIO-backed nodes, timers) needs it.
public func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try body() })
        }
    }
}

/// Waits until `condition` holds, polling: for state that settles asynchronously after I/O or a socket event. The
/// bound is a guard against hangs, not a synchronisation device, so it is generous: on a loaded 2-core machine the
/// whole suite shares two threads.
public func eventually(
    _ what: @autoclosure () -> String, within: Duration = .seconds(30), _ condition: () -> Bool
) async throws {
    let deadline = ContinuousClock.now + within
    while !condition() {
        guard ContinuousClock.now < deadline else { throw TimedOut(what: what()) }
        try await Task.sleep(for: .milliseconds(2))
    }
}

/// ``eventually(_:within:_:)`` gave up.
public struct TimedOut: Error, CustomStringConvertible {
    public let what: String
    public var description: String { "timed out waiting for: \(what)" }
}
