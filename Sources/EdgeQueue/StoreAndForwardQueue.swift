// EdgeQueue: the gateway's store-and-forward queue — bounded memory, spill to a size-capped crash-safe file log.
//
// See docs/store-and-forward.md for the behaviour, limits, durability modes, file formats and recovery rules.
import EdgeSync
import SystemPackage

/// A FIFO of opaque records with strictly increasing sequence numbers, for messages waiting for an uplink.
///
/// The agent appends each device message, sends the oldest (``peek(max:)``) through its secure channel, and calls
/// ``acknowledge(through:)`` when the receiver acknowledges it. Sequence numbers are never reused for the
/// lifetime of the queue directory, across restarts and crashes, so the receiver can deduplicate by sequence.
///
/// ### Memory and disk
/// With ``QueueDurability/spill`` (the default) records live in a bounded in-memory FIFO while the disk log is
/// empty. When memory is full, all of it and the new record are written to a new segment file with one write and
/// one `fsync`; appends then go to the disk log until acknowledgements drain it, and then back to memory. The
/// order is strictly FIFO throughout. With ``QueueDurability/always`` every record is written and synced before
/// ``append(_:)`` returns.
///
/// ### Loss windows
/// - `.spill`: a crash (`kill -9`, power loss) loses the records that were only in memory (at most
///   ``QueueLimits/memoryMessages`` / ``QueueLimits/memoryBytes``). ``close()`` writes them to disk, so a clean
///   shutdown loses nothing. `.always` has no such window.
/// - Acknowledged progress is persisted lazily (every 256 acknowledged disk records and on close), so after a crash
///   up to that many acknowledged records are delivered again: at-least-once, deduplicated by the receiver.
/// - When full, the oldest records are dropped and counted (``QueueCounters/droppedOldest``) and reported in the
///   ``AppendResult``.
///
/// ### Threading
/// All methods are synchronous and may block on disk I/O (including `fsync`): call them off the event loop.
/// They are serialised by a mutex, so the queue can be shared.
public final class StoreAndForwardQueue: Sendable {
    private let core: EdgeMutex<QueueCore>
    /// The queue directory.
    public let directory: FilePath
    /// The limits the queue was opened with.
    public let limits: QueueLimits

    private init(core: sending QueueCore) {
        directory = core.path
        limits = core.limits
        self.core = EdgeMutex(core)
    }

    deinit {
        core.withLock { $0.closeDescriptors() }
    }

    /// Opens (or creates, with mode 0700) the queue in `directory` and recovers what it holds.
    ///
    /// Recovery: state files are checked, every segment is validated record by record; a corrupt or torn tail is
    /// cut off and counted (``QueueCounters/corruptRecordsDiscarded``), fully acknowledged segments are deleted, and
    /// the next sequence number is above every number handed out before.
    ///
    /// - Throws: ``QueueError/Code/invalidLimits``, ``QueueError/Code/insecureDirectory`` (group/other access, wrong
    ///   owner, symbolic link), ``QueueError/Code/inUse`` (another queue holds the directory's lock),
    ///   ``QueueError/Code/corruptState`` (damaged `head`/`next` file), ``QueueError/Code/io``.
    public static func open(directory: FilePath, limits: QueueLimits = QueueLimits()) throws(QueueError)
        -> StoreAndForwardQueue
    {
        try open(directory: directory, limits: limits, writePath: SystemWritePath())
    }

    /// ``open(directory:limits:)`` with an explicit write path (fault injection in tests; no `fsync` for fuzzing).
    package static func open(directory: FilePath, limits: QueueLimits, writePath: any QueueWritePath)
        throws(QueueError) -> StoreAndForwardQueue
    {
        StoreAndForwardQueue(core: try QueueCore.open(path: directory, limits: limits, writePath: writePath))
    }

    /// Appends a record and returns its sequence number (and any oldest records dropped to make room).
    ///
    /// - Throws: ``QueueError/Code/recordTooLarge`` (counted in ``QueueCounters/refusedOversize``);
    ///   ``QueueError/Code/writeFailed`` when a write or `fsync` fails (`ENOSPC`, `EIO`; counted in
    ///   ``QueueCounters/writeFailures``): the record is **not** stored — count it as dropped — and the queue stays
    ///   usable; ``QueueError/Code/closed``.
    public func append(_ bytes: [UInt8]) throws(QueueError) -> AppendResult {
        try core.withLock { (core) throws(QueueError) -> AppendResult in try core.append(bytes) }
    }

    /// Up to `max` of the oldest unacknowledged records, oldest first, without removing them.
    ///
    /// Reads from disk as needed (one segment window is cached; the rest is read and not kept). Empty when the
    /// queue is empty or closed.
    ///
    /// - Throws: ``QueueError/Code/io`` if a segment cannot be read.
    public func peek(max: Int = 1) throws(QueueError) -> [QueuedRecord] {
        try core.withLock { (core) throws(QueueError) -> [QueuedRecord] in try core.peek(max: max) }
    }

    /// Up to `max` of the oldest unacknowledged records numbered after `sequence`, oldest first, without removing
    /// them: what a sender with records in flight (sent, not yet acknowledged) sends next. ``peek(max:)`` for nil.
    public func peek(after sequence: UInt64?, max: Int) throws(QueueError) -> [QueuedRecord] {
        try core.withLock { (core) throws(QueueError) -> [QueuedRecord] in try core.peek(after: sequence, max: max) }
    }

    /// Removes every record with a sequence number ≤ `sequence` (the receiver acknowledged them). Acknowledging an
    /// older or unknown sequence is harmless; a sequence beyond every number handed out acknowledges everything.
    ///
    /// - Throws: ``QueueError/Code/io`` if reading a segment or persisting progress fails (the acknowledgement has
    ///   still taken effect in memory; after a crash the records may be delivered again), ``QueueError/Code/closed``.
    /// - Returns: how many records this removed.
    @discardableResult
    public func acknowledge(through sequence: UInt64) throws(QueueError) -> Int {
        try core.withLock { (core) throws(QueueError) -> Int in
            let before = core.counters.acknowledged
            try core.acknowledge(through: sequence)
            return core.counters.acknowledged - before
        }
    }

    /// Unacknowledged records and their payload bytes.
    public var depth: (messages: Int, bytes: Int) { core.withLock { $0.depth } }

    /// What the queue has done since it was opened.
    public var counters: QueueCounters { core.withLock { $0.counters } }

    /// Graceful shutdown: writes the memory records to disk (and syncs), persists acknowledged progress, and
    /// releases the directory. Idempotent; every other method then throws ``QueueError/Code/closed``.
    ///
    /// - Throws: ``QueueError/Code/writeFailed`` if the memory records could not be saved (they are lost; the
    ///   queue is closed anyway).
    public func close() throws(QueueError) {
        try core.withLock { (core) throws(QueueError) in try core.close() }
    }

    /// Test and diagnostics hooks.
    var diskBytesUsed: Int64 { core.withLock { $0.diskBytesUsed } }
    var segmentCount: Int { core.withLock { $0.segmentCount } }
    var nextSequence: UInt64 { core.withLock { $0.nextSequence } }
}
