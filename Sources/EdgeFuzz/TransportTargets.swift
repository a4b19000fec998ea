// Fuzz target for encrypted secure-channel messages (spec §5.5–§5.7): OckamDecryptor's nonce window and rekeying,
// checked against an independent reference (OpenSSL AES-GCM, Noise REKEY) and an executable model of the window.
import EdgeCrypto
import EdgeNoise

extension FuzzTargets {
    /// `input[0] % 3` selects the mode; the rest is the body.
    /// - 0: the body is one message to a fresh decryptor.
    /// - 1: the body is a sequence of messages, each `length byte ‖ bytes`, fed to one decryptor.
    /// - 2: the body is a script driving a genuine ``OckamEncryptor`` with the same key and a network between
    ///   them: send (fuzzer plaintext), skip (encrypt and drop 0–255 messages, crossing rekeys), deliver any
    ///   earlier message again (reorder, replay), deliver a tampered or truncated copy; at the end every message
    ///   still in the network is delivered once more.
    ///
    /// In every mode, for every message handed to the decryptor:
    /// - it is accepted **iff** it is genuine (the reference AES-256-GCM of the fixed key schedule, on the
    ///   OpenSSL backend, opens it) **and** the window model accepts its nonce (≤ 32 ahead of the highest
    ///   accepted, or ≤ 32 behind and never accepted, within the previous/current/next key interval) — so a
    ///   forged accept, a replay accept, and a genuine in-window message being refused are all violations;
    /// - an accepted message returns its own nonce and the plaintext it was sealed with;
    /// - a rejected message changes nothing (the model does not move, and `highestNonce` must equal the model's).
    static func encryptedMessage(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        guard let mode = input.first else { return }
        let body = Array(input.dropFirst())
        var harness = DecryptorHarness()
        switch mode % 3 {
        case 0:
            try harness.deliver(body, sealedWith: nil)
            try harness.deliver(body, sealedWith: nil)  // the same bytes again: never accepted twice
        case 1:
            var index = 0
            while index < body.count {
                let length = Int(body[index])
                index += 1
                let end = min(body.count, index + length)
                try harness.deliver(Array(body[index..<end]), sealedWith: nil)
                index = end
            }
        default:
            try runScript(body, harness: &harness)
        }
    }

    private static func runScript(_ script: [UInt8], harness: inout DecryptorHarness) throws(FuzzInvariantViolation) {
        var encryptor: OckamEncryptor
        do { encryptor = try OckamEncryptor(key: FuzzFixtures.transportKey) } catch {
            throw FuzzInvariantViolation(description: "encryptor fixture: \(error)")
        }
        var network: [(message: [UInt8], plaintext: [UInt8])] = []
        var budget = 1024  // encryptions per run: keeps runs cheap and nonces inside the reference key table
        var index = 0
        func next() -> Int {  // 0 past the end, without moving past it
            guard index < script.count else { return 0 }
            defer { index += 1 }
            return Int(script[index])
        }
        func send(_ plaintext: [UInt8], checked: Bool) throws(FuzzInvariantViolation) {
            guard budget > 0 else { return }
            budget -= 1
            let nonce = encryptor.nextNonce
            let message: [UInt8]
            do { message = try encryptor.encrypt(plaintext) } catch {
                throw FuzzInvariantViolation(description: "encryptor failed at nonce \(nonce): \(error)")
            }
            try check(encryptor.nextNonce == nonce + 1, "encryptor nonce did not advance by one")
            if checked {  // differential check against OpenSSL (skipped messages are checked if delivered)
                try check(
                    message == ReferenceTransport.seal(nonce: nonce, plaintext: plaintext),
                    "encryptor disagrees with the reference at nonce \(nonce)")
            }
            network.append((message, plaintext))
        }
        func pick(_ selector: Int) -> (message: [UInt8], plaintext: [UInt8])? {
            network.isEmpty ? nil : network[network.count - 1 - selector % network.count]
        }

        while index < script.count {
            switch next() % 4 {
            case 0:
                let length = min(next() % 48, script.count - index)
                let plaintext = Array(script[index..<index + length])
                index += length
                try send(plaintext, checked: true)
            case 1:
                for _ in 0..<next() { try send([], checked: false) }
            case 2:
                if let entry = pick(next()) { try harness.deliver(entry.message, sealedWith: entry.plaintext) }
            default:
                guard let entry = pick(next()) else { continue }
                let position = next()
                let mask = UInt8(next())
                var tampered = entry.message
                if mask == 0 {
                    tampered.removeLast(tampered.count - position % tampered.count)  // truncate (possibly to 0 bytes)
                } else {
                    tampered[position % tampered.count] ^= mask
                }
                try harness.deliver(tampered, sealedWith: nil)
            }
        }
        // Flush: everything sent is delivered once more, newest first (replays, reordering, stale intervals).
        for entry in network.suffix(96).reversed() { try harness.deliver(entry.message, sealedWith: entry.plaintext) }
    }
}

/// An ``OckamDecryptor`` under test plus the model it must agree with.
struct DecryptorHarness {
    var decryptor: OckamDecryptor
    var model = WindowModel()

    init() {
        do { decryptor = try OckamDecryptor(key: FuzzFixtures.transportKey) } catch {
            fatalError("EdgeFuzz: decryptor fixture: \(error)")
        }
    }

