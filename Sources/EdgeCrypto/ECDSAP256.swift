// EdgeCrypto/ECDSAP256: ECDSA over NIST P-256 with SHA-256 (OpenSSL 3 EVP_PKEY; message digest from libsodium).
import COpenSSL
import CSodium

/// ECDSA over NIST P-256 with SHA-256 ("ES256"), from OpenSSL libcrypto 3.
///
/// Formats: 32-byte big-endian private scalar, 65-byte uncompressed SEC1 public key `04 ‖ X ‖ Y`, 64-byte raw
/// signature `r ‖ s` (IEEE P1363, as used by JOSE and Ockam). DER signatures (X9.62 `ECDSA-Sig-Value`) are
/// accepted by ``verify(derSignature:message:publicKey:)`` and converted by ``rawSignature(fromDER:)`` /
/// ``derSignature(fromRaw:)``.
///
/// Only non-deprecated OpenSSL 3.0 APIs are used (`EVP_PKEY_fromdata` with `OSSL_PARAM_BLD`, `EVP_PKEY_sign`,
/// `EVP_PKEY_verify`, `EC_POINT_mul` for public-key derivation); no `EC_KEY`.
///
/// ### Invariants
/// - The message is hashed with libsodium's SHA-256; OpenSSL signs/verifies the 32-byte digest.
/// - Private scalars must be in `1..<n`; they are loaded into secure, constant-time-flagged BIGNUMs that OpenSSL
///   clears when freed (`BN_clear_free`, `OSSL_PARAM_free` of the secure block, `EVP_PKEY_free`).
/// - Public keys must be exactly 65 bytes, start with `0x04`, and pass `EVP_PKEY_public_check_quick` (on the
///   curve, not the point at infinity). Compressed and hybrid encodings are rejected.
/// - Verification is strict: DER signatures must be the unique DER encoding (no BER, no trailing bytes, no
///   negative or oversized integers); `r` and `s` must be in `1..<n` (checked by OpenSSL). High-`s` signatures are
///   valid, as in X9.62 (no low-`s` rule).
/// - The per-signature nonce comes from OpenSSL's DRBG mixed with the private key and digest
///   (`ossl_bn_gen_dsa_nonce`); randomness for *keys* comes from libsodium.
/// - OpenSSL's thread-local error queue is cleared after failures, so nothing from one call leaks into another.
public enum ECDSAP256 {
    /// Private scalar length (32).
    public static let privateKeyByteCount = 32
    /// Uncompressed SEC1 public key length (65).
    public static let publicKeyByteCount = 65
    /// Raw `r ‖ s` signature length (64).
    public static let signatureByteCount = 64

    /// A new random private key: 32 bytes from `randombytes_buf`, redrawn until the scalar is in `1..<n`
    /// (a redraw happens with probability below 2⁻³²).
    public static func generatePrivateKey() -> SecretKey {
        while true {
            let candidate = SecretBytes(randomCount: privateKeyByteCount)
            let valid = candidate.withUnsafeBytes { bytes in
                P256.withGroup { group in
                    guard let scalar = P256.scalar(bytes, group: group) else { return false }
                    BN_clear_free(scalar)
                    return true
                } ?? false
            }
            if valid { return SecretKey(candidate) }
        }
    }

    /// The 65-byte uncompressed public key `04 ‖ X ‖ Y` for a 32-byte private scalar.
    ///
    /// - Throws: ``CryptoError/invalidKeySize`` if the key is not 32 bytes; ``CryptoError/invalidPrivateKey`` if
    ///   the scalar is 0 or ≥ n.
    public static func publicKey(privateKey: some KeyMaterial) throws(CryptoError) -> [UInt8] {
        guard privateKey.keyByteCount == privateKeyByteCount else { throw .invalidKeySize }
        defer { ERR_clear_error() }
        let result: Result<[UInt8], CryptoError> = privateKey.withKeyBytes { bytes in
            P256.withGroup { group in
                guard let scalar = P256.scalar(bytes, group: group) else { return .failure(.invalidPrivateKey) }
                defer { BN_clear_free(scalar) }
                guard let publicKey = P256.derivePublicKey(scalar: scalar, group: group) else {
                    return .failure(.internalFailure)
                }
                return .success(publicKey)
            } ?? .failure(.internalFailure)
        }
        return try result.get()
    }

    /// Whether `publicKey` is a 65-byte uncompressed encoding of a valid P-256 point.
    public static func isValidPublicKey(_ publicKey: [UInt8]) -> Bool {
        defer { ERR_clear_error() }
        guard let key = P256.publicKey(publicKey) else { return false }
        EVP_PKEY_free(key)
        return true
    }

