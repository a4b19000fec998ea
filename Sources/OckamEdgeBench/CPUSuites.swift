// CPU-only suites on one thread: the AEAD limit, the channel's crypto path without I/O, full handshakes and the
// primitive bound of a handshake (its X25519/Ed25519/AEAD/hash operations timed alone, straight from libsodium).
import CSodium
import EdgeCrypto
import EdgeIdentity
import EdgeNoise
import EdgeRouting
import EdgeSecureChannel
import EdgeWire

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` in batches until `seconds` have passed (or exactly `count` times when `count > 0`);
/// returns (iterations, elapsed nanoseconds).
@inline(__always)
func timedLoop(seconds: Double, count: Int = 0, batch: Int = 1, _ body: () throws -> Void) rethrows -> (Int, UInt64) {
    let start = monotonicNanos()
    var iterations = 0
    if count > 0 {
        for _ in 0..<count { try body() }
        return (count, monotonicNanos() - start)
    }
    let budget = UInt64(seconds * 1e9)
    while true {
        for _ in 0..<batch { try body() }
        iterations += batch
        let elapsed = monotonicNanos() - start
        if elapsed >= budget { return (iterations, elapsed) }
    }
}

/// A preallocated byte buffer for C calls (no Swift array traffic inside timed loops).
final class RawBuffer {
    let pointer: UnsafeMutablePointer<UInt8>
    let count: Int
    init(count: Int, fill: UInt8 = 0) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: fill, count: max(count, 1))
        let filler = fillerBytes(count: count)
        for index in 0..<count { pointer[index] = filler[index] }
    }
    deinit { pointer.deallocate() }
}

enum CPUSuites {
    // MARK: AEAD limit

    /// `aead --size N`: libsodium AES-256-GCM seal then open of the same N bytes, one thread, C API and preallocated
    /// buffers (the limit of suite 1/2); also ChaCha20-Poly1305 and the EdgeCrypto Swift wrappers for context.
    static func aead(_ arguments: Arguments) throws {
        let seconds = try arguments.double("seconds", default: 1)
        let sizes = try arguments.ints("sizes", default: [try arguments.int("size", default: 16384)])
        guard sodium_init() >= 0 else { throw BenchFailure("sodium_init failed") }
        let hardware = crypto_aead_aes256gcm_is_available() == 1
        let key = RawBuffer(count: 32)
        let nonce = RawBuffer(count: 12)
        for size in sizes {
            let message = RawBuffer(count: size)
            let sealed = RawBuffer(count: size + 16)
            let opened = RawBuffer(count: size)
            var failures = 0
            if hardware {
                let (n, ns) = timedLoop(seconds: seconds, batch: max(1, 65536 / max(size, 1))) {
                    var length: UInt64 = 0
                    crypto_aead_aes256gcm_encrypt(
                        sealed.pointer, &length, message.pointer, UInt64(size), nil, 0, nil, nonce.pointer, key.pointer)
                    if crypto_aead_aes256gcm_decrypt(
                        opened.pointer, &length, nil, sealed.pointer, UInt64(size + 16), nil, 0, nonce.pointer,
                        key.pointer) != 0
                    {
                        failures += 1
                    }
                }
                emitRate("aead-limit", system: "libsodium-aes256gcm", size: size, iterations: n, nanos: ns, extra: [
                    ("failures", .int(Int64(failures))),
                ])
            } else {
                emit([("suite", .string("aead-limit")), ("system", .string("libsodium-aes256gcm")), ("size", .int(Int64(size))),
                      ("skipped", .string("libsodium AES-256-GCM needs AES-NI and CLMUL"))])
            }
            let (n2, ns2) = timedLoop(seconds: seconds, batch: max(1, 65536 / max(size, 1))) {
                var length: UInt64 = 0
                crypto_aead_chacha20poly1305_ietf_encrypt(
                    sealed.pointer, &length, message.pointer, UInt64(size), nil, 0, nil, nonce.pointer, key.pointer)
                _ = crypto_aead_chacha20poly1305_ietf_decrypt(
                    opened.pointer, &length, nil, sealed.pointer, UInt64(size + 16), nil, 0, nonce.pointer, key.pointer)
            }
            emitRate("aead-limit", system: "libsodium-chacha20poly1305", size: size, iterations: n2, nanos: ns2)

            // The Swift wrapper the channel calls (one output array per call, key in guarded memory).
            let secret = SecretKey(randomCount: 32)
            let plaintext = fillerBytes(count: size)
            let nonceBytes = [UInt8](repeating: 0, count: 12)
            let (n3, ns3) = try timedLoop(seconds: seconds, batch: max(1, 65536 / max(size, 1))) {
                let c = try AES256GCM.seal(key: secret, nonce: nonceBytes, plaintext: plaintext)
                _ = try AES256GCM.open(key: secret, nonce: nonceBytes, ciphertext: c)
            }
            emitRate("aead-limit", system: "edgecrypto-aes256gcm-\(AES256GCM.activeBackend)", size: size, iterations: n3,
                     nanos: ns3)
        }
    }

    // MARK: Channel crypto path without I/O

    /// `channel-crypto --size N`: what one message costs in the secure channel's own code, without routing, runtime or
    /// sockets: encode the plaintext message, OckamEncryptor.encrypt, OckamDecryptor.decrypt, decode.
    static func channelCrypto(_ arguments: Arguments) throws {
        let seconds = try arguments.double("seconds", default: 1)
        let sizes = try arguments.ints("sizes", default: [try arguments.int("size", default: 16384)])
        for size in sizes {
            let key = SecretKey(randomCount: 32)
            var encryptor = try OckamEncryptor(key: key)
            var decryptor = try OckamDecryptor(key: key)
            let payload = fillerBytes(count: size)
            let onward: Route = [.local("sink")]
            let back: Route = [.local("0123456789abcdef0123456789abcdef")]
            var failures = 0
            let (n, ns) = try timedLoop(seconds: seconds, batch: max(1, 65536 / max(size, 1))) {
                let plain = SecureChannelMessage.payload(onwardRoute: onward, returnRoute: back, payload: payload).encode()
                let wire = try encryptor.encrypt(plain)
                let (_, opened) = try decryptor.decrypt(wire)
                if case .payload(_, _, let p) = try SecureChannelMessage(decoding: opened), p.count == size {} else {
                    failures += 1
                }
            }
            emitRate("channel-crypto", system: "ockam-edge-channel-crypto", size: size, iterations: n, nanos: ns, extra: [
                ("failures", .int(Int64(failures))),
            ])
        }
    }

    // MARK: Handshakes

    /// `handshakes [--seconds S | --count N]`: complete Ockam XX handshakes (both sides, identity and attestation
    /// verified, trust policy evaluated) in one thread, through ``SecureChannelHandshake`` — no I/O, no node.
    static func handshakes(_ arguments: Arguments) throws {
        let seconds = try arguments.double("seconds", default: 2)
        let count = try arguments.int("count", default: 0)
        let suite: ChannelSuite = arguments.string("cipher", default: "aes-gcm") == "chacha20-poly1305" ? .chaCha20Poly1305 : .aes256GCM
        let initiatorCredentials = try SecureChannelCredentials.ephemeral()
        let responderCredentials = try SecureChannelCredentials.ephemeral()
        let trust = TrustContext()
        let now = currentTimestamp()
        var initiatorNanos: UInt64 = 0
        var responderNanos: UInt64 = 0
        var failures = 0
        func one() throws {
            var t = monotonicNanos()
            var initiator = try SecureChannelHandshake(role: .initiator, suite: suite, local: initiatorCredentials, trust: trust)
            let m1 = try initiator.start()
            var u = monotonicNanos()
            initiatorNanos += u - t
            var responder = try SecureChannelHandshake(role: .responder, suite: suite, local: responderCredentials, trust: trust)
            guard case .send(let m2) = try responder.receive(m1, now: now) else { failures += 1; return }
            t = monotonicNanos()
            responderNanos += t - u
            guard case .sendThenEstablished(let m3, _) = try initiator.receive(m2, now: now) else { failures += 1; return }
            u = monotonicNanos()
            initiatorNanos += u - t
            guard case .established = try responder.receive(m3, now: now) else { failures += 1; return }
            responderNanos += monotonicNanos() - u
        }
        try one()  // warm-up (lazy globals, first libsodium use)
        initiatorNanos = 0
        responderNanos = 0
        let (n, ns) = try timedLoop(seconds: seconds, count: count) { try one() }
        emit([
            ("suite", .string("handshakes")), ("system", .string("ockam-edge-handshake")), ("cipher", .string(suite.rawValue)),
            ("handshakes", .int(Int64(n))), ("seconds", .double(Double(ns) / 1e9)),
            ("handshakes_per_s", .double(Double(n) / (Double(ns) / 1e9))),
            ("us_per_handshake", .double(Double(ns) / Double(n) / 1000)),
            ("initiator_us", .double(Double(initiatorNanos) / Double(n) / 1000)),
            ("responder_us", .double(Double(responderNanos) / Double(n) / 1000)),
            ("failures", .int(Int64(failures))),
        ])
    }

    /// The operations of one full handshake (both sides), as counted from the code (see bench/README.md §4).
    struct HandshakeOperations {
        /// Byte sizes that the operations work on.
        let identityPayload: Int  // IdentityAndCredentials, messages 2 and 3
        let changeData: Int  // the identity's change `data` (VersionedData) hashed and verified
        let attestationData: Int  // the attestation's `data` hashed and verified

        init(_ credentials: SecureChannelCredentials) {
            identityPayload = IdentityAndCredentials(
                identity: credentials.identity, attestation: credentials.attestation, credentials: credentials.credentials
            ).encode().count
            changeData = credentials.identity.latestChange.data.count
            attestationData = credentials.attestation.data.count
        }

        /// (operation, size, count per full handshake).
        var table: [(String, Int, Int)] {
            let p = identityPayload
            return [
                ("randombytes_32", 32, 2),  // one ephemeral private key per side
                ("x25519_base", 32, 2),  // per side: the ephemeral public key (the static one is kept in the credentials)
                ("x25519_dh", 32, 6),  // per side: ee, es, se
                ("ed25519_verify", 32, 4),  // per side: peer's change self-signature + attestation signature (of a SHA-256)
                ("aes256gcm_seal", 32, 2),  // encrypted static key s (responder msg 2, initiator msg 3)
                ("aes256gcm_seal", p, 2),  // identity payload (msg 2, msg 3)
                ("aes256gcm_open", 48, 2),  // the peer's encrypted s
                ("aes256gcm_open", p + 16, 2),  // the peer's identity payload
                ("hmac_sha256_32B_key_32B_msg", 32, 6),  // HKDF temp_key for 3 MixKey per side
                ("hmac_sha256_32B_key_0B_msg", 0, 2),  // HKDF temp_key for Split, per side
                ("hmac_sha256_32B_key_1B_msg", 1, 8),  // HKDF output1, 4 HKDFs per side
                ("hmac_sha256_32B_key_33B_msg", 33, 8),  // HKDF output2, 4 HKDFs per side
                ("sha256", 32, 4),  // MixHash(prologue = empty), MixHash(empty payload of msg 1), per side
                ("sha256", 64, 4),  // MixHash(e) written and read
                ("sha256", 80, 4),  // MixHash(encrypted s) written and read
                ("sha256", 32 + p + 16, 4),  // MixHash(encrypted identity payload) written and read
                ("sha256", changeData, 6),  // per side: signature digest, identifier, latest change hash
                ("sha256", attestationData, 2),  // per side: attestation signature digest
            ]
        }
    }

    /// `handshake-primitives`: each operation of ``HandshakeOperations`` timed alone (libsodium C API, preallocated
    /// buffers), then the whole sequence of one handshake replayed back to back: the primitive bound.
    static func handshakePrimitives(_ arguments: Arguments) throws {
        let seconds = try arguments.double("seconds", default: 0.3)
        guard sodium_init() >= 0 else { throw BenchFailure("sodium_init failed") }
        guard crypto_aead_aes256gcm_is_available() == 1 else {
            emit([("suite", .string("handshake-primitives")), ("skipped", .string("no AES-NI: libsodium AES-GCM unavailable"))])
            return
        }
        let operations = HandshakeOperations(try SecureChannelCredentials.ephemeral())
        let big = RawBuffer(count: 4096)
        let out = RawBuffer(count: 4096 + 64)
        let out2 = RawBuffer(count: 4096 + 64)
        let scalar = RawBuffer(count: 32)
        let point = RawBuffer(count: 32)
        let key = RawBuffer(count: 32)
        let nonce = RawBuffer(count: 12)
        let ad = RawBuffer(count: 32)
        // A valid Ed25519 signature over a 32-byte digest, as in identities.
        let signingPublic = RawBuffer(count: 32)
        let signingSecret = RawBuffer(count: 64)
        crypto_sign_keypair(signingPublic.pointer, signingSecret.pointer)
        let signature = RawBuffer(count: 64)
        crypto_sign_detached(signature.pointer, nil, big.pointer, 32, signingSecret.pointer)
        crypto_scalarmult_base(point.pointer, scalar.pointer)
        // Sealed inputs for the open operations (they must authenticate, as in a real handshake).
        var sealedBySize: [Int: RawBuffer] = [:]
        for size in [32, operations.identityPayload] {
            let sealed = RawBuffer(count: size + 16)
            var length: UInt64 = 0
            crypto_aead_aes256gcm_encrypt(sealed.pointer, &length, big.pointer, UInt64(size), ad.pointer, 32, nil, nonce.pointer, key.pointer)
            sealedBySize[size + 16] = sealed
        }
        var failures = 0

        enum Op {
            case random, base, dh, verify, seal, open, hmac, sha
            init(_ name: String) {
                switch name {
                case "randombytes_32": self = .random
                case "x25519_base": self = .base
                case "x25519_dh": self = .dh
                case "ed25519_verify": self = .verify
                case "aes256gcm_seal": self = .seal
                case "aes256gcm_open": self = .open
                case "sha256": self = .sha
                default:
                    precondition(name.hasPrefix("hmac_sha256"), name)
                    self = .hmac
                }
            }
        }
        let openInputs = sealedBySize.mapValues { $0.pointer }
        @inline(__always) func run(_ op: Op, _ size: Int) {
            switch op {
            case .random: randombytes_buf(out.pointer, 32)
            case .base: crypto_scalarmult_base(out.pointer, scalar.pointer)
            case .dh: if crypto_scalarmult(out.pointer, scalar.pointer, point.pointer) != 0 { failures += 1 }
            case .verify:
                if crypto_sign_verify_detached(signature.pointer, big.pointer, 32, signingPublic.pointer) != 0 { failures += 1 }
            case .seal:
                var length: UInt64 = 0
                crypto_aead_aes256gcm_encrypt(
                    out.pointer, &length, big.pointer, UInt64(size), ad.pointer, 32, nil, nonce.pointer, key.pointer)
            case .open:
                var length: UInt64 = 0
                if crypto_aead_aes256gcm_decrypt(
                    out2.pointer, &length, nil, openInputs[size]!, UInt64(size), ad.pointer, 32, nonce.pointer, key.pointer)
                    != 0
                {
                    failures += 1
                }
            case .hmac:
                var state = crypto_auth_hmacsha256_state()
                crypto_auth_hmacsha256_init(&state, key.pointer, 32)
                crypto_auth_hmacsha256_update(&state, big.pointer, UInt64(size))
                crypto_auth_hmacsha256_final(&state, out.pointer)
            case .sha: crypto_hash_sha256(out.pointer, big.pointer, UInt64(size))
            }
        }

        var boundNanosFromParts = 0.0
        var parts: [JSON] = []
        for (name, size, count) in operations.table {
            let op = Op(name)
            run(op, size)
            let (n, ns) = timedLoop(seconds: seconds, batch: 16) { run(op, size) }
            let each = Double(ns) / Double(n)
            boundNanosFromParts += each * Double(count)
            parts.append(.object([
                ("op", .string(name)), ("bytes", .int(Int64(size))), ("per_handshake", .int(Int64(count))), ("ns_each", .double(each)),
                ("ns_per_handshake", .double(each * Double(count))),
            ]))
        }
        // The whole sequence back to back (what one core needs at least for one handshake, both sides).
        let sequence = operations.table.map { (Op($0.0), $0.1, $0.2) }
        let (n, ns) = timedLoop(seconds: max(seconds * 3, 0.5)) {
            for (op, size, count) in sequence { for _ in 0..<count { run(op, size) } }
        }
        let replayNanos = Double(ns) / Double(n)

        // Not primitives, but what the code does besides them: a SecretKey's life (sodium_malloc, mprotect, sodium_free).
        let (kn, kns) = timedLoop(seconds: seconds, batch: 16) { _ = SecretKey(randomCount: 32) }
        emit([
            ("suite", .string("handshake-primitives")), ("system", .string("libsodium-primitives")),
            ("identity_payload_bytes", .int(Int64(operations.identityPayload))), ("change_data_bytes", .int(Int64(operations.changeData))),
            ("attestation_data_bytes", .int(Int64(operations.attestationData))),
            ("operations", .array(parts)),
            ("bound_us_sum_of_parts", .double(boundNanosFromParts / 1000)),
            ("bound_us_replay", .double(replayNanos / 1000)),
            ("bound_handshakes_per_s", .double(1e9 / replayNanos)),
            ("secretkey_lifecycle_us", .double(Double(kns) / Double(kn) / 1000)),
            ("failures", .int(Int64(failures))),
        ])
    }

    static func emitRate(
        _ suite: String, system: String, size: Int, iterations: Int, nanos: UInt64, extra: [(String, JSON)] = []
    ) {
        let seconds = Double(nanos) / 1e9
        emit([
            ("suite", .string(suite)), ("system", .string(system)), ("size", .int(Int64(size))), ("messages", .int(Int64(iterations))),
            ("seconds", .double(seconds)), ("msgs_per_s", .double(Double(iterations) / seconds)),
            ("bytes_per_s", .double(Double(iterations) * Double(size) / seconds)),
        ] + extra)
    }
}
