// The control protocol's CBOR: requests, responses and their fields, with a bound on every length and depth.
import EdgeWire

/// The one version of the control protocol this build speaks (docs/control-socket.md).
public let controlProtocolVersion: UInt64 = 2

extension ControlCommand {
    public func encode() -> [UInt8] {
        var w = CBORWriter()
        w.writeArrayHeader(2)
        w.writeUnsigned(controlProtocolVersion)
        switch self {
        case .ping, .status, .metrics, .listChannels, .listDevices:
            w.writeArrayHeader(1)
            w.writeText(name)
        case .createChannel(let to, let timeout):
            w.writeArrayHeader(3)
            w.writeText(name)
            w.writeText(to)
            w.writeDuration(timeout)
        case .showChannel(let address), .deleteChannel(let address):
            w.writeArrayHeader(2)
            w.writeText(name)
            w.writeText(address)
        case .sendMessage(let to, let message, let timeout, let raw):
            w.writeArrayHeader(5)
            w.writeText(name)
            w.writeText(to)
            w.writeText(message)
            w.writeDuration(timeout)
            w.writeBool(raw)
        case .startPairing(let request):
            w.writeArrayHeader(6)
            w.writeText(name)
            w.writeText(request.transport)
            w.writeText(request.target)
            w.writeText(request.listener)
            w.writeOptionalText(request.security)
            w.writeDuration(request.timeout)
        case .confirmPairing(let channel, let name, let attributes):
            w.writeArrayHeader(4)
            w.writeText(self.name)
            w.writeText(channel)
            w.writeText(name)
            w.writeTextMap(attributes)
        case .cancelPairing(let channel):
            w.writeArrayHeader(2)
            w.writeText(name)
            w.writeText(channel)
        case .removeDevice(let name):
            w.writeArrayHeader(2)
            w.writeText(self.name)
            w.writeText(name)
        }
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws(WireError) {
        var r = CBORReader(bytes)
        // The version is read before the shape is checked, so any other version's request gets this answer.
        let outer = try r.readArrayHeader(limit: 16)
        guard outer >= 1 else { throw .truncated }
        let version = try r.readUnsigned()
        guard version == controlProtocolVersion else {
            throw .unsupported("control protocol version \(version) (this node speaks version \(controlProtocolVersion))")
        }
        guard outer == 2 else { throw .unsupported("a request is [version, command]") }
        let count = try r.readArrayHeader(limit: 8)
        guard count >= 1 else { throw .truncated }
        let name = try r.readText(limit: 64)
        func fields(_ n: Int) throws(WireError) {
            guard count == 1 + n else { throw .unsupported("\(name) takes \(n) fields, not \(count - 1)") }
        }
        let text = ControlLimits.maxRequestText
        switch name {
        case "ping", "status", "metrics", "secure-channel/list", "devices/list":
            try fields(0)
            self = name == "ping" ? .ping : name == "status" ? .status : name == "metrics" ? .metrics
                : name == "devices/list" ? .listDevices : .listChannels
        case "secure-channel/create":
            try fields(2)
            self = .createChannel(to: try r.readText(limit: text), timeout: try r.readDuration())
        case "secure-channel/show", "secure-channel/delete":
            try fields(1)
            let address = try r.readText(limit: text)
            self = name == "secure-channel/show" ? .showChannel(address: address) : .deleteChannel(address: address)
        case "message/send":
            try fields(4)
            self = .sendMessage(
                to: try r.readText(limit: text), message: try r.readText(limit: text), timeout: try r.readDuration(),
                raw: try r.readBool())
        case "pair/start":
            try fields(5)
            self = .startPairing(
                PairingRequest(
                    transport: try r.readText(limit: 16), target: try r.readText(limit: text),
                    listener: try r.readText(limit: 128), security: try r.readOptionalText(limit: 16),
                    timeout: try r.readDuration()))
        case "pair/confirm":
            try fields(3)
            self = .confirmPairing(
                channel: try r.readText(limit: text), name: try r.readText(limit: 128), attributes: try r.readTextMap(limit: 64))
        case "pair/cancel":
            try fields(1)
            self = .cancelPairing(channel: try r.readText(limit: text))
        case "devices/remove":
            try fields(1)
            self = .removeDevice(name: try r.readText(limit: 128))
        default:
            throw .unsupported("unknown command '\(name)'")
        }
        try r.expectEnd()
    }
}

extension ControlResponse {
    /// `array(2) [0, reply]` or `array(2) [1, message text]`.
    public func encode() -> [UInt8] {
        var w = CBORWriter()
        w.writeArrayHeader(2)
        switch self {
        case .ok(let reply):
            w.writeUnsigned(0)
            reply.encode(into: &w)
        case .error(let message):
            w.writeUnsigned(1)
            w.writeText(message)
        }
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws(WireError) {
        var r = CBORReader(bytes)
        guard try r.readArrayHeader(limit: 2) == 2 else { throw .truncated }
        switch try r.readUnsigned() {
        case 0: self = .ok(try ControlReply(from: &r))
        case 1: self = .error(try r.readText(limit: ControlLimits.maxFrame))
        case let other: throw .unsupported("response status \(other)")
        }
        try r.expectEnd()
    }
}

extension ControlReply {
    /// `array(1 + n) [reply name, field…]`.
    func encode(into w: inout CBORWriter) {
        switch self {
        case .pong:
            w.writeArrayHeader(1)
            w.writeText(name)
        case .status(let document):
            w.writeArrayHeader(2)
            w.writeText(name)
            w.writeDocument(document)
        case .metrics(let text), .messageReply(let text):
            w.writeArrayHeader(2)
            w.writeText(name)
            w.writeText(text)
        case .channel(let channel):
            w.writeArrayHeader(2)
            w.writeText(name)
            channel.encode(into: &w)
        case .channels(let channels):
            w.writeArrayHeader(2)
            w.writeText(name)
            w.writeArrayHeader(channels.count)
            for channel in channels { channel.encode(into: &w) }
        case .channelDeleted(let address), .pairingCancelled(let address):
            w.writeArrayHeader(2)
            w.writeText(name)
            w.writeText(address)
        case .pairingStarted(let started):
            w.writeArrayHeader(6)
            w.writeText(name)
            w.writeText(started.channel)
            w.writeText(started.identifier)
            w.writeText(started.code)
            w.writeText(started.transport)
            w.writeOptionalText(started.alreadyPairedAs)
        case .pairingConfirmed(let channel, let device):
            w.writeArrayHeader(3)
            w.writeText(name)
            w.writeText(channel)
            device.encode(into: &w)
        case .devices(let devices):
            w.writeArrayHeader(2)
            w.writeText(name)
            w.writeArrayHeader(devices.count)
            for device in devices { device.encode(into: &w) }
        case .deviceRemoved(let removed):
            w.writeArrayHeader(4)
            w.writeText(name)
            w.writeText(removed.name)
            w.writeText(removed.identifier)
            w.writeTextArray(removed.closedChannels)
        }
    }

