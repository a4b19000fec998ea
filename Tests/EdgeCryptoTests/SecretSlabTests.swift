// EdgeCryptoTests/SecretSlabs: small secrets share guarded slabs; slots never overlap and are zeroed when given back.
import EdgeTestSupport
import Testing

@testable import EdgeCrypto

@Suite("Secret slabs")
struct SecretSlabTests {
    @Test func smallSecretsTakeSlotsLargeAndLongTermOnesGetPagesOfTheirOwn() {
        let kinds = [
            SecretBytes(zeroedCount: 32).isIsolated, SecretBytes(zeroedCount: SecretSlabs.slotSize).isIsolated,
            SecretBytes(zeroedCount: SecretSlabs.slotSize + 1).isIsolated, SecretBytes(isolatedZeroedCount: 32).isIsolated,
            SecretBytes(copying: [UInt8](repeating: 1, count: 32), isolated: true).isIsolated,
        ]
        #expect(kinds == [false, false, true, true, true])
        #expect(!SecretKey(randomCount: 32).isIsolated)
        #expect(SecretKey(copying: [UInt8](repeating: 1, count: 32), isolated: true).isIsolated)
    }

    /// More live secrets than one slab holds: each keeps its own bytes while the others are written, so no two share
    /// a slot, and a slot taken after others were given back starts zeroed.
    @Test func slotsNeverOverlapAndStartZeroed() {
        let contents = (0..<(3 * SecretSlabs.slotCount)).map { _ in Random.bytes(count: 32) }
        var keys = contents.map { SecretKey(copying: $0) }
        #expect(zip(keys, contents).allSatisfy { key, bytes in key.withUnsafeBytes { [UInt8]($0) } == bytes })
        keys.removeAll()
        for _ in 0..<SecretSlabs.slotCount {
            let zeroed = SecretBytes(zeroedCount: 48).withUnsafeBytes { $0.allSatisfy { $0 == 0 } }
            #expect(zeroed)
        }
    }

    /// Giving a slot back zeroes it at once (its slab stays alive while anyone holds it); slabs are made as slots run
    /// out, and empty ones are freed but one.
    @Test func aSlotGivenBackIsZeroedAndEmptySlabsAreFreedButOne() {
        let pool = SecretSlabs.Pool()
        let (pointer, slab, index) = pool.take(32)
        pointer.initializeMemory(as: UInt8.self, repeating: 0xa5, count: 32)
        #expect(UnsafeRawBufferPointer(start: slab.slot(index), count: 32).allSatisfy { $0 == 0xa5 })
        pool.give(slab, index)
        #expect(UnsafeRawBufferPointer(start: slab.slot(index), count: SecretSlabs.slotSize).allSatisfy { $0 == 0 })
        #expect(pool.usage == (0, 1, 1))
        let taken = (0..<(2 * SecretSlabs.slotCount + 1)).map { _ in pool.take(32) }
        #expect(pool.usage == (2 * SecretSlabs.slotCount + 1, 3, 3))
        #expect(Set(taken.map(\.pointer)).count == taken.count)
        for (_, slab, index) in taken { pool.give(slab, index) }
        #expect(pool.usage == (0, 1, 3))  // one empty slab kept for the next handshake
    }

    /// Many secrets taken and released from several tasks at once: the bookkeeping stays consistent (TSan watches
    /// the lock) and every secret reads back what was written.
    @Test func concurrentUseKeepsEverySecretIntact() async {
        let intact = await withTaskGroup(of: Bool.self) { group in
            for task in 0..<4 {
                group.addTask {
                    var ok = true
                    for round in 0..<200 {
                        let bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: task * 31 + round), count: 32)
                        let key = SecretKey(copying: bytes)
                        ok = ok && key.withUnsafeBytes { [UInt8]($0) } == bytes
                    }
                    return ok
                }
            }
            return await group.allSatisfy { $0 }
        }
        #expect(intact)
    }
}
