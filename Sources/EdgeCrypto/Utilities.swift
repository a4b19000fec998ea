// EdgeCrypto/Utilities: CSPRNG access, constant-time comparison and memory zeroing (all libsodium).
import CSodium

/// Cryptographically secure random bytes from libsodium (`randombytes_buf`, backed by `getrandom(2)` on Linux).
public enum Random {
    /// Returns `count` random bytes.
    public static func bytes(count: Int) -> [UInt8] {
        precondition(count >= 0, "EdgeCrypto: negative random byte count")
        Sodium.ensureInitialized()
        guard count > 0 else { return [] }  // see makeBytes: no unsafeUninitializedCapacity of 0
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initializedCount in
            randombytes_buf(buffer.baseAddress!, count)
            initializedCount = count
        }
    }

    /// Overwrites every byte of `buffer` with random bytes.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        Sodium.ensureInitialized()
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        randombytes_buf(base, buffer.count)
    }

    /// Overwrites every element of `array` with random bytes.
    public static func fill(_ array: inout [UInt8]) {
        array.withUnsafeMutableBytes { fill($0) }
    }
}

/// Constant-time comparison.
///
/// ### Invariants
/// - The running time depends only on the lengths, never on the contents (`sodium_memcmp`). Lengths are not
///   treated as secret: different lengths return `false` immediately.
public enum ConstantTime {
    /// Whether `a` and `b` have the same length and contents.
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { ra in b.withUnsafeBytes { rb in equals(ra, rb) } }
    }

    /// Whether `a` and `b` have the same length and contents.
    public static func equals(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        guard a.count > 0 else { return true }
        Sodium.ensureInitialized()
        return sodium_memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0
    }
}

/// Zeroing of sensitive memory that the optimiser will not remove (`sodium_memzero`).
public enum Memory {
    /// Zeroes the elements of `array` in place (its count is unchanged).
    ///
    /// Arrays are copy-on-write: this zeroes the storage `array` owns after uniquing, so copies made earlier
    /// (sharing or not sharing the buffer) and buffers left behind by earlier growth are not reached. Prefer
    /// ``SecretBytes``/``SecretKey`` for anything long-lived.
    public static func zero(_ array: inout [UInt8]) {
        array.withUnsafeMutableBytes { zero($0) }
    }

    /// Zeroes every byte of `buffer`.
    public static func zero(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        sodium_memzero(base, buffer.count)
    }
}
