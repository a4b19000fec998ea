// Built-in services present on every node, as on a stock Ockam node: `echo` and `uppercase`.
import EdgeRouting
import EdgeWire

/// Replies to every message with its payload unchanged (Ockam's `echo`, raw bytes).
public struct EchoService: Worker {
    public static let defaultAddress = Address.local("echo")
    public init() {}

    public func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        try await context.reply(to: message.returnRoute, payload: message.payload)
    }
}

/// Replies with the upper-cased text of a serde_bare `String` payload (Ockam's `uppercase`). Any other payload gets a
/// BARE string starting with `error: ` in lower case, which an upper-cased answer can never be (stock Ockam logs the
/// error and sends nothing, so a remote requester could only time out).
public struct UppercaseService: Worker {
    public static let defaultAddress = Address.local("uppercase")
    /// Largest string accepted.
    public static let maxLength = 1 << 20
    public init() {}

    public func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        let answer: String
        do {
            answer = try BARE.decodeString(message.payload, limit: Self.maxLength).uppercased()
        } catch {
            answer = "error: the payload is not a BARE string (\(error))"
        }
        try await context.reply(to: message.returnRoute, payload: BARE.encodeString(answer))
    }
}

extension Node {
    /// Starts the services a stock Ockam node offers (`echo`, `uppercase`): reachable from every link when `public`
    /// (as on a stock node, for Ockam's own demos), else only locally and through secure channels.
    public func startDefaultServices(public: Bool = true) throws(NodeError) {
        let options = WorkerOptions(mailboxCapacity: self.options.defaultMailboxCapacity, reach: `public` ? .links : .local)
        try startWorker(EchoService(), at: EchoService.defaultAddress, options: options)
        try startWorker(UppercaseService(), at: UppercaseService.defaultAddress, options: options)
    }
}
