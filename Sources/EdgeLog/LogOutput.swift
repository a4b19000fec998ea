// EdgeLog: log lines for the executables — text for a terminal, syslog priorities for journald, JSON lines for shippers.
import EdgePOSIX
import EdgeWire
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// How log records are written to standard error.
public enum LogFormat: String, Sendable, CaseIterable {
    /// `2026-12-07T17:45:00+0000 info ockam-edge: node=gw [Module] message`, as swift-log's stream handler writes.
    case text
    /// `<6>node=gw [Module] message`: a syslog priority prefix journald turns into the record's priority, and no
    /// timestamp (journald adds its own; a second one would be noise in `journalctl`).
    case journal
    /// One JSON object per line: `ts` (UTC, milliseconds), `level`, `label`, `message`, `source`, metadata.
    case json
    /// `journal` when standard error is the journal (systemd's `JOURNAL_STREAM` names its device and inode),
    /// else `text`.
    case auto

    /// `auto` decided for this process.
    public func resolved(environment: [String: String], standardErrorIdentity: (device: UInt64, inode: UInt64)?) -> LogFormat {
        guard self == .auto else { return self }
        return Self.isJournal(environment["JOURNAL_STREAM"], standardErrorIdentity) ? .journal : .text
    }

    /// Whether `JOURNAL_STREAM` (`<device>:<inode>`, decimal) names the file standard error is: a child whose stderr
    /// was redirected elsewhere inherits the variable but is not talking to the journal.
    static func isJournal(_ variable: String?, _ identity: (device: UInt64, inode: UInt64)?) -> Bool {
        guard let variable, let identity else { return false }
        let parts = variable.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        return device == identity.device && inode == identity.inode
    }

    /// The syslog priority journald records for `level` (RFC 5424 severities).
    public static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}

/// Formats one record as a line (without the newline) in `format` (`text`, `journal` or `json`).
public enum LogLine {
    public static func format(
        _ format: LogFormat, level: Logger.Level, label: String, message: Logger.Message, metadata: Logger.Metadata,
        source: String, wallClock: (seconds: Int, milliseconds: Int)
    ) -> String {
        let fields = metadata.sorted { $0.key < $1.key }
        switch format {
        case .json:
            var object: [(String, JSON)] = [
                ("ts", .string(timestamp(wallClock, milliseconds: true))), ("level", .string(level.rawValue)),
                ("label", .string(label)), ("message", .string("\(message)")), ("source", .string(source)),
            ]
            for (key, value) in fields where !["ts", "level", "label", "message", "source"].contains(key) {
                object.append((key, .string("\(value)")))
            }
            return JSON.object(object).serialized(pretty: false)
        case .journal:
            let prefix = fields.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return "<\(LogFormat.syslogPriority(level))>\(prefix.isEmpty ? "" : prefix + " ")[\(source)] \(oneLine(message))"
        case .text, .auto:
            let prefix = fields.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return "\(timestamp(wallClock, milliseconds: false)) \(level) \(label):\(prefix.isEmpty ? "" : " " + prefix) [\(source)] \(message)"
        }
    }

    /// journald splits records at newlines: a multi-line message would become several records, the later ones at the
    /// default priority. Keep it one record.
    static func oneLine(_ message: Logger.Message) -> String {
        String("\(message)".map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }

    /// `2026-12-07T17:45:00+0000` (text) or `2026-12-07T17:45:00.123Z` (JSON), in UTC.
    static func timestamp(_ clock: (seconds: Int, milliseconds: Int), milliseconds: Bool) -> String {
        var seconds = time_t(clock.seconds)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let date = "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))"
        let time = "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
        if !milliseconds { return "\(date)T\(time)+0000" }
        let ms = clock.milliseconds
        return "\(date)T\(time).\(ms < 10 ? "00" : ms < 100 ? "0" : "")\(ms)Z"
    }
}

/// Writes each record as one line to standard error with a single `write(2)`, so lines from several threads never
/// interleave.
public struct StandardErrorLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    let label: String
    let format: LogFormat

    public init(label: String, format: LogFormat) {
        self.label = label
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var line = LogLine.format(
            format, level: event.level, label: label, message: event.message, metadata: all, source: event.source,
            wallClock: (Int(now.tv_sec), Int(now.tv_nsec / 1_000_000)))
        line += "\n"
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = retryingOnInterrupt { write(2, bytes.baseAddress! + offset, bytes.count - offset) }
                if n <= 0 { return }
                offset += n
            }
        }
    }

    /// The device and inode of standard error, for ``LogFormat/resolved(environment:standardErrorIdentity:)``.
    public static var standardErrorIdentity: (device: UInt64, inode: UInt64)? {
        var info = stat()
        guard fstat(2, &info) == 0 else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino))
    }
}
