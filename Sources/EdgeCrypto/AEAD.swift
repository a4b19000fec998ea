// EdgeCrypto/AEAD: AES-256-GCM (libsodium with AES-NI, OpenSSL software fallback) and ChaCha20-Poly1305 (IETF).
import COpenSSL
import CSodium
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// AES-256-GCM with a 96-bit nonce and a 128-bit tag (NIST SP 800-38D). Output is `ciphertext ‖ tag`.
///
/// Two backends produce identical output:
/// - ``Backend/libsodium``: `crypto_aead_aes256gcm_*`, which libsodium 1.0.18 only implements with AES-NI and
///   CLMUL (``isHardwareBackendAvailable``).
/// - ``Backend/openssl``: OpenSSL's `AES-256-GCM` (EVP), which uses AES-NI when present and otherwise constant-time
///   bit-sliced/vector-permute AES (bsaes/vpaes) — never table-based AES.
///
/// The default entry points use ``activeBackend``: libsodium when available, unless the software fallback is
/// forced with ``forceSoftwareFallback`` or the environment variable `OCKAM_EDGE_FORCE_SOFTWARE_AES=1` (read once,
/// at first use), so CI can exercise the fallback on x86 machines that have AES-NI.
///
/// ### Invariants
/// - Keys must be 32 bytes and nonces 12 bytes; anything else throws before any work is done.
/// - `open` never returns unauthenticated plaintext: on tag mismatch the output buffer is zeroed and
///   ``CryptoError/authenticationFailure`` is thrown. Inputs shorter than the tag fail the same way.
/// - No heap allocation per call other than the output array. The OpenSSL backend keeps one `EVP_CIPHER_CTX` per
///   thread (pthread TLS, freed at thread exit), so nothing is shared between threads; after every call that
///   context is re-keyed with an all-zero key and nonce, so it never retains the caller's key schedule or GHASH
///   key between calls.
/// - Nonce uniqueness per key is the caller's responsibility (Noise uses a counter).
public enum AES256GCM {
    /// An AES-256-GCM implementation.
    public enum Backend: String, Sendable, CaseIterable, CustomStringConvertible {
        /// libsodium `crypto_aead_aes256gcm_*` (AES-NI + CLMUL only).
        case libsodium
        /// OpenSSL libcrypto `EVP_aes_256_gcm` (hardware or constant-time software AES).
        case openssl

        public var description: String { rawValue }
    }

    /// Key length (32).
    public static let keyByteCount = 32
    /// Nonce length (12).
    public static let nonceByteCount = 12
    /// Tag length (16).
    public static let tagByteCount = 16
    /// Largest plaintext GCM allows with a 96-bit nonce: 2³⁹ − 256 bits.
    public static let maximumMessageByteCount = (1 << 36) - 32

    /// The environment variable that forces the OpenSSL software fallback when set to `1`.
    public static let forceSoftwareEnvironmentVariable = "OCKAM_EDGE_FORCE_SOFTWARE_AES"

    /// Whether `OCKAM_EDGE_FORCE_SOFTWARE_AES=1` was set when EdgeCrypto first read it (read once via `getenv`).
    public static let environmentForcesSoftwareFallback: Bool = {
        guard let value = getenv(forceSoftwareEnvironmentVariable) else { return false }
        return String(cString: value) == "1"
    }()

    /// Whether libsodium's AES-256-GCM can run on this CPU (`crypto_aead_aes256gcm_is_available()`, i.e. AES-NI
    /// and CLMUL).
    public static let isHardwareBackendAvailable: Bool = {
        Sodium.ensureInitialized()
        return crypto_aead_aes256gcm_is_available() == 1
    }()

    private static let forcedFallback = Atomic<Bool>(environmentForcesSoftwareFallback)

    /// Process-wide switch that makes the default entry points use the OpenSSL backend even when libsodium's is
    /// available. Starts as ``environmentForcesSoftwareFallback``; safe to change from any thread (tests, CLI flag).
    public static var forceSoftwareFallback: Bool {
        get { forcedFallback.load(ordering: .relaxed) }
        set { forcedFallback.store(newValue, ordering: .relaxed) }
    }

    /// The backend the default entry points use right now (for logs and benchmarks).
    public static var activeBackend: Backend {
        isHardwareBackendAvailable && !forceSoftwareFallback ? .libsodium : .openssl
    }

