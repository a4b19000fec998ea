// EdgeQueue/QueueTypes: limits, durability modes, append results and counters of the store-and-forward queue.

/// When an appended record reaches stable storage.
public enum QueueDurability: Hashable, Sendable {
    /// Records live in memory while it has room and are written to disk only when memory is full (one write and
    /// one `fsync` for the whole batch) or on ``StoreAndForwardQueue/close()``. Few writes (SD-card friendly), but
    /// a crash (`kill -9`, power loss) loses the records that were only in memory.
    case spill
    /// Every `append` writes and `fsync`s its record before returning: nothing acknowledged by `append` is lost
    /// in a crash.
    case always
}

/// The queue's bounds. Memory and disk use never exceed them; when full, the oldest records are dropped.
public struct QueueLimits: Hashable, Sendable {
    /// Records held in memory (``QueueDurability/spill`` only).
    public var memoryMessages: Int
    /// Bytes held in memory, counted as encoded records (payload + 17 bytes each). Must be ≤ ``segmentBytes``, so
    /// that a spill is a single segment write.
    public var memoryBytes: Int
    /// Cap on the total size of the segment files. `0` makes the queue memory-only (`.spill` only): when memory is
    /// full the oldest records in memory are dropped, and ``StoreAndForwardQueue/close()`` cannot keep anything.
    /// Otherwise it must be at least two maximal segments (`2 × (segmentBytes + maxRecordBytes + 17)`), because
    /// disk space is reclaimed a whole segment at a time.
    public var diskBytes: Int
    /// A segment file is closed and a new one started when the next record would take it over this size.
    public var segmentBytes: Int
    /// The largest record accepted by `append` (1 … 16 MiB).
    public var maxRecordBytes: Int
    /// When appended records reach the disk.
    public var durability: QueueDurability

    public init(
        memoryMessages: Int = 1024, memoryBytes: Int = 1 << 20, diskBytes: Int = 64 << 20,
        segmentBytes: Int = 1 << 20, maxRecordBytes: Int = 65_536, durability: QueueDurability = .spill
    ) {
        self.memoryMessages = memoryMessages
        self.memoryBytes = memoryBytes
        self.diskBytes = diskBytes
        self.segmentBytes = segmentBytes
        self.maxRecordBytes = maxRecordBytes
        self.durability = durability
    }

    /// The encoded size of the largest record.
    var maxEncodedRecord: Int { QueueRecord.encodedByteCount(payloadCount: maxRecordBytes) }

    /// The largest a segment written by the queue can be: it is only exceeded by one record.
    var maxSegmentBytes: Int { segmentBytes + maxEncodedRecord }

    /// Why the limits are unusable, or `nil`.
    var problem: String? {
        if maxRecordBytes < 1 || maxRecordBytes > 16 << 20 { return "maxRecordBytes must be 1 … 16 MiB" }
        if segmentBytes < 1 || segmentBytes > 1 << 30 { return "segmentBytes must be 1 byte … 1 GiB" }
        if memoryMessages < 1 { return "memoryMessages must be at least 1" }
        if memoryBytes < 1 { return "memoryBytes must be at least 1" }
        if diskBytes == 0 {
            if durability == .always { return "durability .always needs diskBytes > 0" }
            return nil
        }
        if memoryBytes > segmentBytes { return "memoryBytes must not exceed segmentBytes (a spill is one segment)" }
        if diskBytes < 2 * maxSegmentBytes {
            return "diskBytes must be 0 (memory only) or at least 2 × (segmentBytes + maxRecordBytes + 17) = "
                + "\(2 * maxSegmentBytes)"
        }
        return nil
    }
}

/// Records dropped to make room, oldest first: the caller should log them.
public struct DroppedRecords: Hashable, Sendable {
    /// How many records were dropped.
    public var count: Int
    /// The sequence of the oldest dropped record.
    public var firstSequence: UInt64
    /// The sequence of the newest dropped record (sequences in between may have gaps).
    public var lastSequence: UInt64

    public init(count: Int, firstSequence: UInt64, lastSequence: UInt64) {
        self.count = count
        self.firstSequence = firstSequence
        self.lastSequence = lastSequence
    }

    mutating func merge(_ other: DroppedRecords) {
        count += other.count
        firstSequence = min(firstSequence, other.firstSequence)
        lastSequence = max(lastSequence, other.lastSequence)
    }
}

/// The outcome of a successful ``StoreAndForwardQueue/append(_:)``.
public enum AppendResult: Hashable, Sendable {
    /// The record is stored under `sequence`.
    case stored(sequence: UInt64)
    /// The record is stored under `sequence`, and the queue was full: `dropped` (oldest) records were removed.
    case storedDroppingOldest(sequence: UInt64, dropped: DroppedRecords)

    /// The new record's sequence number.
    public var sequence: UInt64 {
        switch self {
        case .stored(let sequence), .storedDroppingOldest(let sequence, _): sequence
        }
    }

    /// The records dropped to make room, if any.
    public var dropped: DroppedRecords? {
        switch self {
        case .stored: nil
        case .storedDroppingOldest(_, let dropped): dropped
        }
    }
}

/// What the queue has done since it was opened (not persisted). Every record accepted by `append` ends up
/// acknowledged, dropped, discarded as corrupt, or still queued.
public struct QueueCounters: Hashable, Sendable {
    /// Records stored by `append`.
    public var appended = 0
    /// Records removed by `acknowledge(through:)`.
    public var acknowledged = 0
    /// Records dropped, oldest first, because the queue was full.
    public var droppedOldest = 0
    /// `append` calls refused because the record exceeded `maxRecordBytes`.
    public var refusedOversize = 0
    /// `append` calls that failed because a write or `fsync` failed (the record was not stored).
    public var writeFailures = 0
    /// Corrupt or torn records found (on open or later while reading): each count is one bad record; the rest of
    /// its segment file is discarded with it (records there counted too when the queue knows them, see the docs).
    public var corruptRecordsDiscarded = 0
    /// Bytes of segment files cut off because they held corrupt or torn records.
    public var corruptBytesDiscarded = 0
    /// Times memory was spilled to disk.
    public var spills = 0
    /// Unacknowledged records found on disk when the queue was opened.
    public var recoveredOnOpen = 0

    public init() {}
}
