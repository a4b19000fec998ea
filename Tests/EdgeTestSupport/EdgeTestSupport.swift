// EdgeTestSupport: helpers shared by the test targets (hex, ../shared/vectors, JSON, work off the concurrency pool).
import EdgeSync
import Foundation
import Testing

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
public typealias SeededGenerator = SplitMix64

/// Runs blocking work (waiting on child processes, pipes, DispatchGroups) on a thread of its own and awaits it, so
/// the Swift concurrency pool — two threads on a 2-core machine, shared with `DispatchQueue.global()` — is never held
/// by one test while other tests' async work (NIO-backed nodes, timers) needs it. The body runs inside the calling
/// task (a task executor preference), so `#expect` and `Issue.record` in it are attributed to the running test.
public func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    let executor = DedicatedThreadsExecutor(name: "blocking", threads: 1)
    defer { executor.shutdown() }
    return try await withTaskExecutorPreference(executor) { try body() }
}

/// A task executor backed by threads of its own, outside the Swift concurrency pool. The pool is not preemptive and,
/// on a 2-core machine, two threads wide: two CPU-bound tests that take tens of seconds under AddressSanitizer hold it
/// for that long, and every request/reply test waiting on a NIO event in the meantime runs into its guard timeout.
/// On threads of their own the kernel time-slices them with the pool instead.
public final class DedicatedThreadsExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []  // guarded by `condition`
    private var running = true  // guarded by `condition`

    public init(name: String, threads: Int) {
        for index in 0..<max(1, threads) {
            // Named from inside, through /proc (Glibc does not export pthread_setname_np, a `Thread.name` set before
            // `start()` did not reach the kernel here, and Linux threads inherit their creator's name). 15 characters.
            let threadName = String("\(name)-\(index)".prefix(15))
            Thread { [self] in
                try? threadName.write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
                serve()
            }.start()
        }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Lets the threads exit once the queued jobs have run.
    public func shutdown() {
        condition.lock()
        running = false
        condition.broadcast()
        condition.unlock()
    }

    private func serve() {
        while true {
            condition.lock()
            while jobs.isEmpty && running { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

/// Runs a test (or every test of a suite) on ``DedicatedThreadsExecutor/cpuBound``: for tests that compute for seconds
/// without suspending (property loops, vector files, corpus replays), so they cannot starve the concurrency pool.
public struct CPUBoundTrait: TestTrait, SuiteTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        // A suite's own scope is entered once around all its tests; each test gets the preference itself.
        guard !test.isSuite else { return try await function() }
        try await withTaskExecutorPreference(DedicatedThreadsExecutor.cpuBound) { try await function() }
    }
}

/// The kernel's name of the running thread (what `top -H`, gdb and ``DedicatedThreadsExecutor`` threads show).
public func currentThreadName() -> String {
    ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "")
        .trimmingCharacters(in: .whitespacesAndNewlines)
}

extension DedicatedThreadsExecutor {
    /// Two threads shared by every `.cpuBound` test: they queue among themselves and the kernel shares the cores
    /// between them and the concurrency pool.
    public static let cpuBound = DedicatedThreadsExecutor(name: "cpubound", threads: 2)
}

extension Trait where Self == CPUBoundTrait {
    /// See ``CPUBoundTrait``.
    public static var cpuBound: Self { CPUBoundTrait() }
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
    public init(what: String) { self.what = what }
    public var description: String { "timed out waiting for: \(what)" }
}
