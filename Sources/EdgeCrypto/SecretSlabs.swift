// EdgeCrypto/SecretSlabs: guarded memory for small secrets, carved from shared slabs instead of one sodium_malloc each.
import CSodium
import EdgeSync

/// Small secrets (keys, chaining keys, DH outputs: at most ``slotSize`` bytes) live in slots of guarded slabs.
///
/// Each slab is one `sodium_malloc` of ``slotCount`` × ``slotSize`` bytes: guard pages on both sides, a canary,
/// `mlock`ed (best effort) and excluded from core dumps, exactly as a ``SecretBytes`` of its own would be. A slot is
/// zeroed (`sodium_memzero`) when taken and again when given back, so nothing of a secret outlives its owner. What a
/// slot does not have that a dedicated allocation has: guard pages between neighbouring secrets and read-only pages
/// (mprotect works on whole pages). That is the trade for speed: a `sodium_malloc`/`sodium_free` pair costs about
/// 50 µs of system calls (mmap, mprotect, mlock, munmap), and a handshake derives more than twenty secrets. Long-term
/// keys that want their own pages ask for them (``SecretBytes/init(isolatedZeroedCount:)``).
///
/// Empty slabs are freed, except one kept for the next burst; the slab count is bounded only by the secrets alive.
enum SecretSlabs {
    /// The largest secret a slot holds (a SHA-512 output; every key here is 32 bytes).
    static let slotSize = 64
    /// Slots per slab: 64 × 64 bytes = one 4 KiB page between the guards.
    static let slotCount = 64

    final class Slab: @unchecked Sendable {
        // @unchecked: `used` is only touched under `SecretSlabs.state`'s lock; `base` never changes.
        let base: UnsafeMutableRawPointer
        /// Bit i set: slot i is in use.
        var used: UInt64 = 0

        init() {
            Sodium.ensureInitialized()
            guard let pointer = sodium_malloc(SecretSlabs.slotSize * SecretSlabs.slotCount) else {
                fatalError("EdgeCrypto: sodium_malloc of a secret slab failed")
            }
            sodium_memzero(pointer, SecretSlabs.slotSize * SecretSlabs.slotCount)
            base = pointer
        }

        deinit { sodium_free(base) }  // zeroes, munlocks and unmaps

        func slot(_ index: Int) -> UnsafeMutableRawPointer { base + index * SecretSlabs.slotSize }
    }

    /// The process's slabs, which every ``SecretBytes`` slot comes from.
    static let shared = Pool()

    /// A set of slabs and the slots in use in them.
    final class Pool: Sendable {
        struct State {
            var slabs: [Slab] = []
            var slotsInUse = 0
            var slabsMade = 0
        }

        let state = EdgeMutex(State())

        /// A zeroed slot for `count` ≤ ``SecretSlabs/slotSize`` bytes, and its slab and index (to give it back).
        func take(_ count: Int) -> (pointer: UnsafeMutableRawPointer, slab: Slab, index: Int) {
        precondition(count <= SecretSlabs.slotSize, "EdgeCrypto: \(count) bytes do not fit a secret slot")
        let (slab, index) = state.withLock { state -> (Slab, Int) in
            state.slotsInUse += 1
            for slab in state.slabs where slab.used != .max {
                let index = (~slab.used).trailingZeroBitCount
                slab.used |= 1 << UInt64(index)
                return (slab, index)
            }
            let slab = Slab()
            state.slabsMade += 1
            slab.used = 1
            state.slabs.append(slab)
            return (slab, 0)
        }
        return (slab.slot(index), slab, index)
    }

    /// Zeroes the slot and gives it back; frees its slab if that leaves two empty ones.
    func give(_ slab: Slab, _ index: Int) {
        sodium_memzero(slab.slot(index), SecretSlabs.slotSize)
        let released: Slab? = state.withLock { state in
            state.slotsInUse -= 1
            slab.used &= ~(1 << UInt64(index))
            guard slab.used == 0, state.slabs.contains(where: { $0 !== slab && $0.used == 0 }),
                let position = state.slabs.firstIndex(where: { $0 === slab })
            else { return nil }
            return state.slabs.remove(at: position)
        }
        _ = released  // its deinit (sodium_free) runs here, outside the lock
    }

    /// Slots in use and slabs held, for tests and the benchmark.
    var usage: (slotsInUse: Int, slabs: Int, slabsMade: Int) {
        state.withLock { ($0.slotsInUse, $0.slabs.count, $0.slabsMade) }
    }
    }
}