    init(from r: inout CBORReader) throws(WireError) {
        let count = try r.readArrayHeader(limit: 8)
        guard count >= 1 else { throw .truncated }
        let name = try r.readText(limit: 64)
        func fields(_ n: Int) throws(WireError) {
            guard count == 1 + n else { throw .unsupported("\(name) takes \(n) fields, not \(count - 1)") }
        }
        let text = ControlLimits.maxFrame
        switch name {
        case "pong":
            try fields(0)
            self = .pong
        case "status":
            try fields(1)
            self = .status(try r.readDocument(depth: 0))
        case "metrics":
            try fields(1)
            self = .metrics(try r.readText(limit: text))
        case "message-reply":
            try fields(1)
            self = .messageReply(try r.readText(limit: text))
        case "channel":
            try fields(1)
            self = .channel(try ChannelSummary(from: &r))
        case "channels":
            try fields(1)
            let n = try r.readArrayHeader(limit: ControlLimits.maxItems)
            var channels: [ChannelSummary] = []
            for _ in 0..<n { channels.append(try ChannelSummary(from: &r)) }
            self = .channels(channels)
        case "channel-deleted":
            try fields(1)
            self = .channelDeleted(address: try r.readText(limit: 1024))
        case "pairing-cancelled":
            try fields(1)
            self = .pairingCancelled(channel: try r.readText(limit: 1024))
        case "pairing-started":
            try fields(5)
            self = .pairingStarted(
                PairingStarted(
                    channel: try r.readText(limit: 1024), identifier: try r.readText(limit: 1024),
                    code: try r.readText(limit: 64), transport: try r.readText(limit: 1024),
                    alreadyPairedAs: try r.readOptionalText(limit: 1024)))
        case "pairing-confirmed":
            try fields(2)
            self = .pairingConfirmed(channel: try r.readText(limit: 1024), device: try DeviceSummary(from: &r))
        case "devices":
            try fields(1)
            let n = try r.readArrayHeader(limit: ControlLimits.maxItems)
            var devices: [DeviceSummary] = []
            for _ in 0..<n { devices.append(try DeviceSummary(from: &r)) }
            self = .devices(devices)
        case "device-removed":
            try fields(3)
            self = .deviceRemoved(
                DeviceRemoved(
                    name: try r.readText(limit: 1024), identifier: try r.readText(limit: 1024),
                    closedChannels: try r.readTextArray(limit: ControlLimits.maxItems)))
        default:
            throw .unsupported("unknown reply '\(name)'")
        }
    }
}

extension ChannelSummary {
    func encode(into w: inout CBORWriter) {
        w.writeArrayHeader(9)
        for field in [address, encryptor, decryptor, role, peer, remoteRoute] { w.writeText(field) }
        w.writeOptionalText(listener)
        w.writeText(cipher)
        w.writeText(verificationCode)
    }

