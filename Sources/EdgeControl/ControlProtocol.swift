// EdgeControl: the node's local control interface — a 0600 Unix socket speaking length-prefixed CBOR requests.
import EdgeWire

/// One request from the CLI to a running node: `array(3) [version = 1, command text, arguments map{text: text}]`.
/// See docs/control-socket.md.
public struct ControlRequest: Sendable, Equatable {
    public static let version: UInt64 = 1
    public var command: String
    public var arguments: [String: String]

    public init(command: String, arguments: [String: String] = [:]) {
        self.command = command
        self.arguments = arguments
    }

    public func encode() -> [UInt8] {
        var writer = CBORWriter()
        writer.writeArrayHeader(3)
        writer.writeUnsigned(Self.version)
        writer.writeText(command)
        writer.writeMapHeader(arguments.count)
        for key in arguments.keys.sorted() {
            writer.writeText(key)
            writer.writeText(arguments[key]!)
        }
        return writer.bytes
    }

    public init(decoding bytes: [UInt8]) throws(WireError) {
        var reader = CBORReader(bytes)
        let count = try reader.readArrayHeader(limit: 16)
        guard count >= 3 else { throw .truncated }
        let version = try reader.readUnsigned()
        guard version == Self.version else { throw .unsupported("control protocol version \(version)") }
        command = try reader.readText(limit: 128)
        let n = try reader.readMapHeader(limit: 64)
        var arguments: [String: String] = [:]
        for _ in 0..<n {
            let key = try reader.readText(limit: 128)
            arguments[key] = try reader.readText(limit: 64 * 1024)
        }
        self.arguments = arguments
        try reader.skipValues(count - 3)
        try reader.expectEnd()
    }
}

/// A response: `array(2) [status uint (0 = ok, 1 = error), body text]`. The body is JSON for `ok`, a message for errors.
public struct ControlResponse: Sendable, Equatable {
    public enum Status: UInt64, Sendable { case ok = 0, error = 1 }
    public var status: Status
    public var body: String

    public init(status: Status, body: String) {
        self.status = status
        self.body = body
    }

    public static func ok(_ body: String) -> ControlResponse { ControlResponse(status: .ok, body: body) }
    public static func error(_ message: String) -> ControlResponse { ControlResponse(status: .error, body: message) }

    public func encode() -> [UInt8] {
        var writer = CBORWriter()
        writer.writeArrayHeader(2)
        writer.writeUnsigned(status.rawValue)
        writer.writeText(body)
        return writer.bytes
    }

    public init(decoding bytes: [UInt8]) throws(WireError) {
        var reader = CBORReader(bytes)
        let count = try reader.readArrayHeader(limit: 16)
        guard count >= 2 else { throw .truncated }
        guard let status = Status(rawValue: try reader.readUnsigned()) else { throw .unsupported("status") }
        self.status = status
        body = try reader.readText(limit: ControlLimits.maxFrame)
        try reader.skipValues(count - 2)
        try reader.expectEnd()
    }
}

public enum ControlLimits {
    /// Largest request or response frame.
    public static let maxFrame = 4 * 1024 * 1024
}
