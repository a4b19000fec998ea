// EdgeBridge: the gateway's device bridge — tags device messages, keeps them in a store-and-forward queue and
// delivers them in order through a secure channel; and the ingest service that acknowledges and de-duplicates them.
// Wire formats: docs/bridge.md.
import EdgeWire

/// A bridge format error.
public enum BridgeError: Error, Hashable, Sendable, CustomStringConvertible {
    case malformed(String)
    case unsupportedVersion(UInt64)
    case tooLarge(size: Int, limit: Int)

    public var description: String {
        switch self {
        case .malformed(let why): "malformed bridge message: \(why)"
        case .unsupportedVersion(let v): "unsupported bridge message version \(v) (this build speaks 1)"
        case .tooLarge(let size, let limit): "bridge payload of \(size) bytes exceeds the limit of \(limit)"
        }
    }
}

/// Size limits shared by every bridge decoder.
public enum BridgeLimits {
    /// Largest device payload carried (one Ockam routing message body from a device link).
    public static let maxPayload = 65_536
    /// Longest bridge name or device tag.
    public static let maxText = 256
    /// Longest queue epoch carried in an envelope (gateways make 8-byte epochs: ``QueueEpoch``).
    public static let maxEpoch = 32
    /// Largest encoded envelope or record: payload plus fixed fields.
    public static var maxEncoded: Int { maxPayload + 2 * maxText + maxEpoch + 64 }
}

/// What the bridge keeps in its queue for one device message (the queue assigns the sequence number).
///
/// CBOR: `[1, device: text, received_at_ms: uint, payload: bytes]`.
public struct BridgeRecord: Hashable, Sendable {
    /// Who sent it: the device's identifier (secure channel to the gateway) or its link (`serial:<name>`,
    /// `ble:<bdaddr>`), or `route:<address>` when neither is known.
    public var device: String
    /// When the gateway accepted it, milliseconds since the Unix epoch (gateway clock).
    public var receivedAt: UInt64
    public var payload: [UInt8]

    public init(device: String, receivedAt: UInt64, payload: [UInt8]) {
        self.device = device
        self.receivedAt = receivedAt
        self.payload = payload
    }

    public func encoded() -> [UInt8] {
        var w = CBORWriter(capacity: payload.count + device.utf8.count + 16)
        w.writeArrayHeader(4)
        w.writeUnsigned(1)
        w.writeText(device)
        w.writeUnsigned(receivedAt)
        w.writeBytes(payload)
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws(BridgeError) {
        guard bytes.count <= BridgeLimits.maxEncoded else { throw .tooLarge(size: bytes.count, limit: BridgeLimits.maxEncoded) }
        do {
            var r = CBORReader(bytes)
            guard try r.readArrayHeader(limit: 16) >= 4 else { throw BridgeError.malformed("record needs 4 fields") }
            let version = try r.readUnsigned()
            guard version == 1 else { throw BridgeError.unsupportedVersion(version) }
            device = try r.readText(limit: BridgeLimits.maxText)
            receivedAt = try r.readUnsigned()
            payload = Array(try r.readBytes(limit: BridgeLimits.maxPayload))
        } catch let error as BridgeError {
            throw error
        } catch {
            throw .malformed("\(error)")
        }
    }
}

/// One device message on its way from a gateway bridge to an ingest service.
///
/// CBOR: `[1, sequence: uint, bridge: text, device: text, received_at_ms: uint, payload: bytes, ? epoch: bytes / null,
/// ? after: uint / null]`. Decoders accept (and ignore) extra trailing elements, so later versions can add fields: a
/// decoder that knows only the first six skips the epoch and `after`.
public struct BridgeEnvelope: Hashable, Sendable {
    /// Strictly increasing per bridge queue, for the life of its directory (gaps mean dropped messages).
    public var sequence: UInt64
    public var bridge: String
    public var record: BridgeRecord
    /// The queue's epoch: random bytes made with the queue directory, so the sequence of a wiped or replaced queue
    /// (which starts again from 0) is not mistaken for numbers already seen. Absent from gateways that predate it.
    public var epoch: [UInt8]?
    /// Pipelined delivery: the sequence of the envelope the gateway sent just before this one in the same delivery
    /// run. The receiver stores this one only if it stored that one (or a later one), so a lost or refused envelope
    /// can never be overtaken by the ones sent behind it. Nil for the first envelope of a run (everything before it
    /// was acknowledged or dropped at the gateway) and from gateways that send one envelope at a time.
    public var after: UInt64?

    public init(sequence: UInt64, bridge: String, record: BridgeRecord, epoch: [UInt8]? = nil, after: UInt64? = nil) {
        self.sequence = sequence
        self.bridge = bridge
        self.record = record
        self.epoch = epoch
        self.after = after
    }

