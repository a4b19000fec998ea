// OckamEdgeBench support: argv, JSON lines, clocks, CPU time, /proc readings and statistics.
import EdgeWire
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `--key value` options and `--flag` flags after a subcommand name.
struct Arguments {
    let command: String
    private var values: [String: String] = [:]
    private var flags: Set<String> = []

    init(_ argv: [String]) throws(BenchFailure) {
        guard let first = argv.first else { throw BenchFailure("missing subcommand (try --help)") }
        command = first
        var index = 1
        while index < argv.count {
            let word = argv[index]
            guard word.hasPrefix("--") else { throw BenchFailure("unexpected argument '\(word)'") }
            let name = String(word.dropFirst(2))
            if index + 1 < argv.count, !argv[index + 1].hasPrefix("--") {
                values[name] = argv[index + 1]
                index += 2
            } else {
                flags.insert(name)
                index += 1
            }
        }
    }

    func string(_ name: String, default value: String) -> String { values[name] ?? value }
    func string(_ name: String) -> String? { values[name] }
    func flag(_ name: String) -> Bool { flags.contains(name) }

    func int(_ name: String, default value: Int) throws(BenchFailure) -> Int {
        guard let text = values[name] else { return value }
        guard let parsed = Int(text) else { throw BenchFailure("--\(name) expects an integer, got '\(text)'") }
        return parsed
    }

    func double(_ name: String, default value: Double) throws(BenchFailure) -> Double {
        guard let text = values[name] else { return value }
        guard let parsed = Double(text), parsed.isFinite else { throw BenchFailure("--\(name) expects a number, got '\(text)'") }
        return parsed
    }

    /// A comma-separated list of integers.
    func ints(_ name: String, default value: [Int]) throws(BenchFailure) -> [Int] {
        guard let text = values[name] else { return value }
        var result: [Int] = []
        for part in text.split(separator: ",") {
            guard let parsed = Int(part) else { throw BenchFailure("--\(name) expects integers, got '\(text)'") }
            result.append(parsed)
        }
        return result
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - JSON lines

/// Prints one result as a JSON line on stdout and flushes (the driver reads stdout line by line).
func emit(_ fields: [(String, JSON)]) {
    print(JSON.object(fields).serialized(pretty: false))
    fflush(nil)
}

/// Logs go to stderr at warning level: stdout carries only results and `listening host:port`.
func bootstrapQuietLogging() {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = .warning
        return handler
    }
}

// MARK: - Clocks and CPU time

/// CLOCK_MONOTONIC in nanoseconds: shared by every process on the machine, so one-way latencies between two
/// processes on the same host can be taken from timestamps carried in the payload.
@inline(__always)
func monotonicNanos() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
}

/// User and system CPU seconds used by this process so far.
func processCPUSeconds() -> (user: Double, system: Double) {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return (seconds(usage.ru_utime), seconds(usage.ru_stime))
}

/// Bounds the process's lifetime: SIGALRM's default action ends it, whatever it is doing.
func armLifetimeLimit(seconds: Int) {
    if seconds > 0 { alarm(UInt32(seconds)) }
}

/// Makes timer wake-ups precise (the default 50 µs slack would blur paced sends); inherited by threads started later.
/// `prctl` is variadic in C (not imported into Swift), so it is called through a fixed-arity pointer: on x86-64 and
/// arm64 Linux, integer arguments are passed the same way either way.
func tightenTimerSlack() {
    typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "prctl") else { return }  // RTLD_DEFAULT
    let prctlFunction = unsafeBitCast(symbol, to: Prctl.self)
    _ = prctlFunction(29 /* PR_SET_TIMERSLACK */, 1, 0, 0, 0)
}

// MARK: - /proc

/// Selected fields of `/proc/<pid>/status` (kB and counts).
struct ProcessStatus {
    var rssKB: Int
    var hwmKB: Int
    var threads: Int

    init?(pid: Int32) {
        let path = pid == 0 ? "/proc/self/status" : "/proc/\(pid)/status"
        guard let text = readTextFile(path) else { return nil }
        var rss = 0, hwm = 0, threads = 0
        for line in text.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count >= 2, let value = Int(parts[1]) else { continue }
            switch parts[0] {
            case "VmRSS:": rss = value
            case "VmHWM:": hwm = value
            case "Threads:": threads = value
            default: break
            }
        }
        rssKB = rss
        hwmKB = hwm
        self.threads = threads
    }

    var json: JSON {
        .object([("rss_kb", .int(Int64(rssKB))), ("hwm_kb", .int(Int64(hwmKB))), ("threads", .int(Int64(threads)))])
    }
}

func readTextFile(_ path: String, limit: Int = 1 << 16) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: limit)
    var total = 0
    while total < limit {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, limit - total) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        total += n
    }
    return String(decoding: buffer[..<total], as: UTF8.self)
}

// MARK: - Statistics

/// Latency percentiles of a sample (nanoseconds in, microseconds out).
func latencySummary(_ samples: [UInt64]) -> JSON {
    guard !samples.isEmpty else { return .object([("count", .int(Int64(0)))]) }
    let sorted = samples.sorted()
    func percentile(_ p: Double) -> Double {
        // Nearest-rank: the smallest value with at least p of the sample at or below it.
        let rank = Int((p * Double(sorted.count)).rounded(.up))
        return Double(sorted[max(0, min(sorted.count - 1, rank - 1))]) / 1000
    }
    let mean = sorted.reduce(0.0) { $0 + Double($1) } / Double(sorted.count) / 1000
    return .object([
        ("count", .int(Int64(sorted.count))), ("p50_us", .double(percentile(0.50))), ("p90_us", .double(percentile(0.90))),
        ("p99_us", .double(percentile(0.99))), ("p999_us", .double(percentile(0.999))),
        ("max_us", .double(Double(sorted[sorted.count - 1]) / 1000)), ("mean_us", .double(mean)),
    ])
}

/// Big-endian UInt64 at `offset` (payload timestamps).
@inline(__always)
func readUInt64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
    var value: UInt64 = 0
    for index in offset..<(offset + 8) { value = value << 8 | UInt64(bytes[index]) }
    return value
}

@inline(__always)
func writeUInt64(_ value: UInt64, into bytes: inout [UInt8], at offset: Int) {
    for index in 0..<8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64(index))) }
}

/// Pseudo-random, incompressible filler (xorshift; the content does not matter to any system measured).
func fillerBytes(count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
    var state = seed
    var bytes = [UInt8](repeating: 0, count: count)
    for index in 0..<count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        bytes[index] = UInt8(truncatingIfNeeded: state)
    }
    return bytes
}
