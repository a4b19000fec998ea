/// An error that ends a command with a message and an exit status. The runtime library throws it too, for what an
/// operator got wrong (a configuration value, a device link spec, a busy node name), so the command that started the
/// runtime exits with the message alone.
public struct CommandFailure: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var status: Int32 = 1
    public init(_ message: String, status: Int32 = 1) {
        self.message = message
        self.status = status
    }

    /// The message alone: a node's control commands answer with `"\(error)"`, which the CLI prints after "error: ".
    public var description: String { message }
}
