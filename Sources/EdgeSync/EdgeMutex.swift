// EdgeSync: what every target uses: the mutex (Synchronization.Mutex, with critical sections ThreadSanitizer can see) and SplitMix64.
import CSanitizerHooks
import Synchronization

/// `Synchronization.Mutex` with ThreadSanitizer annotations.
///
/// The toolchain's Synchronization module is prebuilt without TSan instrumentation, so TSan never sees its lock and
/// reports every pair of accesses made under one mutex from two threads as a race. Each critical section here is
/// bracketed by `__tsan_acquire` / `__tsan_release` on an address of its own (a 16-byte object: the value's address
/// would need an access to the value before the acquire), which gives TSan the happens-before edge the lock
/// provides. Outside a TSan build the hooks are weak undefined symbols: one predictable branch each.
public struct EdgeMutex<Value: ~Copyable>: ~Copyable {
    @usableFromInline let base: Mutex<Value>
    @usableFromInline let syncPoint = SyncPoint()

    public init(_ initialValue: consuming sending Value) {
        base = Mutex(initialValue)
    }

    /// Runs `body` with exclusive access to the value.
    ///
    /// Never inlined (`@inline(never)`; `@inlinable` only so that callers get a specialised copy): Swift 6.3.1
    /// miscompiles `Synchronization.Mutex` inlined into an async function on Linux. The mutex's fast path finds the
    /// calling thread's id through a thread-local slot; the optimiser keeps that slot's address in the async frame
    /// across a suspension point, so a lock taken after an `await` that resumed on another thread uses the previous
    /// thread's id (and can write into that thread's slot), and the unlock, which reads the current thread's slot,
    /// traps: "Call to unlock Mutex on a thread which hasn't acquired the lock" (release builds only; reproducer and
    /// cause: scripts/swift-bugs/). Out of line, every lock and unlock happen in one synchronous function, which reads
    /// the thread-local slot afresh on every call. `EdgeMutexTests` runs that shape in the release test run.
    @inlinable @inline(never)
    public borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        try base.withLock { (value: inout sending Value) throws(E) -> sending Result in
            let address = Unmanaged.passUnretained(syncPoint).toOpaque()
            ockam_edge_tsan_acquire(address)
            defer { ockam_edge_tsan_release(address) }
            return try body(&value)
        }
    }
}

extension EdgeMutex: @unchecked Sendable where Value: ~Copyable {}

/// The address a mutex's TSan annotations use (its identity only).
@usableFromInline
final class SyncPoint: Sendable {
    @usableFromInline init() {}
}
