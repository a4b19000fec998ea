// EdgeCrypto/SecretBytes: secret storage in libsodium guarded memory, plus the storable SecretKey wrapper.
import CSodium

/// A fixed-size buffer of secret bytes in libsodium guarded memory (`sodium_malloc`): a slot of a shared guarded
/// slab for small secrets (``SecretSlabs``), or an allocation of its own for larger ones and for long-term keys that
/// ask for it (``init(isolatedZeroedCount:)``).
///
/// `SecretBytes` is noncopyable, so a secret has exactly one owner and is never duplicated implicitly. To store a
/// secret in an array, a class or across tasks, wrap it in a ``SecretKey``.
///
/// ### Invariants
/// - Storage comes from `sodium_malloc`: a guard page on each side, a canary checked on free, and the pages are
///   `mlock`ed (best effort: libsodium ignores `mlock` failure, for example under a low `RLIMIT_MEMLOCK`) and
///   marked `MADV_DONTDUMP` where supported — for a slot, those of its slab.
/// - `deinit` zeroes the bytes: `sodium_memzero` of the slot, or `sodium_free` (which zeroes before unmapping).
/// - Newly allocated buffers are zero-filled or random, never left with allocator garbage.
/// - Allocation failure (address-space exhaustion) traps, like Swift's own allocations.
/// - A secret of its own costs a few pages of address space and several system calls; a slot costs a lock and a
///   `memset`. Either is meant for keys and other secrets, not for bulk data.
public struct SecretBytes: ~Copyable, @unchecked Sendable {
    // @unchecked Sendable: the buffer is uniquely owned (noncopyable) and only reachable through `self`, so
    // exclusivity checking already prevents concurrent mutation.
    private let base: UnsafeMutableRawPointer
    /// The slab and slot index for a slotted secret; nil for one with its own allocation.
    private let slot: (slab: SecretSlabs.Slab, index: Int)?

    /// The number of secret bytes.
    public let count: Int

    /// Allocates `count` zero bytes in guarded memory: a slab slot when it fits one, else its own allocation.
    public init(zeroedCount count: Int) {
        precondition(count >= 0, "EdgeCrypto: negative SecretBytes count")
        if count <= SecretSlabs.slotSize {
            let (pointer, slab, index) = SecretSlabs.shared.take(count)
            self.init(base: pointer, slot: (slab, index), count: count)
        } else {
            self.init(isolatedZeroedCount: count)
        }
    }

    private init(base: UnsafeMutableRawPointer, slot: (slab: SecretSlabs.Slab, index: Int)?, count: Int) {
        self.base = base
        self.slot = slot
        self.count = count
    }

    /// Allocates `count` zero bytes in guarded memory of their own (`sodium_malloc`): guard pages right around this
    /// secret and, once in a ``SecretKey``, read-only pages. For long-term keys (the vault's); costs ~50 µs.
    public init(isolatedZeroedCount count: Int) {
        precondition(count >= 0, "EdgeCrypto: negative SecretBytes count")
        Sodium.ensureInitialized()
        guard let pointer = sodium_malloc(count) else {
            fatalError("EdgeCrypto: sodium_malloc(\(count)) failed")
        }
        sodium_memzero(pointer, count)
        self.init(base: pointer, slot: nil, count: count)
    }

    /// Allocates `count` bytes in guarded memory filled from libsodium's CSPRNG (`randombytes_buf`).
    public init(randomCount count: Int) {
        self.init(zeroedCount: count)
        randombytes_buf(base, count)
    }

    /// Copies `bytes` into guarded memory. Zeroing the source afterwards (for example with `Memory.zero(_:)`)
    /// is the caller's responsibility. `isolated`: memory of its own (``init(isolatedZeroedCount:)``).
    public init(copying bytes: UnsafeRawBufferPointer, isolated: Bool = false) {
        if isolated { self.init(isolatedZeroedCount: bytes.count) } else { self.init(zeroedCount: bytes.count) }
        if let source = bytes.baseAddress, bytes.count > 0 {
            base.copyMemory(from: source, byteCount: bytes.count)
        }
    }

    /// Copies `bytes` into guarded memory. Zeroing the source array afterwards (`Memory.zero(_:)`) is the
    /// caller's responsibility. `isolated`: memory of its own (``init(isolatedZeroedCount:)``).
    public init(copying bytes: [UInt8], isolated: Bool = false) {
        if isolated { self.init(isolatedZeroedCount: bytes.count) } else { self.init(zeroedCount: bytes.count) }
        bytes.withUnsafeBytes { source in
            if let start = source.baseAddress, source.count > 0 {
                base.copyMemory(from: start, byteCount: source.count)
            }
        }
    }

