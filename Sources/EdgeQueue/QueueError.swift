// EdgeQueue/QueueError: the queue's error type (a struct with an extensible code, as EdgeVault's).
import SystemPackage

/// An error from a queue operation. Compare by ``code``; ``description`` is a sentence for an operator.
public struct QueueError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, independent of the path and details.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidLimits, insecureDirectory, inUse, recordTooLarge, writeFailed, io, corruptState, closed
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The ``QueueLimits`` are inconsistent.
        public static let invalidLimits = Code(.invalidLimits)
        /// The queue directory is accessible by group or others, not owned by this user, or not a directory.
        public static let insecureDirectory = Code(.insecureDirectory)
        /// Another queue (in this or another process) has the directory open.
        public static let inUse = Code(.inUse)
        /// The record is larger than `maxRecordBytes`; it was not stored.
        public static let recordTooLarge = Code(.recordTooLarge)
        /// Writing or syncing failed (``QueueError/errno``: e.g. `ENOSPC`, `EIO`); the record was not stored, and the
        /// queue is still usable.
        public static let writeFailed = Code(.writeFailed)
        /// Opening, reading or listing failed (``QueueError/errno``).
        public static let io = Code(.io)
        /// The `head` or `next` file is damaged: sequence numbers cannot be continued safely.
        public static let corruptState = Code(.corruptState)
        /// The queue was closed.
        public static let closed = Code(.closed)

        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let code: Code
    /// The file or directory concerned, if any.
    public let path: FilePath?
    /// For ``Code/writeFailed`` and ``Code/io``: the system error.
    public let errno: Errno?
    private let message: String

    private init(_ code: Code, path: FilePath?, errno: Errno? = nil, message: String) {
        self.code = code
        self.path = path
        self.errno = errno
        self.message = message
    }

    public var description: String { message }

    public static func == (lhs: QueueError, rhs: QueueError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    // MARK: Factories (cold paths)

    @inline(never)
    static func invalidLimits(_ reason: String) -> QueueError {
        QueueError(.invalidLimits, path: nil, message: "invalid queue limits: \(reason)")
    }

    @inline(never)
    static func insecureDirectory(_ path: FilePath, _ reason: String) -> QueueError {
        QueueError(.insecureDirectory, path: path, message: "queue directory '\(path)' \(reason)")
    }

    @inline(never)
    static func inUse(_ path: FilePath) -> QueueError {
        QueueError(.inUse, path: path, message: "queue directory '\(path)' is in use by another queue")
    }

    @inline(never)
    static func recordTooLarge(_ count: Int, limit: Int) -> QueueError {
        QueueError(
            .recordTooLarge, path: nil,
            message: "record of \(count) bytes exceeds the queue's \(limit)-byte limit: not stored")
    }

    @inline(never)
    static func writeFailed(_ what: String, _ path: FilePath, _ errno: Errno) -> QueueError {
        let hint = errno == .noSpace ? " (the file system is full)" : ""
        return QueueError(
            .writeFailed, path: path, errno: errno,
            message: "could not \(what) '\(path)': \(errno)\(hint); the record was not stored")
    }

    @inline(never)
    static func io(_ what: String, _ path: FilePath, _ errno: Errno) -> QueueError {
        QueueError(.io, path: path, errno: errno, message: "could not \(what) '\(path)': \(errno)")
    }

    @inline(never)
    static func corruptState(_ path: FilePath, _ reason: String) -> QueueError {
        QueueError(
            .corruptState, path: path,
            message: "queue state file '\(path)' \(reason): the queue cannot continue its sequence numbers safely "
                + "(move the queue directory aside; the receiver must then accept a new sequence range)")
    }

    @inline(never)
    static func closed() -> QueueError {
        QueueError(.closed, path: nil, message: "the queue is closed")
    }
}
