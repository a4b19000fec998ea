// EdgeCrypto/Curve25519: X25519 key agreement and Ed25519 signatures (libsodium).
import CSodium

/// X25519 Diffie-Hellman (RFC 7748) from libsodium (`crypto_scalarmult`).
///
/// ### Invariants
/// - Private keys and shared secrets are returned as ``SecretKey``s; scalar clamping is done by libsodium.
/// - A shared secret that is all zeros (the peer sent a low-order point) is never returned:
///   ``sharedSecret(privateKey:publicKey:)`` throws ``CryptoError/weakPublicKey`` and the output is zeroed.
/// - Public keys are 32-byte u-coordinates; as RFC 7748 requires, the top bit is ignored and non-canonical values
///   (u ≥ 2^255 − 19) are accepted and reduced.
public enum X25519 {
    /// Length of private keys, public keys and shared secrets (32).
    public static let keyByteCount = 32

    /// A new random private key (32 bytes from `randombytes_buf`).
    public static func generatePrivateKey() -> SecretKey {
        SecretKey(randomCount: keyByteCount)
    }

    /// The public key (`crypto_scalarmult_base`) for a 32-byte private key.
    ///
    /// - Throws: ``CryptoError/invalidKeySize`` if `privateKey` is not 32 bytes.
    public static func publicKey(privateKey: some KeyMaterial) throws(CryptoError) -> [UInt8] {
        guard privateKey.keyByteCount == keyByteCount else { throw .invalidKeySize }
        Sodium.ensureInitialized()
        let result = privateKey.withKeyBytes { scalar in
            makeBytes(count: keyByteCount) { out in
                crypto_scalarmult_base(out.nonNullBytes, scalar.nonNullBytes) == 0
            }
        }
        guard let result else { throw .internalFailure }
        return result
    }

    /// The shared secret `X25519(privateKey, publicKey)`.
    ///
    /// - Throws: ``CryptoError/invalidKeySize`` if either key is not 32 bytes; ``CryptoError/weakPublicKey`` if
    ///   the result is all zeros (`publicKey` is a low-order point).
    public static func sharedSecret(privateKey: some KeyMaterial, publicKey: [UInt8]) throws(CryptoError) -> SecretKey {
        guard privateKey.keyByteCount == keyByteCount, publicKey.count == keyByteCount else {
            throw .invalidKeySize
        }
        Sodium.ensureInitialized()
        var shared = SecretBytes(zeroedCount: keyByteCount)
        let status = privateKey.withKeyBytes { scalar in
            publicKey.withUnsafeBytes { point in
                shared.withUnsafeMutableBytes { out in
                    // libsodium 1.0.18 returns -1 when the result is all zeros; the explicit constant-time
                    // sodium_is_zero check keeps that guarantee independent of the libsodium build.
                    let status = crypto_scalarmult(out.nonNullBytes, scalar.nonNullBytes, point.nonNullBytes)
                    return status == 0 && sodium_is_zero(out.nonNullBytes, out.count) == 0 ? 0 : -1
                }
            }
        }
        guard status == 0 else { throw .weakPublicKey }  // `shared` is zeroed by sodium_free
        return SecretKey(shared)
    }
}

/// Ed25519 signatures (RFC 8032) from libsodium (`crypto_sign_*`).
///
/// Keys: a 32-byte seed (the RFC 8032 private key), a 32-byte public key, and libsodium's 64-byte secret key
/// (`seed ‖ publicKey`).
///
/// ### Invariants
/// - Seeds and secret keys handed to callers live in guarded memory (``SecretKey``); the expanded key derived
///   inside ``publicKey(seed:)`` and the `sign` functions lives in a stack buffer zeroed before returning.
/// - ``sign(message:secretKey:)`` checks that the public half of a 64-byte secret key matches its seed before
///   signing: libsodium 1.0.18 trusts that half, and signing with a mismatched one leaks the private scalar.
/// - ``verify(signature:message:publicKey:)`` is libsodium 1.0.18's `crypto_sign_verify_detached`: it rejects
///   `S ≥ L` (malleable signatures), small-order `R`, and non-canonical or small-order public keys, and checks
///   the unbatched equation `[S]B = R + [k]A` by comparing encodings, so non-canonical `R` encodings fail.
///   This matches every Wycheproof Ed25519 vector (the file has no "acceptable" results).
public enum Ed25519 {
    /// Seed length (32).
    public static let seedByteCount = 32
    /// libsodium secret-key length, `seed ‖ publicKey` (64).
    public static let secretKeyByteCount = 64
    /// Public key length (32).
    public static let publicKeyByteCount = 32
    /// Signature length (64).
    public static let signatureByteCount = 64

    /// A new random 32-byte seed (`randombytes_buf`).
    public static func generateSeed() -> SecretKey {
        SecretKey(randomCount: seedByteCount)
    }