    /// A 64-byte raw `r ‖ s` ECDSA signature of `SHA-256(message)`.
    ///
    /// - Throws: ``CryptoError/invalidKeySize`` if the key is not 32 bytes; ``CryptoError/invalidPrivateKey`` if
    ///   the scalar is 0 or ≥ n; ``CryptoError/internalFailure`` if OpenSSL fails.
    public static func sign(message: [UInt8], privateKey: some KeyMaterial) throws(CryptoError) -> [UInt8] {
        guard privateKey.keyByteCount == privateKeyByteCount else { throw .invalidKeySize }
        defer { ERR_clear_error() }
        let digest = SHA256.hash(message)
        let der: Result<[UInt8], CryptoError> = privateKey.withKeyBytes { bytes in
            P256.withGroup { group in
                guard let scalar = P256.scalar(bytes, group: group) else { return .failure(.invalidPrivateKey) }
                defer { BN_clear_free(scalar) }
                guard let publicKey = P256.derivePublicKey(scalar: scalar, group: group),
                      let key = P256.privateKey(scalar: scalar, publicKey: publicKey)
                else { return .failure(.internalFailure) }
                defer { EVP_PKEY_free(key) }
                guard let signature = P256.signDigest(digest, key: key) else { return .failure(.internalFailure) }
                return .success(signature)
            } ?? .failure(.internalFailure)
        }
        do {
            return try rawSignature(fromDER: try der.get())
        } catch .invalidSignatureEncoding {
            throw .internalFailure  // OpenSSL produced something we cannot parse: not the caller's fault
        }
    }

    /// Whether `signature` (64-byte raw `r ‖ s`) is a valid signature of `SHA-256(message)` under `publicKey`
    /// (65-byte uncompressed). Wrong lengths, invalid keys and out-of-range `r`/`s` return `false`.
    public static func verify(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == signatureByteCount, let der = try? derSignature(fromRaw: signature) else {
            return false
        }
        return verifyStrictDER(der, message: message, publicKey: publicKey)
    }

    /// Whether `derSignature` (DER `ECDSA-Sig-Value`) is a valid signature of `SHA-256(message)` under `publicKey`.
    /// Anything but the unique DER encoding (BER lengths, padding, trailing bytes, negative integers) returns
    /// `false`, as do invalid keys.
    public static func verify(derSignature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        // rawSignature(fromDER:) enforces strict DER; the original bytes are then handed to OpenSSL, which checks
        // strictness again (it re-encodes and compares) and checks 0 < r, s < n.
        guard (try? rawSignature(fromDER: derSignature)) != nil else { return false }
        return verifyStrictDER(derSignature, message: message, publicKey: publicKey)
    }

    /// Converts a DER `ECDSA-Sig-Value` to 64-byte raw `r ‖ s`.
    ///
    /// - Throws: ``CryptoError/invalidSignatureEncoding`` unless `der` is exactly the DER encoding of two
    ///   non-negative integers that each fit in 32 bytes.
    public static func rawSignature(fromDER der: [UInt8]) throws(CryptoError) -> [UInt8] {
        defer { ERR_clear_error() }
        let raw: [UInt8]? = der.withUnsafeBytes { input in
            guard input.count > 0 else { return nil }
            var cursor: UnsafePointer<UInt8>? = input.nonNullBytes
            guard let signature = d2i_ECDSA_SIG(nil, &cursor, input.count) else { return nil }
            defer { ECDSA_SIG_free(signature) }
            // No trailing bytes, and the input must be the unique DER encoding of what was parsed.
            guard cursor == input.nonNullBytes + input.count,
                  let reencoded = P256.encode(signature), reencoded == der,
                  let r = ECDSA_SIG_get0_r(signature), let s = ECDSA_SIG_get0_s(signature),
                  BN_is_negative(r) == 0, BN_is_negative(s) == 0
            else { return nil }
            return makeBytes(count: signatureByteCount) { out in
                BN_bn2binpad(r, out.nonNullBytes, 32) == 32 && BN_bn2binpad(s, out.nonNullBytes + 32, 32) == 32
            }
        }
        guard let raw else { throw .invalidSignatureEncoding }
        return raw
    }

