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
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do {
        try selectedTarget(bytes)
    } catch {
        fatalError("invariant violated: \(error)")
    }
    return 0
}

/// libFuzzer's driver entry point (`int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*cb)(const uint8_t *,
/// size_t))`, LLVM ≥ 11). Three pointer arguments and an `int` result: the Swift and C conventions agree on x86_64
/// and arm64.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// SwiftPM links every executable with `--defsym main=OckamEdgeFuzz_main` (its entry point is renamed so tests can
/// link executable modules), but `-parse-as-library` without `@main` emits no such symbol, so the link fails. This
/// provides it and hands control to libFuzzer, exactly as libFuzzer's own `main` would.
@_cdecl("OckamEdgeFuzz_main")
public func fuzzDriverMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOneInput(data, size) }
}
#else
/// Replays files given on the command line through the selected target (no fuzzer linked).
/// `OckamEdgeFuzz --write-seeds <corpus root>` instead writes the fixture-derived seeds (``FuzzSeeds``).
@main
struct FuzzReplay {
    static func main() {
        let arguments = CommandLine.arguments
        if arguments.count == 3, arguments[1] == "--write-seeds" {
            exit(writeSeeds(root: arguments[2]))
        }
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

    static func writeSeeds(root: String) -> Int32 {
        var count = 0
        for (target, seeds) in FuzzSeeds.generated().sorted(by: { $0.key < $1.key }) {
            let directory = root + "/" + target
            mkdir(directory, 0o755)
            for (name, bytes) in seeds.sorted(by: { $0.key < $1.key }) {
                let path = directory + "/" + FuzzSeeds.prefix + name
                guard let file = fopen(path, "wb") else {
                    print("cannot write \(path)")
                    return 1
                }
                let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
                fclose(file)
                guard written == bytes.count else {
                    print("short write to \(path)")
                    return 1
                }
                count += 1
            }
        }
        print("wrote \(count) generated seeds under \(root)")
        return 0
    }
}
#endif
