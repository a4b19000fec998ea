// EdgeNoiseTests/NoiseTestSupport: JSON access for the vector files and small key helpers.
import EdgeCrypto
import EdgeNoise
import EdgeTestSupport
import Testing

/// A JSON object from `TestData.vectorJSON`, with accessors that record an issue (and return a neutral value)
/// when a field is missing or has the wrong type.
struct JSONObject {
    let fields: [String: Any]

    init(_ value: Any?, _ context: String) throws {
        guard let fields = value as? [String: Any] else { throw TestDataError("\(context): not a JSON object") }
        self.fields = fields
    }

    func has(_ key: String) -> Bool { fields[key] != nil }

    func string(_ key: String) throws -> String {
        guard let value = fields[key] as? String else { throw TestDataError("missing string field \(key)") }
        return value
    }

    func bytes(_ key: String) throws -> [UInt8] { [UInt8](hex: try string(key)) }

    func optionalBytes(_ key: String) throws -> [UInt8]? { has(key) ? try bytes(key) : nil }

    func object(_ key: String) throws -> JSONObject { try JSONObject(fields[key], key) }

    func objects(_ key: String) throws -> [JSONObject] {
        guard let array = fields[key] as? [Any] else { throw TestDataError("missing array field \(key)") }
        return try array.enumerated().map { try JSONObject($0.element, "\(key)[\($0.offset)]") }
    }

    func strings(_ key: String) throws -> [String] {
        guard let array = fields[key] as? [String] else { throw TestDataError("missing string array \(key)") }
        return array
    }
}

/// A `SecretKey` holding `bytes`.
func secret(_ bytes: [UInt8]) -> SecretKey { SecretKey(copying: bytes) }

/// `count` deterministic bytes from a seeded generator.
func seededBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
}

/// The Noise AES-GCM nonce `00000000 ‖ n` (big-endian), built here independently of EdgeNoise.
func aesNonce(_ n: UInt64) -> [UInt8] {
    [0, 0, 0, 0] + (0..<8).map { UInt8(truncatingIfNeeded: n >> (56 - 8 * UInt64($0))) }
}

/// Noise `REKEY` for AES-GCM computed directly with EdgeCrypto: the first 32 bytes of
/// `AES-256-GCM(k, 00000000 ffffffffffffffff, AD = empty, 32 zero bytes)`.
func independentRekey(_ key: [UInt8]) throws -> [UInt8] {
    let output = try AES256GCM.seal(
        key: key, nonce: [0, 0, 0, 0] + [UInt8](repeating: 0xff, count: 8), aad: [],
        plaintext: [UInt8](repeating: 0, count: 32)
    )
    return Array(output[..<32])
}

/// Runs `body` and returns the `NoiseError` it throws, or records an issue if it does not throw.
@discardableResult
func noiseError(
    _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) -> NoiseError? {
    do {
        try body()
        Issue.record("expected a NoiseError\(comment.map { ": \($0)" } ?? "")", sourceLocation: sourceLocation)
        return nil
    } catch let error as NoiseError {
        return error
    } catch {
        Issue.record("expected a NoiseError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

extension NoiseError {
    /// Whether this is ``NoiseError/wrongState(_:)`` (with any reason).
    var isWrongState: Bool {
        if case .wrongState = self { return true }
        return false
    }

    /// Whether this is ``NoiseError/invalidMessage(_:)`` (with any reason).
    var isInvalidMessage: Bool {
        if case .invalidMessage = self { return true }
        return false
    }
}
