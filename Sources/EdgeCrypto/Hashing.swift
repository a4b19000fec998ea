// EdgeCrypto/Hashing: SHA-256 and HMAC-SHA256 (libsodium crypto_hash_sha256 / crypto_auth_hmacsha256).
import CSodium

/// SHA-256 (FIPS 180-4) from libsodium.
public enum SHA256 {
    /// Digest length in bytes (32).
    public static let digestByteCount = 32

    /// The SHA-256 digest of `bytes`.
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { hash($0) }
    }

    /// The SHA-256 digest of `bytes`.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var hasher = Hasher()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// Incremental SHA-256 (`crypto_hash_sha256_state`). Copy a hasher to fork the computation.
    public struct Hasher: Sendable {
        private var state = crypto_hash_sha256_state()

        /// Starts a new digest.
        public init() {
            Sodium.ensureInitialized()
            _ = crypto_hash_sha256_init(&state)
        }

        /// Absorbs `bytes`.
        public mutating func update(_ bytes: [UInt8]) {
            bytes.withUnsafeBytes { update($0) }
        }

        /// Absorbs `bytes`.
        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            _ = crypto_hash_sha256_update(&state, bytes.nonNullBytes, bytes.u64Count)
        }

        /// Returns the digest of everything absorbed. libsodium zeroes the internal state.
        public consuming func finalize() -> [UInt8] {
            makeBytes(count: SHA256.digestByteCount) { out in
                crypto_hash_sha256_final(&state, out.nonNullBytes) == 0
            }!
        }
    }
}

/// HMAC-SHA256 (RFC 2104) from libsodium's `crypto_auth_hmacsha256_*` incremental API, which accepts keys of any
/// length (keys longer than 64 bytes are hashed first, as RFC 2104 specifies).
///
/// ### Invariants
/// - The HMAC state, which is derived from the key, is zeroed (`sodium_memzero`) after every computation.
/// - ``verify(mac:key:message:)`` compares in constant time and only accepts full 32-byte MACs; truncated MACs
///   are rejected.
public enum HMACSHA256 {
    /// MAC length in bytes (32).
    public static let macByteCount = 32

    /// HMAC-SHA256 of `message` under `key` (any length, including empty).
    public static func authenticate(key: some KeyMaterial, message: [UInt8]) -> [UInt8] {
        key.withKeyBytes { keyBytes in
            message.withUnsafeBytes { messageBytes in
                makeBytes(count: macByteCount) { out in
                    computeHMAC(key: keyBytes, into: out.baseAddress!) { $0.update(messageBytes) }
                    return true
                }!
            }
        }
    }

    /// Whether `mac` is the 32-byte HMAC-SHA256 of `message` under `key`, compared in constant time.
    /// MACs of any other length (including truncated ones) return `false`.
    public static func verify(mac: [UInt8], key: some KeyMaterial, message: [UInt8]) -> Bool {
        guard mac.count == macByteCount else { return false }
        var expected = authenticate(key: key, message: message)
        defer { Memory.zero(&expected) }
        return ConstantTime.equals(expected, mac)
    }
}

/// Runs one HMAC-SHA256 computation whose state lives in a stack buffer: `absorb` feeds the message through the
/// given ``HMACInput``, then the 32-byte MAC is written to `out`. Shared by ``HMACSHA256`` and ``HKDF``.
///
/// ### Invariants
/// - The key-dependent state never leaves the temporary stack allocation and is zeroed before returning.
func computeHMAC(key: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer, _ absorb: (HMACInput) -> Void) {
    Sodium.ensureInitialized()
    withUnsafeTemporaryAllocation(of: crypto_auth_hmacsha256_state.self, capacity: 1) { buffer in
        let state = buffer.baseAddress!
        _ = crypto_auth_hmacsha256_init(state, key.nonNullBytes, key.count)
        absorb(HMACInput(state: state))
        _ = crypto_auth_hmacsha256_final(state, out.assumingMemoryBound(to: UInt8.self))
        Memory.zero(UnsafeMutableRawBufferPointer(buffer))
    }
}

/// Message input to an HMAC computation in progress (see ``computeHMAC(key:into:_:)``).
struct HMACInput {
    fileprivate let state: UnsafeMutablePointer<crypto_auth_hmacsha256_state>

    func update(_ bytes: UnsafeRawBufferPointer) {
        _ = crypto_auth_hmacsha256_update(state, bytes.nonNullBytes, bytes.u64Count)
    }

    func update(byte: UInt8) {
        var value = byte
        _ = crypto_auth_hmacsha256_update(state, &value, 1)
    }
}
