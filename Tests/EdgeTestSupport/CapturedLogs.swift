// Log capture for tests that check what a component logs (e.g. that a flood of bad input gives few warnings).
import EdgeSync
import Logging

/// Log records kept by ``CapturingLogHandler``.
public final class LogRecords: Sendable {
    public let all = EdgeMutex<[(Logger.Level, String)]>([])

    public init() {}

    /// A logger whose records (every level) are kept here.
    public func logger(_ label: String = "test") -> Logger {
        Logger(label: label) { _ in CapturingLogHandler(records: self) }
    }

    /// The records at `level` whose message starts with `prefix`.
    public func messages(_ level: Logger.Level, startingWith prefix: String) -> [String] {
        all.withLock { $0.filter { $0.0 == level && $0.1.hasPrefix(prefix) }.map(\.1) }
    }
}

/// A log handler that keeps every record's level and message.
public struct CapturingLogHandler: LogHandler {
    public let records: LogRecords
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace

    public init(records: LogRecords) { self.records = records }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        records.all.withLock { $0.append((event.level, "\(event.message)")) }
    }
}
