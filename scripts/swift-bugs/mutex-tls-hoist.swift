// Swift 6.3.1, Linux x86_64: in an optimized async function, the address of the thread-local tid cache used by
// Synchronization.Mutex's inlined fast path (_swift_stdlib_gettid's `static __thread tid`) is computed before the
// hop back to the caller's executor and reused after it, i.e. on another thread.
// Build: swiftc -O -parse-as-library mutex_tls_hoist.swift -o mutex_tls_hoist
// Expected: prints "ok". Actual: "Fatal error: Call to unlock Mutex on a thread which hasn't acquired the lock".
import Synchronization

struct E: Error {}
let mutex = Mutex(0)

@inline(never)
@MainActor func f(_ t: Task<Int, any Error>) async throws -> Int {
    try mutex.withLock { (n) throws(E) in if n < 0 { throw E() } }
    defer { mutex.withLock { _ in } }
    return try await t.value  // resumes on a pool thread, then hops to the main thread
}

@main struct Main {
    @MainActor static func main() async {
        for i in 0..<1000 {
            let t = Task.detached { () async throws -> Int in
                try await Task.sleep(for: .milliseconds(1))
                mutex.withLock { _ in }  // gives this pool thread a non-zero cached tid
                return i
            }
            _ = try? await f(t)
        }
        print("ok")
    }
}