    /// Encrypts `plaintext` with ``activeBackend``; returns `ciphertext ‖ tag` (`plaintext.count + 16` bytes).
    ///
    /// - Throws: ``CryptoError/invalidKeySize``, ``CryptoError/invalidNonceSize``, ``CryptoError/invalidLength``
    ///   (message too large).
    public static func seal(
        key: some KeyMaterial, nonce: [UInt8], aad: [UInt8] = [], plaintext: [UInt8]
    ) throws(CryptoError) -> [UInt8] {
        try seal(key: key, nonce: nonce, aad: aad, plaintext: plaintext, backend: activeBackend)
    }

    /// Decrypts and authenticates `ciphertext ‖ tag` with ``activeBackend``.
    ///
    /// - Throws: ``CryptoError/authenticationFailure`` if authentication fails (including inputs shorter than the
    ///   tag); ``CryptoError/invalidKeySize``, ``CryptoError/invalidNonceSize``.
    public static func open(
        key: some KeyMaterial, nonce: [UInt8], aad: [UInt8] = [], ciphertext: [UInt8]
    ) throws(CryptoError) -> [UInt8] {
        try open(key: key, nonce: nonce, aad: aad, ciphertext: ciphertext, backend: activeBackend)
    }

    /// ``seal(key:nonce:aad:plaintext:)`` with an explicit backend (tests and benchmarks).
    ///
    /// - Throws: additionally ``CryptoError/unavailable`` for ``Backend/libsodium`` on CPUs without AES-NI + CLMUL.
    public static func seal(
        key: some KeyMaterial, nonce: [UInt8], aad: [UInt8] = [], plaintext: [UInt8], backend: Backend
    ) throws(CryptoError) -> [UInt8] {
        guard key.keyByteCount == keyByteCount else { throw .invalidKeySize }
        guard nonce.count == nonceByteCount else { throw .invalidNonceSize }
        guard plaintext.count <= maximumMessageByteCount else { throw .invalidLength }
        if backend == .libsodium, !isHardwareBackendAvailable { throw .unavailable }
        if backend == .openssl, OpenSSLGCM.context() == nil { throw .internalFailure }
        let result: [UInt8]? = key.withKeyBytes { k in
            nonce.withUnsafeBytes { n in
                aad.withUnsafeBytes { a in
                    plaintext.withUnsafeBytes { m in
                        makeBytes(count: m.count + tagByteCount) { out in
                            switch backend {
                            case .libsodium:
                                var written: UInt64 = 0
                                return crypto_aead_aes256gcm_encrypt(
                                    out.nonNullBytes, &written, m.nonNullBytes, m.u64Count, a.nonNullBytes,
                                    a.u64Count, nil, n.nonNullBytes, k.nonNullBytes
                                ) == 0 && written == UInt64(out.count)
                            case .openssl:
                                return OpenSSLGCM.seal(key: k, nonce: n, aad: a, plaintext: m, out: out)
                            }
                        }
                    }
                }
            }
        }
        guard let result else { throw .internalFailure }
        return result
    }

    /// ``open(key:nonce:aad:ciphertext:)`` with an explicit backend (tests and benchmarks).
    ///
    /// - Throws: additionally ``CryptoError/unavailable`` for ``Backend/libsodium`` on CPUs without AES-NI + CLMUL.
    public static func open(
        key: some KeyMaterial, nonce: [UInt8], aad: [UInt8] = [], ciphertext: [UInt8], backend: Backend
    ) throws(CryptoError) -> [UInt8] {
        guard key.keyByteCount == keyByteCount else { throw .invalidKeySize }
        guard nonce.count == nonceByteCount else { throw .invalidNonceSize }
        if backend == .libsodium, !isHardwareBackendAvailable { throw .unavailable }
        guard ciphertext.count >= tagByteCount else { throw .authenticationFailure }
        guard ciphertext.count - tagByteCount <= maximumMessageByteCount else { throw .authenticationFailure }
        if backend == .openssl, OpenSSLGCM.context() == nil { throw .internalFailure }
        let result: [UInt8]? = key.withKeyBytes { k in
            nonce.withUnsafeBytes { n in
                aad.withUnsafeBytes { a in
                    ciphertext.withUnsafeBytes { c in
                        makeBytes(count: c.count - tagByteCount) { out in
                            switch backend {
                            case .libsodium:
                                var written: UInt64 = 0
                                return crypto_aead_aes256gcm_decrypt(
                                    out.nonNullBytes, &written, nil, c.nonNullBytes, c.u64Count, a.nonNullBytes,
                                    a.u64Count, n.nonNullBytes, k.nonNullBytes
                                ) == 0 && written == UInt64(out.count)
                            case .openssl:
                                return OpenSSLGCM.open(key: k, nonce: n, aad: a, ciphertext: c, out: out)
                            }
                        }
                    }
                }
            }
        }
        guard let result else { throw .authenticationFailure }
        return result
    }
}