    /// Converts a 64-byte raw `r ‖ s` signature to DER (`ECDSA-Sig-Value`).
    ///
    /// - Throws: ``CryptoError/invalidSignatureEncoding`` if `raw` is not 64 bytes.
    public static func derSignature(fromRaw raw: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard raw.count == signatureByteCount else { throw .invalidSignatureEncoding }
        defer { ERR_clear_error() }
        let der: [UInt8]? = raw.withUnsafeBytes { input in
            guard let signature = ECDSA_SIG_new() else { return nil }
            defer { ECDSA_SIG_free(signature) }
            guard let r = BN_bin2bn(input.nonNullBytes, 32, nil) else { return nil }
            guard let s = BN_bin2bn(input.nonNullBytes + 32, 32, nil) else {
                BN_free(r)
                return nil
            }
            guard ECDSA_SIG_set0(signature, r, s) == 1 else {  // takes ownership of r and s on success
                BN_free(r)
                BN_free(s)
                return nil
            }
            return P256.encode(signature)
        }
        guard let der else { throw .internalFailure }
        return der
    }

    // MARK: Private

    private static func verifyStrictDER(_ der: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        defer { ERR_clear_error() }
        guard let key = P256.publicKey(publicKey) else { return false }
        defer { EVP_PKEY_free(key) }
        let digest = SHA256.hash(message)
        guard let context = EVP_PKEY_CTX_new_from_pkey(nil, key, nil) else { return false }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_verify_init(context) == 1, EVP_PKEY_CTX_set_signature_md(context, EVP_sha256()) == 1 else {
            return false
        }
        return der.withUnsafeBytes { sig in
            digest.withUnsafeBytes { tbs in
                EVP_PKEY_verify(context, sig.nonNullBytes, sig.count, tbs.nonNullBytes, tbs.count) == 1
            }
        }
    }
}

/// OpenSSL plumbing for ``ECDSAP256``. Every returned OpenSSL object is owned by the caller.
private enum P256 {
    /// NUL-terminated strings that outlive every call: `OSSL_PARAM_BLD` and `EVP_PKEY_CTX_new_from_name` keep the
    /// pointers they are given, so Swift's temporary String-to-C-string bridges must not be used with them.
    nonisolated(unsafe) static let keyTypeName = permanentCString("EC")
    nonisolated(unsafe) static let curveName = permanentCString("prime256v1")  // SN_X9_62_prime256v1
    nonisolated(unsafe) static let groupParam = permanentCString(OSSL_PKEY_PARAM_GROUP_NAME)
    nonisolated(unsafe) static let publicKeyParam = permanentCString(OSSL_PKEY_PARAM_PUB_KEY)
    nonisolated(unsafe) static let privateKeyParam = permanentCString(OSSL_PKEY_PARAM_PRIV_KEY)

    /// `EVP_PKEY_PUBLIC_KEY` / `EVP_PKEY_KEYPAIR` (the macros are too complex for the Swift importer).
    static let publicKeySelection = OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS | OSSL_KEYMGMT_SELECT_OTHER_PARAMETERS
        | OSSL_KEYMGMT_SELECT_PUBLIC_KEY
    static let keyPairSelection = publicKeySelection | OSSL_KEYMGMT_SELECT_PRIVATE_KEY

