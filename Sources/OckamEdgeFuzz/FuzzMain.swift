// OckamEdgeFuzz: the libFuzzer driver (built with -sanitize=fuzzer by `make fuzz`) and a corpus replayer otherwise.
import EdgeFuzz

#if canImport(Glibc)
import Glibc
#endif

/// The target chosen by `OCKAM_EDGE_FUZZ_TARGET`.
let selectedTarget: @Sendable ([UInt8]) throws(FuzzInvariantViolation) -> Void = {
    let name = getenv("OCKAM_EDGE_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = FuzzTargets.all[name] else {
        print("set OCKAM_EDGE_FUZZ_TARGET to one of: \(FuzzTargets.names.joined(separator: ", "))")
        exit(2)
    }
    return target
}()

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do {
        try selectedTarget(bytes)
    } catch {
        fatalError("invariant violated: \(error)")
    }
    return 0
}
#else
/// Replays files given on the command line through the selected target (no fuzzer linked).
@main
struct FuzzReplay {
    static func main() {
        var failures = 0
        for path in CommandLine.arguments.dropFirst() {
            guard let file = fopen(path, "rb") else {
                print("cannot open \(path)")
                failures += 1
                continue
            }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = fread(&chunk, 1, chunk.count, file)
                if n <= 0 { break }
                bytes += chunk[..<n]
            }
            fclose(file)
            do {
                try selectedTarget(bytes)
            } catch {
                print("\(path): \(error)")
                failures += 1
            }
        }
        exit(failures == 0 ? 0 : 1)
    }
}
#endif