/// OpenSSL AES-256-GCM with one reusable `EVP_CIPHER_CTX` per thread.
private enum OpenSSLGCM {
    /// The explicitly fetched cipher: avoids OpenSSL 3's implicit fetch on every init. `EVP_CIPHER` objects are
    /// immutable and reference-counted, safe to share between threads; this one is never freed.
    nonisolated(unsafe) static let cipher: OpaquePointer? = EVP_CIPHER_fetch(nil, "AES-256-GCM", nil)

    /// Thread-local slot holding each thread's context; the destructor frees it (clearing it) at thread exit.
    static let contextKey: pthread_key_t? = {
        var key = pthread_key_t()
        #if canImport(Darwin)
        let status = pthread_key_create(&key) { EVP_CIPHER_CTX_free(OpaquePointer($0)) }
        #else
        let status = pthread_key_create(&key) { pointer in
            if let pointer { EVP_CIPHER_CTX_free(OpaquePointer(pointer)) }
        }
        #endif
        return status == 0 ? key : nil
    }()

    static let zeroKey = [UInt8](repeating: 0, count: AES256GCM.keyByteCount)
    static let zeroNonce = [UInt8](repeating: 0, count: AES256GCM.nonceByteCount)

    /// This thread's context, created and bound to AES-256-GCM on first use.
    static func context() -> OpaquePointer? {
        guard let contextKey, let cipher else { return nil }
        if let existing = pthread_getspecific(contextKey) {
            return OpaquePointer(existing)
        }
        guard let context = EVP_CIPHER_CTX_new() else { return nil }
        guard EVP_CipherInit_ex2(context, cipher, nil, nil, 1, nil) == 1,
              pthread_setspecific(contextKey, UnsafeRawPointer(context)) == 0
        else {
            EVP_CIPHER_CTX_free(context)
            return nil
        }
        return context
    }

    /// Overwrites the key schedule and GHASH key in `context` by re-keying with zeros.
    static func scrub(_ context: OpaquePointer) {
        let status = zeroKey.withUnsafeBytes { k in
            zeroNonce.withUnsafeBytes { n in
                EVP_CipherInit_ex2(context, nil, k.nonNullBytes, n.nonNullBytes, 1, nil)
            }
        }
        if status != 1 {
            ERR_clear_error()
            // Could not overwrite: drop the context entirely (EVP_CIPHER_CTX_free clears it) and start afresh.
            if let contextKey { _ = pthread_setspecific(contextKey, nil) }
            EVP_CIPHER_CTX_free(context)
        }
    }

    static func seal(
        key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
        plaintext: UnsafeRawBufferPointer, out: UnsafeMutableRawBufferPointer
    ) -> Bool {
        guard let context = context() else { return false }
        defer { scrub(context) }
        let output = out.nonNullBytes
        var length: Int32 = 0
        guard EVP_CipherInit_ex2(context, nil, key.nonNullBytes, nonce.nonNullBytes, 1, nil) == 1,
              update(context, out: nil, input: aad),
              update(context, out: output, input: plaintext),
              EVP_CipherFinal_ex(context, output + plaintext.count, &length) == 1, length == 0,
              EVP_CIPHER_CTX_ctrl(
                  context, EVP_CTRL_AEAD_GET_TAG, Int32(AES256GCM.tagByteCount), output + plaintext.count
              ) == 1
        else {
            ERR_clear_error()  // only on failure: it costs ~0.25 µs, as much as a small encryption
            return false
        }
        return true
    }

    static func open(
        key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
        ciphertext: UnsafeRawBufferPointer, out: UnsafeMutableRawBufferPointer
    ) -> Bool {
        guard let context = context() else { return false }
        defer { scrub(context) }
        let body = UnsafeRawBufferPointer(rebasing: ciphertext[..<(ciphertext.count - AES256GCM.tagByteCount)])
        let tag = UnsafeMutableRawPointer(mutating: ciphertext.baseAddress! + body.count)  // read, never written
        let output = out.nonNullBytes
        var length: Int32 = 0
        guard EVP_CipherInit_ex2(context, nil, key.nonNullBytes, nonce.nonNullBytes, 0, nil) == 1,
              update(context, out: nil, input: aad),
              update(context, out: output, input: body),
              EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, Int32(AES256GCM.tagByteCount), tag) == 1,
              EVP_CipherFinal_ex(context, output + body.count, &length) == 1, length == 0
        else {
            ERR_clear_error()
            return false
        }
        return true
    }

    /// Feeds `input` (AAD when `out` is nil) in chunks that fit OpenSSL's `int` lengths.
    private static func update(
        _ context: OpaquePointer, out: UnsafeMutablePointer<UInt8>?, input: UnsafeRawBufferPointer
    ) -> Bool {
        var offset = 0
        while offset < input.count {
            let chunk = min(input.count - offset, 1 << 30)
            var written: Int32 = 0
            let destination = out.map { $0 + offset }
            guard EVP_CipherUpdate(context, destination, &written, input.nonNullBytes + offset, Int32(chunk)) == 1,
                  Int(written) == chunk
            else { return false }
            offset += chunk
        }
        return true
    }
}

