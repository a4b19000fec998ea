// Built-in services present on every node, as on a stock Ockam node: `echo` and `uppercase`.
import EdgeRouting
import EdgeWire

/// Replies to every message with its payload unchanged (Ockam's `echo`, raw bytes).
public struct EchoService: Worker {
    public static let defaultAddress = Address.local("echo")
    public init() {}

    public func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        try await context.send(to: message.returnRoute, payload: message.payload)
    }
}

/// Replies with the upper-cased text of a serde_bare `String` payload (Ockam's `uppercase`).
public struct UppercaseService: Worker {
    public static let defaultAddress = Address.local("uppercase")
    /// Largest string accepted.
    public static let maxLength = 1 << 20
    public init() {}

    public func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        let text = try BARE.decodeString(message.payload, limit: Self.maxLength)
        try await context.send(to: message.returnRoute, payload: BARE.encodeString(text.uppercased()))
    }
}

extension Node {
    /// Starts the services a stock Ockam node offers to plain TCP peers (`echo`, `uppercase`).
    public func startDefaultServices() throws(NodeError) {
        try startWorker(EchoService(), at: EchoService.defaultAddress)
        try startWorker(UppercaseService(), at: UppercaseService.defaultAddress)
    }
}