    deinit {
        if let slot {
            SecretSlabs.shared.give(slot.slab, slot.index)  // zeroes the slot
        } else {
            sodium_free(base)  // zeroes, munlocks and unmaps
        }
    }

    /// Whether the secret has guarded pages of its own (else it is a slab slot).
    public var isIsolated: Bool { slot == nil }

    /// Calls `body` with a read-only view of the secret bytes. The pointer must not escape `body`.
    public func withUnsafeBytes<R: ~Copyable, E: Error>(
        _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Calls `body` with a mutable view of the secret bytes. The pointer must not escape `body`.
    public mutating func withUnsafeMutableBytes<R: ~Copyable, E: Error>(
        _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeMutableRawBufferPointer(start: base, count: count))
    }

    /// Compares with `other` in constant time (`sodium_memcmp`); `false` if the lengths differ (lengths are not
    /// treated as secret).
    public func constantTimeEquals(_ other: borrowing SecretBytes) -> Bool {
        guard count == other.count else { return false }
        return other.withUnsafeBytes { ConstantTime.equals(UnsafeRawBufferPointer(start: base, count: count), $0) }
    }

    /// Compares with `bytes` in constant time (`sodium_memcmp`); `false` if the lengths differ.
    public func constantTimeEquals(_ bytes: some KeyMaterial) -> Bool {
        bytes.withKeyBytes { ConstantTime.equals(UnsafeRawBufferPointer(start: base, count: count), $0) }
    }

    /// Makes the pages read-only (`sodium_mprotect_readonly`); used by ``SecretKey``. `sodium_free` restores write
    /// access before zeroing. A slot shares its pages with other secrets and stays writable.
    fileprivate func protectReadOnly() {
        guard slot == nil else { return }
        let status = sodium_mprotect_readonly(base)
        precondition(status == 0, "EdgeCrypto: sodium_mprotect_readonly failed")
    }
}

/// An immutable, reference-counted secret (symmetric key, private key, chaining key) backed by ``SecretBytes``.
///
/// Use it where a noncopyable value is awkward: arrays, class properties, values shared between tasks.
///
/// ### Invariants
/// - Wraps exactly one ``SecretBytes``; the bytes never change after `init`. An isolated one's pages are made
///   read-only (`sodium_mprotect_readonly`) right after initialisation, so a stray write faults instead of
///   corrupting the key; a slab slot shares its page and stays writable (``SecretSlabs``).
/// - `@unchecked Sendable` is sound because the instance is immutable after `init`; the only access is the
///   read-only ``withUnsafeBytes(_:)``, and concurrent reads of immutable memory cannot race.
/// - The bytes are zeroed and unmapped when the last reference is released.
/// - ``description`` never reveals the bytes.
public final class SecretKey: @unchecked Sendable, KeyMaterial, CustomStringConvertible {
    private let storage: SecretBytes

    /// Takes ownership of `bytes` and makes them read-only.
    public init(_ bytes: consuming SecretBytes) {
        bytes.protectReadOnly()
        storage = bytes
    }

    /// Copies `bytes` into a new key. Zeroing the source array afterwards is the caller's responsibility.
    /// `isolated`: guarded, read-only pages of its own (for long-term keys).
    public convenience init(copying bytes: [UInt8], isolated: Bool = false) {
        self.init(SecretBytes(copying: bytes, isolated: isolated))
    }

    /// A new key of `count` random bytes (`randombytes_buf`).
    public convenience init(randomCount count: Int) {
        self.init(SecretBytes(randomCount: count))
    }

    /// The number of key bytes.
    public var count: Int { storage.count }

    /// Whether the key has guarded, read-only pages of its own (else it is a slab slot: ``SecretSlabs``).
    public var isIsolated: Bool { storage.isIsolated }

    /// The number of key bytes (``KeyMaterial`` conformance).
    public var keyByteCount: Int { storage.count }

    /// Calls `body` with a read-only view of the key bytes. The pointer must not escape `body`.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try storage.withUnsafeBytes(body)
    }

    /// Calls `body` with a read-only view of the key bytes (``KeyMaterial`` conformance).
    public func withKeyBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try storage.withUnsafeBytes(body)
    }

    /// Compares with `other` in constant time; `false` if the lengths differ.
    public func constantTimeEquals(_ other: some KeyMaterial) -> Bool {
        storage.constantTimeEquals(other)
    }

    /// A redacted description: the length only.
    public var description: String { "SecretKey(\(count) bytes, redacted)" }
}
