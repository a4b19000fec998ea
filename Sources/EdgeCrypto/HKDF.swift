// EdgeCrypto/HKDF: HKDF-SHA256 (RFC 5869) and the Noise HKDF, built on libsodium's HMAC-SHA256.
import CSodium

/// HKDF with SHA-256: RFC 5869 extract/expand, and the Noise Protocol Framework's HKDF (§4.3).
///
/// libsodium 1.0.18 has no HKDF, so both are composed from libsodium's HMAC-SHA256 exactly as the specifications
/// define them; no hashing or MAC code is implemented here.
///
/// ### Invariants
/// - Every derived secret is returned as a ``SecretKey`` (guarded memory, zeroed on release).
/// - Intermediate values (the HMAC state, each `T(i)` block, the Noise `temp_key`) live in stack buffers that
///   are zeroed with `sodium_memzero` before returning.
public enum HKDF {
    /// SHA-256 output length, `HashLen` in RFC 5869 (32).
    public static let hashByteCount = 32

    /// The largest output RFC 5869 allows: 255 · HashLen = 8160 bytes.
    public static let maximumOutputByteCount = 255 * 32

    /// HKDF-Extract: `PRK = HMAC-SHA256(salt, IKM)`. An empty salt acts as 32 zero bytes, as RFC 5869 specifies
    /// (HMAC pads keys with zeros, so the two are identical).
    public static func extract(salt: [UInt8], ikm: some KeyMaterial) -> SecretKey {
        var prk = SecretBytes(zeroedCount: hashByteCount)
        prk.withUnsafeMutableBytes { extract(salt: salt, ikm: ikm, into: $0) }
        return SecretKey(prk)
    }

    /// HKDF-Expand: `length` bytes of `T(1) ‖ T(2) ‖ …` where `T(i) = HMAC-SHA256(PRK, T(i-1) ‖ info ‖ i)`.
    ///
    /// - Throws: ``CryptoError/invalidLength`` if `length` is negative or greater than
    ///   ``maximumOutputByteCount``.
    public static func expand(prk: some KeyMaterial, info: [UInt8], length: Int) throws(CryptoError) -> SecretKey {
        guard length >= 0, length <= maximumOutputByteCount else { throw .invalidLength }
        var okm = SecretBytes(zeroedCount: length)
        prk.withKeyBytes { prkBytes in
            okm.withUnsafeMutableBytes { expand(prk: prkBytes, info: info, into: $0) }
        }
        return SecretKey(okm)
    }

    /// HKDF (RFC 5869): `expand(extract(salt, ikm), info, length)`. The PRK never leaves a zeroed stack buffer.
    ///
    /// - Throws: ``CryptoError/invalidLength`` if `length` is negative or greater than
    ///   ``maximumOutputByteCount``.
    public static func deriveKey(
        salt: [UInt8], ikm: some KeyMaterial, info: [UInt8], length: Int
    ) throws(CryptoError) -> SecretKey {
        guard length >= 0, length <= maximumOutputByteCount else { throw .invalidLength }
        var okm = SecretBytes(zeroedCount: length)
        withTransientSecret(byteCount: hashByteCount) { prk in
            extract(salt: salt, ikm: ikm, into: prk)
            okm.withUnsafeMutableBytes { expand(prk: UnsafeRawBufferPointer(prk), info: info, into: $0) }
        }
        return SecretKey(okm)
    }

    /// The Noise Protocol Framework's `HKDF(chaining_key, input_key_material, num_outputs)` (§4.3):
    ///
    ///     temp_key = HMAC(chaining_key, input_key_material)
    ///     output1  = HMAC(temp_key, 0x01)
    ///     output2  = HMAC(temp_key, output1 ‖ 0x02)
    ///     output3  = HMAC(temp_key, output2 ‖ 0x03)
    ///
    /// `input_key_material` may be empty or any length (Noise uses 0, 32 or DHLEN bytes).
    ///
    /// - Parameter outputs: 2 or 3.
    /// - Returns: `outputs` keys of 32 bytes each.
    /// - Throws: ``CryptoError/invalidLength`` if `outputs` is not 2 or 3.
    public static func noise(
        chainingKey: some KeyMaterial, inputKeyMaterial: some KeyMaterial, outputs: Int
    ) throws(CryptoError) -> [SecretKey] {
        guard outputs == 2 || outputs == 3 else { throw .invalidLength }
        var results: [SecretKey] = []
        results.reserveCapacity(outputs)
        withTransientSecret(byteCount: hashByteCount) { tempKey in
            chainingKey.withKeyBytes { ck in
                inputKeyMaterial.withKeyBytes { ikm in
                    computeHMAC(key: ck, into: tempKey.baseAddress!) { $0.update(ikm) }
                }
            }
            let temp = UnsafeRawBufferPointer(tempKey)
            for index in 1...outputs {
                var output = SecretBytes(zeroedCount: hashByteCount)
                output.withUnsafeMutableBytes { out in
                    computeHMAC(key: temp, into: out.baseAddress!) { hmac in
                        if let previous = results.last {
                            previous.withUnsafeBytes { hmac.update($0) }
                        }
                        hmac.update(byte: UInt8(index))
                    }
                }
                results.append(SecretKey(output))
            }
        }
        return results
    }

    // MARK: Private

    /// HKDF-Extract into the 32-byte `out`.
    private static func extract(salt: [UInt8], ikm: some KeyMaterial, into out: UnsafeMutableRawBufferPointer) {
        salt.withUnsafeBytes { saltBytes in
            ikm.withKeyBytes { ikmBytes in
                computeHMAC(key: saltBytes, into: out.baseAddress!) { $0.update(ikmBytes) }
            }
        }
    }

    /// HKDF-Expand filling all of `out` (at most 8160 bytes).
    private static func expand(prk: UnsafeRawBufferPointer, info: [UInt8], into out: UnsafeMutableRawBufferPointer) {
        info.withUnsafeBytes { infoBytes in
            withTransientSecret(byteCount: hashByteCount) { block in
                var offset = 0
                var counter: UInt8 = 1
                while offset < out.count {
                    // T(i) = HMAC(PRK, T(i-1) ‖ info ‖ i): T(i-1) is read from `block` before the MAC overwrites
                    // it (libsodium writes the output only after absorbing all input).
                    computeHMAC(key: prk, into: block.baseAddress!) { hmac in
                        if counter > 1 { hmac.update(UnsafeRawBufferPointer(block)) }
                        hmac.update(infoBytes)
                        hmac.update(byte: counter)
                    }
                    let take = min(hashByteCount, out.count - offset)
                    (out.baseAddress! + offset).copyMemory(from: block.baseAddress!, byteCount: take)
                    offset += take
                    counter &+= 1
                }
            }
        }
    }
}
