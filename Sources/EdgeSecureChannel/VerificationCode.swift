// The short code both ends of a secure channel can show to detect a man in the middle (docs/pairing.md).
import EdgeCrypto

/// A 6-digit code derived from a channel's Noise handshake hash, for numeric comparison when pairing a device.
///
/// Both sides of an XX handshake end with the same handshake hash `h`, which binds both static keys and both
/// ephemeral keys; a man in the middle runs two handshakes with different hashes, so the two ends show different
/// codes (except with probability 10⁻⁶ per attempt).
///
/// Derivation (docs/pairing.md, "Verification code"):
/// `u32_be(SHA-256("ockam-edge pairing code v1" ‖ h)[0..<4]) mod 1 000 000`, shown as two groups of three digits
/// (`"042 917"`).
///
/// ### Invariants
/// - The raw handshake hash is never kept or logged through this type: only the reduced code is.
public struct VerificationCode: Hashable, Sendable, CustomStringConvertible {
    /// The domain-separation prefix hashed before the handshake hash.
    public static let context: [UInt8] = Array("ockam-edge pairing code v1".utf8)

    /// The code, `0..<1_000_000`.
    public let value: UInt32

    /// Derives the code from a handshake hash.
    public init(handshakeHash: [UInt8]) {
        let digest = SHA256.hash(Self.context + handshakeHash)
        let prefix = digest[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        value = prefix % 1_000_000
    }

    /// A code typed by a person: six digits, optionally with spaces (`"042917"`, `"042 917"`). Nil otherwise.
    public init?(parsing text: String) {
        let digits = text.filter { $0 != " " }
        guard digits.count == 6, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = UInt32(digits) else {
            return nil
        }
        self.value = value
    }

    /// The six digits without a separator (`"042917"`).
    public var digits: String {
        let text = String(value)
        return String(repeating: "0", count: 6 - text.count) + text
    }

    /// The display form: `"042 917"`.
    public var description: String {
        let d = digits
        return "\(d.prefix(3)) \(d.suffix(3))"
    }
}
