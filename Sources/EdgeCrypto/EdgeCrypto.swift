// EdgeCrypto: synchronous, Foundation-free crypto primitives for ockam-edge (libsodium; OpenSSL libcrypto for P-256).
//
// Which primitive comes from which library, and why, is documented in docs/crypto.md. In short: libsodium provides
// everything it implements (X25519, Ed25519, SHA-256, HMAC-SHA256, HKDF built on its HMAC, ChaCha20-Poly1305,
// AES-256-GCM on CPUs with AES-NI + CLMUL, randomness, guarded memory); OpenSSL libcrypto provides ECDSA P-256 and
// the constant-time software AES-256-GCM fallback.
import CSodium
import EdgePOSIX

/// Errors thrown by EdgeCrypto operations.
///
/// Signature verification and MAC verification return `Bool` instead of throwing; everything else that can fail
/// throws one of these cases.
///
/// ### Invariants
/// - Cases carry no payload and ``description`` is a fixed string: an error never contains key material,
///   plaintext, or any other caller input.
public enum CryptoError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// An AEAD ciphertext failed authentication (wrong key, nonce, AAD, modified or truncated ciphertext or tag).
    case authenticationFailure
    /// An X25519 peer public key produced the all-zero shared secret (a low-order point).
    case weakPublicKey
    /// A key has the wrong length for the algorithm.
    case invalidKeySize
    /// A nonce has the wrong length for the algorithm.
    case invalidNonceSize
    /// A public key is not a valid encoding of a point on the curve.
    case invalidPublicKey
    /// A private key is out of range (P-256 scalar not in 1..<n) or internally inconsistent (Ed25519 secret key).
    case invalidPrivateKey
    /// A signature could not be converted between encodings (malformed DER, wrong raw length, oversized integer).
    case invalidSignatureEncoding
    /// A length argument is out of range: HKDF output length, Noise HKDF output count, or a message too large for
    /// the primitive.
    case invalidLength
    /// The requested backend is not available on this machine (libsodium AES-GCM without AES-NI + CLMUL).
    case unavailable
    /// The underlying library reported an unexpected failure (allocation failure inside OpenSSL and the like).
    case internalFailure

    public var description: String {
        switch self {
        case .authenticationFailure: "authentication failure"
        case .weakPublicKey: "weak public key (all-zero shared secret)"
        case .invalidKeySize: "invalid key size"
        case .invalidNonceSize: "invalid nonce size"
        case .invalidPublicKey: "invalid public key"
        case .invalidPrivateKey: "invalid private key"
        case .invalidSignatureEncoding: "invalid signature encoding"
        case .invalidLength: "invalid length"
        case .unavailable: "primitive or backend unavailable"
        case .internalFailure: "internal crypto library failure"
        }
    }
}

/// Byte strings that can be used as key input: `[UInt8]` (memory managed by the caller) or ``SecretKey`` (guarded
/// memory, zeroed when released).
///
/// ### Invariants
/// - The buffer passed to `body` is valid only for the duration of the call and must not escape it.
/// - Implementations never copy the key bytes into unmanaged memory.
public protocol KeyMaterial {
    /// The number of key bytes.
    var keyByteCount: Int { get }

    /// Calls `body` with a read-only view of the key bytes.
    func withKeyBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R
}

extension Array: KeyMaterial where Element == UInt8 {
    /// The number of key bytes (`count`).
    public var keyByteCount: Int { count }

    /// Calls `body` with the array's bytes.
    public func withKeyBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try withBytes(self, body)
    }
}

// MARK: - libsodium initialisation

/// One-time libsodium initialisation.
///
/// ### Invariants
/// - `sodium_init()` runs exactly once per process, from a `static let` initializer (Swift runs it under a
///   `swift_once` guard), before any other libsodium call: every public entry point that touches libsodium
///   (including ``SecretBytes`` allocation, which needs the page size computed by `sodium_init`) calls
///   ``ensureInitialized()`` first.
/// - If `sodium_init()` fails (no usable entropy source), the process traps instead of running without a CSPRNG.
enum Sodium {
    private static let initialized: Bool = sodium_init() >= 0

    @inline(__always)
    static func ensureInitialized() {
        precondition(initialized, "EdgeCrypto: sodium_init() failed")
    }
}

// MARK: - Buffer helpers

/// A readable, never-written byte that gives empty buffers a valid address: libsodium declares most pointer
/// parameters `nonnull`, and passing NULL there is undefined behaviour even when the length is zero.
private nonisolated(unsafe) let emptyBytePlaceholder: UnsafeMutablePointer<UInt8> = {
    let pointer = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
    pointer.initialize(to: 0)
    return pointer
}()

extension UnsafeRawBufferPointer {
    /// The base address as a byte pointer, or a valid placeholder address for an empty buffer (never NULL).
    @inline(__always)
    var nonNullBytes: UnsafePointer<UInt8> {
        if let base = baseAddress {
            return base.assumingMemoryBound(to: UInt8.self)
        }
        return UnsafePointer(emptyBytePlaceholder)
    }

    /// `count` as the `unsigned long long` libsodium uses for message lengths.
    @inline(__always)
    var u64Count: UInt64 { UInt64(count) }
}

extension UnsafeMutableRawBufferPointer {
    /// The base address as a byte pointer, or a placeholder address for an empty buffer (never NULL). Nothing is
    /// ever written through the placeholder because the accompanying length is zero.
    @inline(__always)
    var nonNullBytes: UnsafeMutablePointer<UInt8> {
        if let base = baseAddress {
            return base.assumingMemoryBound(to: UInt8.self)
        }
        return emptyBytePlaceholder
    }
}

/// Creates an array of exactly `count` bytes filled by `body`. If `body` reports failure (`false`), the buffer is
/// zeroed before it is released and `nil` is returned, so partially computed output (for example unauthenticated
/// plaintext) never lingers in freed memory.
@inline(__always)
func makeBytes(count: Int, _ body: (UnsafeMutableRawBufferPointer) -> Bool) -> [UInt8]? {
    // `Array(unsafeUninitializedCapacity: 0)` stores its count into the shared empty-array storage: a write to one
    // global from every thread that does it (ThreadSanitizer reports it; an empty AEAD plaintext does it).
    guard count > 0 else { return body(UnsafeMutableRawBufferPointer(start: nil, count: 0)) ? [] : nil }
    var succeeded = false
    let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initializedCount in
        let raw = UnsafeMutableRawBufferPointer(buffer)
        succeeded = body(raw)
        if succeeded {
            initializedCount = count
        } else {
            sodium_memzero(raw.baseAddress, count)
            initializedCount = 0
        }
    }
    return succeeded ? bytes : nil
}

/// Runs `body` with a zero-filled stack buffer for a short-lived secret (an expanded signing key, the Noise
/// `temp_key`) and zeroes it with `sodium_memzero` afterwards.
///
/// Transient intermediates use this instead of ``SecretBytes``: `sodium_malloc` costs several system calls
/// (mmap, mprotect, mlock, munmap; tens of microseconds) and would dominate signing and key derivation, while the
/// value never outlives the call. This is how libsodium itself handles its internal temporaries.
@inline(__always)
func withTransientSecret<R>(byteCount: Int, _ body: (UnsafeMutableRawBufferPointer) -> R) -> R {
    withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 16) { buffer in
        Memory.zero(buffer)
        defer { Memory.zero(buffer) }
        return body(buffer)
    }
}