    public func encoded() -> [UInt8] {
        var w = CBORWriter(
            capacity: record.payload.count + bridge.utf8.count + record.device.utf8.count + (epoch?.count ?? 0) + 32)
        w.writeArrayHeader(after != nil ? 8 : epoch != nil ? 7 : 6)
        w.writeUnsigned(1)
        w.writeUnsigned(sequence)
        w.writeText(bridge)
        w.writeText(record.device)
        w.writeUnsigned(record.receivedAt)
        w.writeBytes(record.payload)
        if let epoch {
            w.writeBytes(epoch)
        } else if after != nil {
            w.writeNull()
        }
        if let after { w.writeUnsigned(after) }
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws(BridgeError) {
        guard bytes.count <= BridgeLimits.maxEncoded else { throw .tooLarge(size: bytes.count, limit: BridgeLimits.maxEncoded) }
        do {
            var r = CBORReader(bytes)
            let count = try r.readArrayHeader(limit: 64)
            guard count >= 6 else { throw BridgeError.malformed("envelope needs 6 fields, has \(count)") }
            let version = try r.readUnsigned()
            guard version == 1 else { throw BridgeError.unsupportedVersion(version) }
            sequence = try r.readUnsigned()
            bridge = try r.readText(limit: BridgeLimits.maxText)
            let device = try r.readText(limit: BridgeLimits.maxText)
            let receivedAt = try r.readUnsigned()
            let payload = Array(try r.readBytes(limit: BridgeLimits.maxPayload))
            epoch = nil
            if count >= 7 {
                // Null in the epoch's place is "no epoch" (a sender that reserves the slot).
                if !r.readNullIfPresent() {
                    let bytes = Array(try r.readBytes(limit: BridgeLimits.maxEpoch))
                    guard !bytes.isEmpty else { throw BridgeError.malformed("empty epoch") }
                    epoch = bytes
                }
            }
            after = nil
            if count >= 8 && !r.readNullIfPresent() { after = try r.readUnsigned() }
            try r.skipValues(count - min(count, 8))
            try r.expectEnd()
            record = BridgeRecord(device: device, receivedAt: receivedAt, payload: payload)
        } catch let error as BridgeError {
            throw error
        } catch {
            throw .malformed("\(error)")
        }
    }
}

/// The ingest service's answer when its sink could not store an envelope: send it again (and everything after it).
///
/// CBOR: `[2, sequence: uint]`. Its first element is 2, not 1, so a gateway that knows only ``BridgeAck`` refuses it
/// as an unsupported version — a failed delivery, which is what it means — and can never take it for an
/// acknowledgement.
public struct BridgeRefusal: Hashable, Sendable {
    public var sequence: UInt64
    public init(sequence: UInt64) { self.sequence = sequence }

    public func encoded() -> [UInt8] {
        var w = CBORWriter(capacity: 12)
        w.writeArrayHeader(2)
        w.writeUnsigned(2)
        w.writeUnsigned(sequence)
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws(BridgeError) {
        sequence = try decodeReply(bytes, tag: 2, what: "refusal") { r, count in try r.skipValues(count - 2) }.sequence
    }
}

/// Decodes `[tag, sequence, …]` (at most 64 bytes): the sequence, and what `rest` reads of the elements after it
/// (it gets the element count and must consume the rest of the array).
private func decodeReply<Rest>(
    _ bytes: [UInt8], tag expected: UInt64, what: String, rest: (inout CBORReader, Int) throws -> Rest
) throws(BridgeError) -> (sequence: UInt64, rest: Rest) {
    guard bytes.count <= 64 else { throw .tooLarge(size: bytes.count, limit: 64) }
    do {
        var r = CBORReader(bytes)
        let count = try r.readArrayHeader(limit: 8)
        guard count >= 2 else { throw BridgeError.malformed("\(what) needs 2 fields") }
        let tag = try r.readUnsigned()
        guard tag == expected else { throw BridgeError.unsupportedVersion(tag) }
        let sequence = try r.readUnsigned()
        let decoded = try rest(&r, count)
        try r.expectEnd()
        return (sequence, decoded)
    } catch let error as BridgeError {
        throw error
    } catch {
        throw .malformed("\(error)")
    }
}

/// What comes back to a gateway's bridge from the ingest service.
public enum BridgeReply: Hashable, Sendable {
    case ack(BridgeAck)
    case refused(BridgeRefusal)

    public init(decoding bytes: [UInt8]) throws(BridgeError) {
        do {
            self = .ack(try BridgeAck(decoding: bytes))
        } catch .unsupportedVersion(2) {
            self = .refused(try BridgeRefusal(decoding: bytes))
        }
    }
}

/// The ingest service's answer to an envelope: everything up to `sequence` from this bridge is stored.
///
/// CBOR: `[1, sequence: uint, ? window: uint]`. `window` says the receiver keeps order for pipelined envelopes
/// (``BridgeEnvelope/after``) and how many it takes in flight per bridge; without it a gateway sends one at a time.
public struct BridgeAck: Hashable, Sendable {
    public var sequence: UInt64
    public var window: UInt64?
    public init(sequence: UInt64, window: UInt64? = nil) {
        self.sequence = sequence
        self.window = window
    }

    public func encoded() -> [UInt8] {
        var w = CBORWriter(capacity: 24)
        w.writeArrayHeader(window == nil ? 2 : 3)
        w.writeUnsigned(1)
        w.writeUnsigned(sequence)
        if let window { w.writeUnsigned(window) }
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws(BridgeError) {
        (sequence, window) = try decodeReply(bytes, tag: 1, what: "ack") { r, count -> UInt64? in
            let window = count >= 3 && !r.readNullIfPresent() ? try r.readUnsigned() : nil
            try r.skipValues(count - min(count, 3))
            return window
        }
    }
}