    /// The key pair for a 32-byte seed (`crypto_sign_seed_keypair`).
    ///
    /// - Returns: the 32-byte public key and libsodium's 64-byte secret key (`seed ‖ publicKey`).
    /// - Throws: ``CryptoError/invalidKeySize`` if `seed` is not 32 bytes.
    public static func keyPair(
        seed: some KeyMaterial
    ) throws(CryptoError) -> (publicKey: [UInt8], secretKey: SecretKey) {
        guard seed.keyByteCount == seedByteCount else { throw .invalidKeySize }
        var secretKey = SecretBytes(zeroedCount: secretKeyByteCount)
        let status = seed.withKeyBytes { bytes in
            secretKey.withUnsafeMutableBytes { seedKeyPair(seed: bytes, into: $0) }
        }
        guard status == 0 else { throw .internalFailure }
        let publicKey = secretKey.withUnsafeBytes { [UInt8]($0[seedByteCount...]) }
        return (publicKey, SecretKey(secretKey))
    }

    /// The 32-byte public key for a 32-byte seed.
    ///
    /// - Throws: ``CryptoError/invalidKeySize`` if `seed` is not 32 bytes.
    public static func publicKey(seed: some KeyMaterial) throws(CryptoError) -> [UInt8] {
        guard seed.keyByteCount == seedByteCount else { throw .invalidKeySize }
        let publicKey: [UInt8]? = seed.withKeyBytes { bytes in
            withTransientSecret(byteCount: secretKeyByteCount) { secretKey in
                guard seedKeyPair(seed: bytes, into: secretKey) == 0 else { return nil }
                return [UInt8](UnsafeRawBufferPointer(rebasing: secretKey[seedByteCount...]))
            }
        }
        guard let publicKey else { throw .internalFailure }
        return publicKey
    }

    /// A 64-byte signature of `message` with the key pair derived from a 32-byte seed.
    ///
    /// - Throws: ``CryptoError/invalidKeySize`` if `seed` is not 32 bytes.
    public static func sign(message: [UInt8], seed: some KeyMaterial) throws(CryptoError) -> [UInt8] {
        guard seed.keyByteCount == seedByteCount else { throw .invalidKeySize }
        let signature: [UInt8]? = seed.withKeyBytes { bytes in
            withTransientSecret(byteCount: secretKeyByteCount) { secretKey in
                guard seedKeyPair(seed: bytes, into: secretKey) == 0 else { return nil }
                return detachedSignature(message: message, secretKey: UnsafeRawBufferPointer(secretKey))
            }
        }
        guard let signature else { throw .internalFailure }
        return signature
    }

    /// A 64-byte signature of `message` with libsodium's 64-byte secret key (`seed ‖ publicKey`).
    ///
    /// - Throws: ``CryptoError/invalidKeySize`` if `secretKey` is not 64 bytes; ``CryptoError/invalidPrivateKey``
    ///   if its public half does not belong to its seed.
    public static func sign(message: [UInt8], secretKey: some KeyMaterial) throws(CryptoError) -> [UInt8] {
        guard secretKey.keyByteCount == secretKeyByteCount else { throw .invalidKeySize }
        let result: Result<[UInt8], CryptoError> = secretKey.withKeyBytes { given in
            withTransientSecret(byteCount: secretKeyByteCount) { derived in
                let seed = UnsafeRawBufferPointer(rebasing: given[..<seedByteCount])
                guard seedKeyPair(seed: seed, into: derived) == 0 else { return .failure(.internalFailure) }
                guard ConstantTime.equals(UnsafeRawBufferPointer(derived), given) else {
                    return .failure(.invalidPrivateKey)
                }
                guard let signature = detachedSignature(message: message, secretKey: UnsafeRawBufferPointer(derived))
                else { return .failure(.internalFailure) }
                return .success(signature)
            }
        }
        return try result.get()
    }

    /// Whether `signature` is a valid Ed25519 signature of `message` under `publicKey`
    /// (`crypto_sign_verify_detached`). Wrong lengths return `false`.
    public static func verify(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == signatureByteCount, publicKey.count == publicKeyByteCount else { return false }
        Sodium.ensureInitialized()
        return signature.withUnsafeBytes { sig in
            message.withUnsafeBytes { msg in
                publicKey.withUnsafeBytes { pk in
                    crypto_sign_verify_detached(sig.nonNullBytes, msg.nonNullBytes, msg.u64Count, pk.nonNullBytes) == 0
                }
            }
        }
    }

    // MARK: Private

    /// `crypto_sign_seed_keypair` into the 64-byte `secretKey` (whose second half is the public key).
    private static func seedKeyPair(
        seed: UnsafeRawBufferPointer, into secretKey: UnsafeMutableRawBufferPointer
    ) -> Int32 {
        precondition(seed.count == seedByteCount && secretKey.count == secretKeyByteCount)
        Sodium.ensureInitialized()
        return withUnsafeTemporaryAllocation(byteCount: publicKeyByteCount, alignment: 1) { pk in
            crypto_sign_seed_keypair(pk.nonNullBytes, secretKey.nonNullBytes, seed.nonNullBytes)
        }
    }

    /// `crypto_sign_detached` with libsodium's 64-byte secret key.
    private static func detachedSignature(message: [UInt8], secretKey: UnsafeRawBufferPointer) -> [UInt8]? {
        message.withUnsafeBytes { msg in
            makeBytes(count: signatureByteCount) { sig in
                crypto_sign_detached(sig.nonNullBytes, nil, msg.nonNullBytes, msg.u64Count, secretKey.nonNullBytes) == 0
            }
        }
    }
}
