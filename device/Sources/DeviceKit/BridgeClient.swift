// Readings to a gateway bridge (docs/bridge.md "Device → gateway") with a small fixed-size retry buffer.

/// Sends readings to `/service/<bridge>` on the gateway and keeps each one until the bridge answers `ok <sequence>`.
///
/// Each reading's return route is a reply address of its own, `0#r` + 8 hex digits of the reading's number, so the
/// bridge's answer (routed back to that address) names the reading it acknowledges. A reading not answered within
/// `retryMilliseconds` is sent again; an answered one leaves the buffer. At most `maxInFlight` of the oldest readings
/// are on the line at once: with the default of 1 the bridge stores readings in the order they were taken even when
/// the line loses frames (a lost answer means the reading is sent, and so stored, again: at-least-once).
///
/// ### Invariants
/// - Memory is fixed at initialisation: `capacity × (maxPayload + 16)` bytes; nothing is allocated afterwards.
/// - Readings leave the buffer only when acknowledged, in any order; they are sent oldest first.
public struct BridgeClient {
    public struct Configuration {
        /// The bridge's name on the gateway (`bridges[].name`).
        public var bridge: StaticString
        /// How many readings the buffer holds.
        public var capacity: Int
        /// The largest reading payload.
        public var maxPayload: Int
        /// How long to wait for `ok` before sending a reading again.
        public var retryMilliseconds: UInt32
        /// How many of the oldest readings may be unanswered on the line at once.
        public var maxInFlight: Int

        public init(bridge: StaticString, capacity: Int = 8, maxPayload: Int = 48, retryMilliseconds: UInt32 = 3_000,
                    maxInFlight: Int = 1) {
            self.bridge = bridge
            self.capacity = max(1, capacity)
            self.maxPayload = max(1, maxPayload)
            self.retryMilliseconds = retryMilliseconds
            self.maxInFlight = max(1, maxInFlight)
        }
    }

    /// What an incoming message meant to the bridge client.
    public enum Answer: Equatable, Sendable {
        /// `ok <sequence>` for reading `id` (now out of the buffer).
        case acknowledged(id: UInt32, sequence: UInt64)
        /// `ok` for a reading no longer in the buffer (an answer to a copy sent twice).
        case duplicate(id: UInt32)
        /// `error …` for reading `id`: kept, sent again after the retry interval.
        case refused(id: UInt32)
        /// Not an answer to a reading.
        case notForUs
    }

    private struct Slot {
        var id: UInt32 = 0
        var length: Int = 0
        var sent = false
        var everSent = false
        var acknowledged = false
        var sentAt: UInt32 = 0
    }

    public let configuration: Configuration
    private let slots: UnsafeMutableBufferPointer<Slot>
    private let payloads: FixedBuffer
    private var head = 0
    private var count = 0
    private var nextID: UInt32 = 0

    /// Sends of readings already sent before (after a timeout or a new link session).
    public private(set) var resent: UInt32 = 0
    /// Readings acknowledged.
    public private(set) var acknowledged: UInt32 = 0

    public init(configuration: Configuration) {
        self.configuration = configuration
        slots = UnsafeMutableBufferPointer<Slot>.allocate(capacity: configuration.capacity)
        slots.initialize(repeating: Slot())
        payloads = FixedBuffer(capacity: configuration.capacity * configuration.maxPayload)
    }

    /// Readings in the buffer (sent or not, unanswered).
    public var pending: Int { count }
    public var isFull: Bool { count == configuration.capacity }

    /// Buffers a reading; returns its number, or nil if the buffer is full or the payload too long.
    public mutating func enqueue(_ payload: UnsafeBufferPointer<UInt8>) -> UInt32? {
        guard count < configuration.capacity, payload.count <= configuration.maxPayload else { return nil }
        let index = (head + count) % configuration.capacity
        let base = index * configuration.maxPayload
        for offset in 0..<payload.count { payloads.storage[base + offset] = payload[offset] }
        slots[index] = Slot(id: nextID, length: payload.count)
        count += 1
        defer { nextID &+= 1 }
        return nextID
    }

    /// A new link session: answers to what was on the line are lost with the old one, so send it again now.
    public mutating func linkRestarted() {
        for k in 0..<count {
            let index = (head + k) % configuration.capacity
            if slots[index].sent && !slots[index].acknowledged { slots[index].sent = false }
        }
    }