    init(from r: inout CBORReader) throws(WireError) {
        guard try r.readArrayHeader(limit: 9) == 9 else { throw .unsupported("a channel has 9 fields") }
        self.init(
            address: try r.readText(limit: 1024), encryptor: try r.readText(limit: 1024),
            decryptor: try r.readText(limit: 1024), role: try r.readText(limit: 64), peer: try r.readText(limit: 1024),
            remoteRoute: try r.readText(limit: 64 * 1024), listener: try r.readOptionalText(limit: 1024),
            cipher: try r.readText(limit: 64), verificationCode: try r.readText(limit: 64))
    }
}

extension DeviceSummary {
    func encode(into w: inout CBORWriter) {
        w.writeArrayHeader(7)
        w.writeText(name)
        w.writeText(identifier)
        w.writeTextMap(attributes)
        w.writeText(transport)
        w.writeOptionalText(linkSecurity)
        w.writeUnsigned(pairedAt)
        w.writeTextArray(channels)
    }

    init(from r: inout CBORReader) throws(WireError) {
        guard try r.readArrayHeader(limit: 7) == 7 else { throw .unsupported("a device has 7 fields") }
        self.init(
            name: try r.readText(limit: 1024), identifier: try r.readText(limit: 1024),
            attributes: try r.readTextMap(limit: 64), transport: try r.readText(limit: 1024),
            linkSecurity: try r.readOptionalText(limit: 64), pairedAt: try r.readUnsigned(),
            channels: try r.readTextArray(limit: ControlLimits.maxItems))
    }
}

// MARK: - Field helpers

extension CBORWriter {
    mutating func writeOptionalText(_ text: String?) {
        if let text { writeText(text) } else { writeNull() }
    }

    /// Whole milliseconds, or null.
    mutating func writeDuration(_ duration: Duration?) {
        guard let duration else { return writeNull() }
        let (seconds, attoseconds) = duration.components
        writeUnsigned(UInt64(max(0, seconds)) * 1000 + UInt64(max(0, attoseconds) / 1_000_000_000_000_000))
    }

    /// Keys sorted, so one map has one encoding.
    mutating func writeTextMap(_ map: [String: String]) {
        writeMapHeader(map.count)
        for key in map.keys.sorted() {
            writeText(key)
            writeText(map[key] ?? "")
        }
    }

    mutating func writeTextArray(_ items: [String]) {
        writeArrayHeader(items.count)
        for item in items { writeText(item) }
    }

    /// The JSON data model in CBOR: objects as maps (member order kept), arrays, text, integers, booleans, null; a
    /// double as its shortest decimal text (the status document holds none).
    mutating func writeDocument(_ document: JSON) {
        switch document {
        case .null: writeNull()
        case .bool(let value): writeBool(value)
        case .int(let value): writeInteger(value)
        case .uint(let value): writeUnsigned(value)
        case .double(let value): writeText("\(value)")
        case .string(let value): writeText(value)
        case .array(let items):
            writeArrayHeader(items.count)
            for item in items { writeDocument(item) }
        case .object(let members):
            writeMapHeader(members.count)
            for (key, value) in members {
                writeText(key)
                writeDocument(value)
            }
        }
    }
}

extension CBORReader {
    mutating func readOptionalText(limit: Int) throws(WireError) -> String? {
        readNullIfPresent() ? nil : try readText(limit: limit)
    }

    mutating func readDuration() throws(WireError) -> Duration? {
        if readNullIfPresent() { return nil }
        let milliseconds = try readUnsigned()
        guard milliseconds <= ControlLimits.maxDurationMilliseconds else {
            throw .unsupported("duration of \(milliseconds) ms (at most a year)")
        }
        return .milliseconds(Int64(milliseconds))
    }

    mutating func readTextMap(limit: Int) throws(WireError) -> [String: String] {
        let count = try readMapHeader(limit: limit)
        var map: [String: String] = [:]
        for _ in 0..<count {
            let key = try readText(limit: 128)
            guard map[key] == nil else { throw .unsupported("duplicate key '\(key)'") }
            map[key] = try readText(limit: ControlLimits.maxRequestText)
        }
        return map
    }

    mutating func readTextArray(limit: Int) throws(WireError) -> [String] {
        let count = try readArrayHeader(limit: limit)
        var items: [String] = []
        for _ in 0..<count { items.append(try readText(limit: 64 * 1024)) }
        return items
    }

    mutating func readDocument(depth: Int) throws(WireError) -> JSON {
        guard depth < ControlLimits.maxDepth else { throw .unsupported("status document nested deeper than \(ControlLimits.maxDepth)") }
        switch try peekType() {
        case .null:
            _ = readNullIfPresent()
            return .null
        case .bool: return .bool(try readBool())
        case .unsigned: return .uint(try readUnsigned())
        case .negative: return .int(try readNegative())
        case .text: return .string(try readText(limit: ControlLimits.maxFrame))
        case .array:
            let count = try readArrayHeader(limit: ControlLimits.maxItems)
            var items: [JSON] = []
            for _ in 0..<count { items.append(try readDocument(depth: depth + 1)) }
            return .array(items)
        case .map:
            let count = try readMapHeader(limit: ControlLimits.maxItems)
            var members: [(String, JSON)] = []
            for _ in 0..<count {
                let key = try readText(limit: 1024)
                members.append((key, try readDocument(depth: depth + 1)))
            }
            return .object(members)
        case let other:
            throw .unsupported("a status document holds no CBOR \(other)")
        }
    }
}