/// ChaCha20-Poly1305 as specified for IETF protocols (RFC 8439: 96-bit nonce, 128-bit tag), from libsodium
/// (`crypto_aead_chacha20poly1305_ietf_*`). Output is `ciphertext ‖ tag`.
///
/// ### Invariants
/// - Keys must be 32 bytes and nonces 12 bytes; anything else throws before any work is done.
/// - `open` never returns unauthenticated plaintext (libsodium verifies the tag before decrypting); inputs
///   shorter than the tag throw ``CryptoError/authenticationFailure``.
/// - Nonce uniqueness per key is the caller's responsibility.
public enum ChaCha20Poly1305 {
    /// Key length (32).
    public static let keyByteCount = 32
    /// Nonce length (12).
    public static let nonceByteCount = 12
    /// Tag length (16).
    public static let tagByteCount = 16

    /// Encrypts `plaintext`; returns `ciphertext ‖ tag` (`plaintext.count + 16` bytes).
    ///
    /// - Throws: ``CryptoError/invalidKeySize``, ``CryptoError/invalidNonceSize``, ``CryptoError/invalidLength``
    ///   (message larger than libsodium's limit).
    public static func seal(
        key: some KeyMaterial, nonce: [UInt8], aad: [UInt8] = [], plaintext: [UInt8]
    ) throws(CryptoError) -> [UInt8] {
        guard key.keyByteCount == keyByteCount else { throw .invalidKeySize }
        guard nonce.count == nonceByteCount else { throw .invalidNonceSize }
        guard plaintext.count <= crypto_aead_chacha20poly1305_ietf_messagebytes_max() else { throw .invalidLength }
        Sodium.ensureInitialized()
        let result: [UInt8]? = key.withKeyBytes { k in
            nonce.withUnsafeBytes { n in
                aad.withUnsafeBytes { a in
                    plaintext.withUnsafeBytes { m in
                        makeBytes(count: m.count + tagByteCount) { out in
                            var written: UInt64 = 0
                            return crypto_aead_chacha20poly1305_ietf_encrypt(
                                out.nonNullBytes, &written, m.nonNullBytes, m.u64Count, a.nonNullBytes, a.u64Count,
                                nil, n.nonNullBytes, k.nonNullBytes
                            ) == 0 && written == UInt64(out.count)
                        }
                    }
                }
            }
        }
        guard let result else { throw .internalFailure }
        return result
    }

    /// Decrypts and authenticates `ciphertext ‖ tag`.
    ///
    /// - Throws: ``CryptoError/authenticationFailure`` if authentication fails (including inputs shorter than the
    ///   tag); ``CryptoError/invalidKeySize``, ``CryptoError/invalidNonceSize``.
    public static func open(
        key: some KeyMaterial, nonce: [UInt8], aad: [UInt8] = [], ciphertext: [UInt8]
    ) throws(CryptoError) -> [UInt8] {
        guard key.keyByteCount == keyByteCount else { throw .invalidKeySize }
        guard nonce.count == nonceByteCount else { throw .invalidNonceSize }
        guard ciphertext.count >= tagByteCount else { throw .authenticationFailure }
        Sodium.ensureInitialized()
        let result: [UInt8]? = key.withKeyBytes { k in
            nonce.withUnsafeBytes { n in
                aad.withUnsafeBytes { a in
                    ciphertext.withUnsafeBytes { c in
                        makeBytes(count: c.count - tagByteCount) { out in
                            var written: UInt64 = 0
                            return crypto_aead_chacha20poly1305_ietf_decrypt(
                                out.nonNullBytes, &written, nil, c.nonNullBytes, c.u64Count, a.nonNullBytes,
                                a.u64Count, n.nonNullBytes, k.nonNullBytes
                            ) == 0 && written == UInt64(out.count)
                        }
                    }
                }
            }
        }
        guard let result else { throw .authenticationFailure }
        return result
    }
}