    /// Hands `message` to the decryptor and checks the outcome against the reference and the model.
    /// `sealedWith` is the plaintext when the caller knows the message is genuine (script mode).
    mutating func deliver(_ message: [UInt8], sealedWith knownPlaintext: [UInt8]?) throws(FuzzInvariantViolation) {
        let nonce = message.count >= 8 ? message[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } : nil
        let referencePlaintext = nonce.flatMap { ReferenceTransport.open(nonce: $0, message: message) }
        if let knownPlaintext {
            try FuzzTargets.check(referencePlaintext == knownPlaintext, "reference cannot open a genuine message")
        }
        let shouldAccept = referencePlaintext != nil && model.accepts(nonce!)
        let before = decryptor.highestNonce
        var accepted: (nonce: UInt64, plaintext: [UInt8])?
        var failure: NoiseError?
        do throws(NoiseError) {
            accepted = try decryptor.decrypt(message)
        } catch {
            failure = error
        }
        if let (acceptedNonce, plaintext) = accepted {
            guard let nonce, let referencePlaintext else {
                throw FuzzInvariantViolation(description: "accepted a forged message (\(message.count) bytes)")
            }
            try FuzzTargets.check(
                shouldAccept,
                model.seen(nonce) ? "accepted a replay of nonce \(nonce)" : "accepted nonce \(nonce) outside the window (\(model))")
            try FuzzTargets.check(acceptedNonce == nonce, "decrypt returned nonce \(acceptedNonce) for \(nonce)")
            try FuzzTargets.check(plaintext == referencePlaintext, "decrypt returned another plaintext")
            model.commit(nonce)
        } else {
            try FuzzTargets.check(
                !shouldAccept, "refused genuine in-window nonce \(nonce ?? 0) (\(model)): \(failure.map { "\($0)" } ?? "")")
            try FuzzTargets.check(decryptor.highestNonce == before, "a rejected message moved the window")
        }
        try FuzzTargets.check(decryptor.highestNonce == model.highest, "highest nonce \(decryptor.highestNonce) ≠ model \(model.highest)")
    }
}

/// The acceptance rule of spec §5.6–§5.7, written out directly (Ockam `nonce_tracker.rs`, `key_tracker.rs`).
struct WindowModel: CustomStringConvertible {
    static let interval: UInt64 = 32
    private(set) var highest: UInt64 = 0
    private(set) var accepted: Set<UInt64> = []
    /// The interval `⌊n/32⌋` of the current key; it moves when a message of the next interval is accepted.
    private(set) var currentInterval: UInt64 = 0

    func seen(_ nonce: UInt64) -> Bool { accepted.contains(nonce) }

    func accepts(_ nonce: UInt64) -> Bool {
        if nonce == .max { return false }
        if nonce > highest {
            if nonce - highest > Self.interval { return false }
        } else if highest - nonce > Self.interval || accepted.contains(nonce) {
            return false
        }
        let interval = nonce / Self.interval
        return interval == currentInterval || interval == currentInterval + 1
            || (currentInterval >= 1 && interval == currentInterval - 1)
    }

    mutating func commit(_ nonce: UInt64) {
        accepted.insert(nonce)
        highest = max(highest, nonce)
        if nonce / Self.interval == currentInterval + 1 { currentInterval += 1 }
    }

    var description: String { "highest \(highest), interval \(currentInterval)" }
}

/// An independent implementation of the transport encryption for the fixed key: key `k_i` for interval `i` with
/// `k_{i+1} = REKEY(k_i)` (first 32 bytes of AES-256-GCM(k_i, nonce 00000000 ffffffffffffffff, 32 zero bytes)),
/// message = `n (8 bytes BE) ‖ AES-256-GCM(k_⌊n/32⌋, 00000000 ‖ n BE, AD = empty, plaintext)`, on the OpenSSL backend.
enum ReferenceTransport {
    /// Keys for intervals 0 … 63 (nonces below 2048; script mode stays below 1024 + 32).
    static let keys: [SecretKey] = {
        var keys = [FuzzFixtures.transportKey]
        let rekeyNonce: [UInt8] = [0, 0, 0, 0] + [UInt8](repeating: 0xff, count: 8)
        while keys.count < 64 {
            guard
                let next = try? AES256GCM.seal(
                    key: keys[keys.count - 1], nonce: rekeyNonce, plaintext: [UInt8](repeating: 0, count: 32),
                    backend: .openssl)
            else { fatalError("EdgeFuzz: reference REKEY failed") }
            keys.append(SecretKey(copying: Array(next.prefix(32))))
        }
        return keys
    }()

    static func gcmNonce(_ n: UInt64) -> [UInt8] {
        [0, 0, 0, 0] + (0..<8).map { UInt8(truncatingIfNeeded: n >> (56 - 8 * UInt64($0))) }
    }

    static func key(for nonce: UInt64) -> SecretKey? {
        let interval = nonce / WindowModel.interval
        return interval < UInt64(keys.count) ? keys[Int(interval)] : nil
    }

    static func seal(nonce: UInt64, plaintext: [UInt8]) -> [UInt8]? {
        guard let key = key(for: nonce),
            let sealed = try? AES256GCM.seal(key: key, nonce: gcmNonce(nonce), plaintext: plaintext, backend: .openssl)
        else { return nil }
        return Array(gcmNonce(nonce).suffix(8)) + sealed
    }

    /// The plaintext if `message` is a genuine message for its nonce, else nil (nonces beyond the table are never
    /// genuine here: nothing in the fuzz targets encrypts that far).
    static func open(nonce: UInt64, message: [UInt8]) -> [UInt8]? {
        guard message.count >= 8 + 16, let key = key(for: nonce) else { return nil }
        return try? AES256GCM.open(key: key, nonce: gcmNonce(nonce), ciphertext: Array(message[8...]), backend: .openssl)
    }
}