    /// Runs `body` with a fresh P-256 group (freed afterwards); `nil` if OpenSSL cannot create one.
    static func withGroup<R>(_ body: (OpaquePointer) -> R) -> R? {
        guard let group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1) else { return nil }
        defer { EC_GROUP_free(group) }
        return body(group)
    }

    /// The private scalar as a secure, constant-time-flagged BIGNUM (free with `BN_clear_free`), or `nil` unless
    /// `bytes` is 32 bytes encoding a value in `1..<n`. The range check's `BN_cmp` can only exit early at the first
    /// differing limb; n's top limb is `0xFFFFFFFF00000000`, so in practice it stops at the first limb.
    static func scalar(_ bytes: UnsafeRawBufferPointer, group: OpaquePointer) -> OpaquePointer? {
        guard bytes.count == ECDSAP256.privateKeyByteCount, let scalar = BN_secure_new() else { return nil }
        BN_set_flags(scalar, BN_FLG_CONSTTIME)
        guard BN_bin2bn(bytes.nonNullBytes, Int32(bytes.count), scalar) != nil,
              BN_is_zero(scalar) == 0,
              let order = EC_GROUP_get0_order(group), BN_cmp(scalar, order) < 0
        else {
            BN_clear_free(scalar)
            return nil
        }
        return scalar
    }

    /// `scalar · G` as a 65-byte uncompressed point.
    static func derivePublicKey(scalar: OpaquePointer, group: OpaquePointer) -> [UInt8]? {
        guard let point = EC_POINT_new(group) else { return nil }
        defer { EC_POINT_clear_free(point) }
        guard let context = BN_CTX_secure_new() else { return nil }
        defer { BN_CTX_free(context) }
        guard EC_POINT_mul(group, point, scalar, nil, nil, context) == 1 else { return nil }
        return makeBytes(count: ECDSAP256.publicKeyByteCount) { out in
            EC_POINT_point2oct(
                group, point, POINT_CONVERSION_UNCOMPRESSED, out.nonNullBytes, out.count, context
            ) == ECDSAP256.publicKeyByteCount
        }
    }

    /// An `EVP_PKEY` key pair for `scalar` and its public key.
    static func privateKey(scalar: OpaquePointer, publicKey: [UInt8]) -> OpaquePointer? {
        publicKey.withUnsafeBytes { pub in
            guard let builder = OSSL_PARAM_BLD_new() else { return nil }
            defer { OSSL_PARAM_BLD_free(builder) }
            guard OSSL_PARAM_BLD_push_utf8_string(builder, groupParam, curveName, 0) == 1,
                  OSSL_PARAM_BLD_push_octet_string(builder, publicKeyParam, pub.baseAddress, pub.count) == 1,
                  OSSL_PARAM_BLD_push_BN(builder, privateKeyParam, scalar) == 1,  // secure BN → secure block
                  let params = OSSL_PARAM_BLD_to_param(builder)
            else { return nil }
            defer { OSSL_PARAM_free(params) }  // clears the secure block holding the scalar
            return fromData(params, selection: keyPairSelection)
        }
    }

    /// An `EVP_PKEY` public key, or `nil` unless `bytes` is a 65-byte uncompressed encoding of a valid point.
    static func publicKey(_ bytes: [UInt8]) -> OpaquePointer? {
        guard bytes.count == ECDSAP256.publicKeyByteCount, bytes[0] == 0x04 else { return nil }
        let key: OpaquePointer? = bytes.withUnsafeBytes { pub in
            guard let builder = OSSL_PARAM_BLD_new() else { return nil }
            defer { OSSL_PARAM_BLD_free(builder) }
            guard OSSL_PARAM_BLD_push_utf8_string(builder, groupParam, curveName, 0) == 1,
                  OSSL_PARAM_BLD_push_octet_string(builder, publicKeyParam, pub.baseAddress, pub.count) == 1,
                  let params = OSSL_PARAM_BLD_to_param(builder)
            else { return nil }
            defer { OSSL_PARAM_free(params) }
            return fromData(params, selection: publicKeySelection)
        }
        guard let key else { return nil }
        guard let context = EVP_PKEY_CTX_new_from_pkey(nil, key, nil) else {
            EVP_PKEY_free(key)
            return nil
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_public_check_quick(context) == 1 else {
            EVP_PKEY_free(key)
            return nil
        }
        return key
    }

    static func fromData(_ params: UnsafeMutablePointer<OSSL_PARAM>, selection: Int32) -> OpaquePointer? {
        guard let context = EVP_PKEY_CTX_new_from_name(nil, keyTypeName, nil) else { return nil }
        defer { EVP_PKEY_CTX_free(context) }
        var key: OpaquePointer?
        guard EVP_PKEY_fromdata_init(context) == 1, EVP_PKEY_fromdata(context, &key, selection, params) == 1 else {
            return nil
        }
        return key
    }

    /// A DER signature of a 32-byte SHA-256 digest.
    static func signDigest(_ digest: [UInt8], key: OpaquePointer) -> [UInt8]? {
        guard let context = EVP_PKEY_CTX_new_from_pkey(nil, key, nil) else { return nil }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_sign_init(context) == 1, EVP_PKEY_CTX_set_signature_md(context, EVP_sha256()) == 1 else {
            return nil
        }
        return digest.withUnsafeBytes { tbs in
            withUnsafeTemporaryAllocation(byteCount: 72, alignment: 1) { buffer in  // ECDSA_size for P-256
                var length = buffer.count
                let out = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
                guard EVP_PKEY_sign(context, out, &length, tbs.nonNullBytes, tbs.count) == 1 else { return nil }
                return [UInt8](UnsafeRawBufferPointer(start: out, count: length))
            }
        }
    }

    /// The DER encoding of `signature`.
    static func encode(_ signature: OpaquePointer) -> [UInt8]? {
        let length = Int(i2d_ECDSA_SIG(signature, nil))
        guard length > 0 else { return nil }
        return makeBytes(count: length) { out in
            var cursor: UnsafeMutablePointer<UInt8>? = out.nonNullBytes
            return Int(i2d_ECDSA_SIG(signature, &cursor)) == length
        }
    }
}

/// A NUL-terminated copy of `string` that is never freed.
private func permanentCString(_ string: String) -> UnsafePointer<CChar> {
    let utf8 = string.utf8CString
    let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count)
    utf8.withUnsafeBufferPointer { pointer.initialize(from: $0.baseAddress!, count: $0.count) }
    return UnsafePointer(pointer)
}