    /// Writes the next reading due (never sent, or unanswered for the retry interval) as a routing message into
    /// `writer` and marks it sent; returns false if none is due. The caller sends the message only if this returns
    /// true and the writer did not overflow.
    public mutating func writeNextDue(now: UInt32, into writer: inout ByteWriter) -> Bool {
        for k in 0..<min(count, configuration.maxInFlight) {
            let index = (head + k) % configuration.capacity
            var slot = slots[index]
            if slot.acknowledged { continue }
            let due = !slot.sent || now &- slot.sentAt >= configuration.retryMilliseconds
            guard due else { continue }
            if slot.everSent { resent &+= 1 }
            slot.sent = true
            slot.everSent = true
            slot.sentAt = now
            slots[index] = slot
            writeMessage(slot: index, into: &writer)
            return true
        }
        return false
    }

    /// Milliseconds until a reading is due again (nil: nothing in flight or waiting), for boards that sleep.
    public func millisecondsUntilDue(now: UInt32) -> UInt32? {
        var best: UInt32?
        for k in 0..<min(count, configuration.maxInFlight) {
            let slot = slots[(head + k) % configuration.capacity]
            if slot.acknowledged { continue }
            if !slot.sent { return 0 }
            let elapsed = now &- slot.sentAt
            let left = elapsed >= configuration.retryMilliseconds ? 0 : configuration.retryMilliseconds - elapsed
            best = min(best ?? left, left)
        }
        return best
    }

    /// Looks at a message delivered to the device: an answer from the bridge if it is addressed to a reply address.
    public mutating func handle(destination: AddressView, payload: UnsafeBufferPointer<UInt8>,
                                in buffer: UnsafeBufferPointer<UInt8>) -> Answer {
        guard destination.transportType == 0, destination.count == 9, buffer[destination.start] == UInt8(ascii: "r")
        else { return .notForUs }
        var id: UInt32 = 0
        for offset in 1..<9 {
            guard let digit = hexValue(buffer[destination.start + offset]) else { return .notForUs }
            id = id << 4 | UInt32(digit)
        }
        guard let index = slotIndex(id: id) else { return .duplicate(id: id) }
        guard let sequence = Self.parseOK(payload) else { return .refused(id: id) }
        slots[index].acknowledged = true
        acknowledged &+= 1
        while count > 0 && slots[head].acknowledged {
            head = (head + 1) % configuration.capacity
            count -= 1
        }
        return .acknowledged(id: id, sequence: sequence)
    }

    /// Parses the BARE string `ok <sequence>` (ULEB128 length, then the text); nil for anything else.
    public static func parseOK(_ payload: UnsafeBufferPointer<UInt8>) -> UInt64? {
        guard payload.count >= 5, payload[0] < 0x80, Int(payload[0]) == payload.count - 1 else { return nil }
        guard payload[1] == UInt8(ascii: "o"), payload[2] == UInt8(ascii: "k"), payload[3] == UInt8(ascii: " ")
        else { return nil }
        var value: UInt64 = 0
        for index in 4..<payload.count {
            let byte = payload[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            guard !o1, !o2 else { return nil }
            value = sum
        }
        return value
    }

    // MARK: Internals

    private func slotIndex(id: UInt32) -> Int? {
        for k in 0..<count {
            let index = (head + k) % configuration.capacity
            if slots[index].id == id && !slots[index].acknowledged { return index }
        }
        return nil
    }

    /// `[onward [0#<bridge>], return [0#r<id hex>], payload]`.
    private func writeMessage(slot index: Int, into writer: inout ByteWriter) {
        let slot = slots[index]
        writer.write(0x83)
        writer.write(0x81)
        RoutingCodec.writeLocalAddressHead(length: configuration.bridge.utf8CodeUnitCount, into: &writer)
        writer.write(configuration.bridge)
        writer.write(0x81)
        RoutingCodec.writeLocalAddressHead(length: 9, into: &writer)
        writer.write(UInt8(ascii: "r"))
        for shift in stride(from: 28, through: 0, by: -4) {
            writer.write(hexDigit(UInt8(truncatingIfNeeded: slot.id >> UInt32(shift)) & 0xF))
        }
        RoutingCodec.writeHead(major: 2, UInt64(slot.length), into: &writer)
        let base = index * configuration.maxPayload
        for offset in 0..<slot.length { writer.write(payloads.storage[base + offset]) }
    }
}

@inline(__always)
func hexDigit(_ value: UInt8) -> UInt8 { value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10 }

@inline(__always)
func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
    default: return nil
    }
}
