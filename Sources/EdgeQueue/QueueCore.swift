// EdgeQueue/QueueCore: the queue's synchronous state machine over one directory (memory FIFO + segment log).
// Long (~850 lines) on purpose: every durable-write step of the queue is in this one state machine, so the order of
// writes, fsyncs and renames that crash safety depends on can be read (and reviewed) in one place.
//
// Not thread-safe: `StoreAndForwardQueue` keeps it behind a `Mutex`. All durable writes go through
// `QueueWritePath`, so tests can inject `ENOSPC`/`EIO`.
import EdgePOSIX
import EdgeSync
import Synchronization
import SystemPackage

/// A FIFO of records with O(1) amortised `popFirst` that frees popped payloads.
struct RecordFIFO {
    private var storage: [QueuedRecord] = []
    private var start = 0

    var count: Int { storage.count - start }
    var isEmpty: Bool { start == storage.count }
    var first: QueuedRecord? { start < storage.count ? storage[start] : nil }
    var elements: ArraySlice<QueuedRecord> { storage[start...] }

    /// The records numbered `sequence` or later (the FIFO is in sequence order: a binary search).
    func elements(from sequence: UInt64) -> ArraySlice<QueuedRecord> {
        var low = start
        var high = storage.count
        while low < high {
            let middle = low + (high - low) / 2
            if storage[middle].sequence < sequence { low = middle + 1 } else { high = middle }
        }
        return storage[low...]
    }

    mutating func append(_ record: QueuedRecord) { storage.append(record) }

    mutating func popFirst() -> QueuedRecord? {
        guard start < storage.count else { return nil }
        let record = storage[start]
        storage[start] = QueuedRecord(sequence: 0, bytes: [])  // release the payload now
        start += 1
        if start == storage.count {
            storage.removeAll(keepingCapacity: storage.capacity <= 4096)
            start = 0
        } else if start >= 64 && start * 2 >= storage.count {
            storage.removeFirst(start)
            start = 0
        }
        return record
    }

    mutating func removeAll() {
        storage = []
        start = 0
    }
}

/// One segment file of the disk log.
struct Segment {
    let fileName: String
    /// The sequence of the first record in the file (acknowledged or not).
    var firstSequence: UInt64
    /// The sequence of the last valid record in the file.
    var lastSequence: UInt64
    /// The length of the valid prefix of the file (all of it, unless a write failed and could not be undone).
    var validBytes: Int64
    /// Records not yet acknowledged (sequence ≥ head) and their payload bytes.
    var liveRecords: Int
    var livePayloadBytes: Int
}

/// The decoded, not yet acknowledged records of the oldest segment, from its start up to `nextOffset`.
struct HeadWindow {
    var loaded = false
    var records = RecordFIFO()
    /// File offset just after the last record read into the window.
    var nextOffset: Int64 = 0
}

/// A directory's identity, for the in-process registry of open queues.
struct DirectoryIdentity: Hashable, Sendable {
    let device: UInt64
    let inode: UInt64
}

struct QueueCore {
    /// Queue directories open in this process. The `lock` file's POSIX lock excludes other processes only (and
    /// opening and closing the lock file a second time would release it), so this is checked first.
    static let openDirectories = EdgeMutex<Set<DirectoryIdentity>>([])

    /// Sequence numbers are reserved (in the `next` file) this many at a time.
    static let reservationBlock: UInt64 = 4096
    /// The `head` file is rewritten after this many acknowledged disk records (and on close).
    static let headPersistInterval = 256
    static let lockFileName = "lock"

    let path: FilePath
    let limits: QueueLimits
    let writePath: any QueueWritePath
    private(set) var directory: FileDescriptor
    private var lock: FileDescriptor
    private let identity: DirectoryIdentity

    private var memory = RecordFIFO()
    private var memoryBytes = 0  // encoded
    private var memoryPayloadBytes = 0

    private var segments: [Segment] = []  // oldest first
    private var tail: FileDescriptor?  // open for writing: segments.last, created by this process and not sealed
    private var window = HeadWindow()
    private var diskFileBytes: Int64 = 0
    private var diskRecords = 0
    private var diskPayloadBytes = 0

    /// The first unacknowledged sequence number (records below it are gone).
    private(set) var head: UInt64 = 0
    private var persistedHead: UInt64 = 0
    private var acksSincePersist = 0
    private(set) var nextSequence: UInt64 = 0
    private var reservedUpTo: UInt64 = 0
    private(set) var counters = QueueCounters()
    private(set) var isClosed = false

    /// The read window: every segment the queue writes fits in one, and so does any valid record.
    private var windowBytes: Int { limits.maxSegmentBytes }

    private var isDiskMode: Bool { limits.durability == .always || !segments.isEmpty }

    var depth: (messages: Int, bytes: Int) {
        (memory.count + diskRecords, memoryPayloadBytes + diskPayloadBytes)
    }

    /// Bytes of segment files on disk (for tests and the docs' invariants).
    var diskBytesUsed: Int64 { diskFileBytes }
    var segmentCount: Int { segments.count }

    // MARK: - Open and recovery

    static func open(path: FilePath, limits: QueueLimits, writePath: any QueueWritePath) throws(QueueError) -> QueueCore
    {
        if let problem = limits.problem { throw .invalidLimits(problem) }
        let (directory, identity) = try openDirectory(path)
        guard openDirectories.withLock({ $0.insert(identity).inserted }) else {
            try? directory.close()
            throw .inUse(path)
        }
        func abandon(_ lock: FileDescriptor?) {
            if let lock { try? lock.close() }
            try? directory.close()
            _ = openDirectories.withLock { $0.remove(identity) }
        }
        let lock: FileDescriptor
        do throws(Errno) {
            lock = try directory.openAt(
                lockFileName, .readWrite, options: [.create, .noFollow], permissions: .ownerReadWrite)
        } catch {
            abandon(nil)
            throw .io("open the lock file in", path, error)
        }
        let locked: Bool
        do throws(Errno) { locked = try lock.tryLockRecordExclusive() } catch {
            abandon(lock)
            throw .io("lock", path.appending(lockFileName), error)
        }
        guard locked else {
            abandon(lock)
            throw .inUse(path)
        }
        var core = QueueCore(
            path: path, limits: limits, writePath: writePath, directory: directory, lock: lock, identity: identity)
        do throws(QueueError) {
            try core.recover()
        } catch {
            core.closeDescriptors()
            throw error
        }
        return core
    }

    private init(
        path: FilePath, limits: QueueLimits, writePath: any QueueWritePath, directory: FileDescriptor,
        lock: FileDescriptor, identity: DirectoryIdentity
    ) {
        self.identity = identity
        self.path = path
        self.limits = limits
        self.writePath = writePath
        self.directory = directory
        self.lock = lock
    }

    /// Opens (creating with mode 0700 if missing) the queue directory and refuses an insecure one.
    private static func openDirectory(_ path: FilePath) throws(QueueError) -> (FileDescriptor, DirectoryIdentity) {
        do throws(Errno) {
            _ = try Stat(path, followTargetSymlink: false)
        } catch .noSuchFileOrDirectory {
            do throws(Errno) {
                try makeDirectory(path, permissions: .ownerReadWriteExecute)
            } catch where error != .fileExists {
                throw .io("create the queue directory", path, error)
            } catch {}
        } catch {
            throw .io("examine the queue directory", path, error)
        }
        let fd: FileDescriptor
        do throws(Errno) {
            fd = try systemCall {
                try FileDescriptor.open(path, .readOnly, options: [.directory, .noFollow, .closeOnExec])
            }
        } catch where error == .tooManySymbolicLinkLevels || error == .notDirectory {
            throw .insecureDirectory(path, "is a symbolic link or not a directory: use a real directory")
        } catch {
            throw .io("open the queue directory", path, error)
        }
        let stat: Stat
        do throws(Errno) { stat = try systemCall { try fd.stat() } } catch {
            try? fd.close()
            throw .io("examine the queue directory", path, error)
        }
        let user = effectiveUserID
        let mode = UInt32(stat.permissions.rawValue) & 0o7777
        if stat.userID.rawValue != user {
            try? fd.close()
            throw .insecureDirectory(
                path, "is owned by uid \(stat.userID.rawValue), not by the running user (uid \(user)): chown it")
        }
        if mode & 0o077 != 0 {
            try? fd.close()
            throw .insecureDirectory(
                path,
                "has permissions 0\(String(mode, radix: 8)): it must not be accessible by group or others "
                    + "(run: chmod 700 '\(path)')")
        }
        return (fd, DirectoryIdentity(device: UInt64(stat.deviceID.rawValue), inode: UInt64(stat.inode.rawValue)))
    }

    /// Reads the state files, scans and repairs the segments, and reserves a fresh block of sequence numbers.
    private mutating func recover() throws(QueueError) {
        for file in StateFile.allCases { try? directory.unlinkAt(file.temporaryName) }
        let persistedHeadValue = try readStateFile(.head) ?? 0
        let reserved = try readStateFile(.next) ?? 0
        head = persistedHeadValue
        persistedHead = persistedHeadValue

        let names: [String]
        do throws(Errno) { names = try directory.directoryEntries() } catch {
            throw .io("list the queue directory", path, error)
        }
        let segmentNames = names.compactMap { name in SegmentName.parse(name).map { (sequence: $0, name: name) } }
            .sorted { $0.sequence < $1.sequence }
        var lastSeen: UInt64?
        for entry in segmentNames {
            try scanSegment(entry.name, lastSeen: &lastSeen)
        }
        counters.recoveredOnOpen = diskRecords

        // Leave 2^32 numbers of headroom so reservations and `+ 1` can never wrap (only damage gets near it).
        let ceiling = UInt64.max - (1 << 32)
        let afterDisk = lastSeen.map { $0 < ceiling ? $0 + 1 : .max } ?? 0
        let start = max(reserved, afterDisk, head)
        guard start <= ceiling else {
            throw .corruptState(path, "holds sequence numbers too close to 2^64 to continue")
        }
        nextSequence = start
        reservedUpTo = start
        do throws(Errno) { try reserveSequences() } catch {
            throw .io("reserve sequence numbers in", path.appending(StateFile.next.fileName), error)
        }
    }

    /// The value of a state file, `nil` if it does not exist; a damaged file is an error (never guessed around).
    private func readStateFile(_ file: StateFile) throws(QueueError) -> UInt64? {
        let filePath = path.appending(file.fileName)
        let fd: FileDescriptor
        do throws(Errno) {
            fd = try directory.openAt(file.fileName, .readOnly, options: [.noFollow, .nonBlocking])
        } catch .noSuchFileOrDirectory {
            return nil
        } catch {
            throw .io("open", filePath, error)
        }
        defer { try? fd.close() }
        let bytes: [UInt8]
        do throws(Errno) { bytes = try fd.read(at: 0, count: StateFile.byteCount + 1) } catch {
            throw .io("read", filePath, error)
        }
        guard let value = file.decode(bytes) else {
            throw .corruptState(filePath, "is damaged (not a 16-byte \(file.rawValue) file with a valid CRC)")
        }
        return value
    }

    /// Validates one segment file record by record (a window at a time), cuts off a corrupt or torn tail, and
    /// deletes the file if nothing unacknowledged is left in it.
    private mutating func scanSegment(_ name: String, lastSeen: inout UInt64?)
        throws(QueueError)
    {
        let filePath = path.appending(name)
        let fd: FileDescriptor
        do throws(Errno) {
            fd = try directory.openAt(name, .readWrite, options: [.noFollow, .nonBlocking])
        } catch where error == .tooManySymbolicLinkLevels || error == .isDirectory {
            return  // not a regular file: ignored like any foreign name
        } catch {
            throw .io("open segment", filePath, error)
        }
        defer { try? fd.close() }
        let stat: Stat
        do throws(Errno) { stat = try systemCall { try fd.stat() } } catch { throw .io("examine", filePath, error) }
        guard stat.type == .regular else { return }
        let size = stat.size

        var offset: Int64 = 0
        var defect = false
        var first: UInt64?
        var last: UInt64?
        var live = 0
        var livePayload = 0
        scanning: while offset < size {
            let chunk: [UInt8]
            do throws(Errno) { chunk = try fd.read(at: offset, count: Int(min(Int64(windowBytes), size - offset))) }
            catch { throw .io("read segment", filePath, error) }
            var position = 0
            decoding: while position < chunk.count {
                switch QueueRecord.decode(chunk[position...], maxRecordBytes: limits.maxRecordBytes) {
                case .record(let record, let byteCount):
                    if let lastSeen, record.sequence <= lastSeen {
                        defect = true  // sequences must strictly increase across the whole log
                        break decoding
                    }
                    lastSeen = record.sequence
                    if first == nil { first = record.sequence }
                    last = record.sequence
                    if record.sequence >= head {
                        live += 1
                        livePayload += record.bytes.count
                    }
                    position += byteCount
                case .incomplete:
                    if offset + Int64(chunk.count) >= size || position == 0 { defect = true }  // torn tail
                    break decoding
                case .invalid:
                    defect = true
                    break decoding
                }
            }
            offset += Int64(position)
            if defect { break scanning }
        }
        if defect {
            counters.corruptRecordsDiscarded += 1
            counters.corruptBytesDiscarded += Int(size - offset)
            do throws(Errno) {
                try fd.truncate(to: offset)
                try writePath.sync(fd)
            } catch {
                throw .io("cut the corrupt tail off", filePath, error)
            }
        }
        guard live > 0, let first, let last else {
            do throws(Errno) { try directory.unlinkAt(name) } catch {
                throw .io("remove the fully acknowledged segment", filePath, error)
            }
            return
        }
        segments.append(
            Segment(
                fileName: name, firstSequence: first, lastSequence: last, validBytes: offset, liveRecords: live,
                livePayloadBytes: livePayload))
        diskFileBytes += offset
        diskRecords += live
        diskPayloadBytes += livePayload
    }

    // MARK: - State files

    /// Replaces a state file atomically: temporary file, write, fsync, rename, directory fsync.
    private func writeStateFile(_ file: StateFile, _ value: UInt64) throws(Errno) {
        try? directory.unlinkAt(file.temporaryName)
        let fd = try directory.openAt(
            file.temporaryName, .writeOnly, options: [.create, .exclusiveCreate, .noFollow],
            permissions: .ownerReadWrite)
        do throws(Errno) {
            try writePath.write(fd, at: 0, file.encode(value))
            try writePath.sync(fd)
            try systemCall { try fd.close() }
        } catch {
            try? fd.close()
            try? directory.unlinkAt(file.temporaryName)
            throw error
        }
        try directory.renameAt(file.temporaryName, to: file.fileName)
        try writePath.sync(directory)
    }

    /// Reserves the next block of sequence numbers: the `next` file is durable before any of them is handed out.
    private mutating func reserveSequences() throws(Errno) {
        let bound = nextSequence + Self.reservationBlock
        try writeStateFile(.next, bound)
        reservedUpTo = bound
    }

    private mutating func allocateSequence() throws(QueueError) -> UInt64 {
        if nextSequence >= reservedUpTo {
            do throws(Errno) { try reserveSequences() } catch {
                throw .writeFailed("reserve sequence numbers in", path.appending(StateFile.next.fileName), error)
            }
        }
        defer { nextSequence += 1 }
        return nextSequence
    }

    private mutating func persistHead() throws(QueueError) {
        do throws(Errno) { try writeStateFile(.head, head) } catch {
            throw .io("record acknowledged progress in", path.appending(StateFile.head.fileName), error)
        }
        persistedHead = head
        acksSincePersist = 0
    }

    // MARK: - Append

    mutating func append(_ bytes: [UInt8]) throws(QueueError) -> AppendResult {
        guard !isClosed else { throw .closed() }
        guard bytes.count <= limits.maxRecordBytes else {
            counters.refusedOversize += 1
            throw .recordTooLarge(bytes.count, limit: limits.maxRecordBytes)
        }
        let record: QueuedRecord
        do throws(QueueError) {
            record = QueuedRecord(sequence: try allocateSequence(), bytes: bytes)
        } catch {
            counters.writeFailures += 1
            throw error
        }
        let encoded = QueueRecord.encodedByteCount(payloadCount: bytes.count)
        var dropped: DroppedRecords?
        if isDiskMode {
            dropped = try appendToDisk(record)
        } else if memory.count < limits.memoryMessages && memoryBytes + encoded <= limits.memoryBytes {
            pushMemory(record)
        } else if limits.diskBytes == 0 {
            // Memory-only queue: drop the oldest until the record fits (a lone record may exceed memoryBytes).
            while let oldest = memory.first,
                memory.count >= limits.memoryMessages || memoryBytes + encoded > limits.memoryBytes
            {
                _ = memory.popFirst()
                memoryBytes -= QueueRecord.encodedByteCount(payloadCount: oldest.bytes.count)
                memoryPayloadBytes -= oldest.bytes.count
                counters.droppedOldest += 1
                let one = DroppedRecords(count: 1, firstSequence: oldest.sequence, lastSequence: oldest.sequence)
                if dropped == nil { dropped = one } else { dropped!.merge(one) }
            }
            pushMemory(record)
        } else {
            try spillMemory(adding: record)
        }
        counters.appended += 1
        if let dropped { return .storedDroppingOldest(sequence: record.sequence, dropped: dropped) }
        return .stored(sequence: record.sequence)
    }

    private mutating func pushMemory(_ record: QueuedRecord) {
        memory.append(record)
        memoryBytes += QueueRecord.encodedByteCount(payloadCount: record.bytes.count)
        memoryPayloadBytes += record.bytes.count
    }

    /// Writes every memory record (and `record`, if given) to a new segment with one write and one fsync, then
    /// empties memory. Only called with an empty disk log, so the batch (≤ memoryBytes + one record ≤ one segment)
    /// always fits. On failure nothing changes (the new file is removed) and the error is thrown.
    private mutating func spillMemory(adding record: QueuedRecord?) throws(QueueError) {
        precondition(segments.isEmpty && tail == nil, "EdgeQueue: spill with a non-empty disk log")
        var records = Array(memory.elements)
        if let record { records.append(record) }
        guard let first = records.first else { return }
        var batch: [UInt8] = []
        let extra = record.map { QueueRecord.encodedByteCount(payloadCount: $0.bytes.count) } ?? 0
        batch.reserveCapacity(memoryBytes + extra)
        for item in records { QueueRecord.encode(sequence: item.sequence, payload: item.bytes, into: &batch) }

        let name = SegmentName.format(first.sequence)
        let fd: FileDescriptor
        do throws(Errno) {
            fd = try createSegmentFile(name)
            do throws(Errno) {
                try writePath.write(fd, at: 0, batch)
                try writePath.sync(fd)
                try writePath.sync(directory)
            } catch {
                try? fd.close()
                try? directory.unlinkAt(name)
                throw error
            }
        } catch {
            counters.writeFailures += record == nil ? 0 : 1
            throw .writeFailed("spill queued records to", path.appending(name), error)
        }
        let payload = records.reduce(0) { $0 + $1.bytes.count }
        segments = [
            Segment(
                fileName: name, firstSequence: first.sequence, lastSequence: records.last!.sequence,
                validBytes: Int64(batch.count), liveRecords: records.count, livePayloadBytes: payload)
        ]
        tail = fd
        diskFileBytes = Int64(batch.count)
        diskRecords = records.count
        diskPayloadBytes = payload
        var fresh = HeadWindow()
        fresh.loaded = true
        for item in records { fresh.records.append(item) }
        fresh.nextOffset = Int64(batch.count)
        window = fresh
        memory.removeAll()
        memoryBytes = 0
        memoryPayloadBytes = 0
        counters.spills += 1
    }

    private func createSegmentFile(_ name: String) throws(Errno) -> FileDescriptor {
        try directory.openAt(
            name, .readWrite, options: [.create, .exclusiveCreate, .noFollow], permissions: .ownerReadWrite)
    }

    /// Appends one record to the tail segment (write + fsync), first dropping the oldest segments while the disk
    /// cap would be exceeded, and starting a new segment when the tail is full.
    private mutating func appendToDisk(_ record: QueuedRecord) throws(QueueError) -> DroppedRecords? {
        let encoded = QueueRecord.encode(sequence: record.sequence, payload: record.bytes)
        var dropped: DroppedRecords?
        while !segments.isEmpty && diskFileBytes + Int64(encoded.count) > Int64(limits.diskBytes) {
            if let more = removeOldestSegment(countingAs: .dropped) {
                if dropped == nil { dropped = more } else { dropped!.merge(more) }
            }
        }
        var created = false
        if tail == nil || (segments.last!.validBytes > 0
            && segments.last!.validBytes + Int64(encoded.count) > Int64(limits.segmentBytes))
        {
            if let old = tail { try? old.close() }
            tail = nil
            let name = SegmentName.format(record.sequence)
            do throws(Errno) {
                tail = try createSegmentFile(name)
            } catch {
                counters.writeFailures += 1
                throw .writeFailed("create segment", path.appending(name), error)
            }
            if segments.isEmpty {
                var fresh = HeadWindow()
                fresh.loaded = true
                window = fresh
            }
            segments.append(
                Segment(
                    fileName: name, firstSequence: record.sequence, lastSequence: record.sequence, validBytes: 0,
                    liveRecords: 0, livePayloadBytes: 0))
            created = true
        }
        let fd = tail!
        let index = segments.count - 1
        let offset = segments[index].validBytes
        do throws(Errno) {
            try writePath.write(fd, at: offset, encoded)
            try writePath.sync(fd)
            if created { try writePath.sync(directory) }
        } catch {
            counters.writeFailures += 1
            let name = segments[index].fileName
            if created {
                try? fd.close()
                tail = nil
                try? directory.unlinkAt(name)
                segments.removeLast()
                if segments.isEmpty { window = HeadWindow() }
            } else {
                do throws(Errno) {
                    try fd.truncate(to: offset)
                } catch {
                    try? fd.close()  // cannot undo the partial write: seal the segment, later appends start a new one
                    tail = nil
                }
            }
            throw .writeFailed("append a record to", path.appending(name), error)
        }
        segments[index].lastSequence = record.sequence
        segments[index].validBytes += Int64(encoded.count)
        segments[index].liveRecords += 1
        segments[index].livePayloadBytes += record.bytes.count
        diskFileBytes += Int64(encoded.count)
        diskRecords += 1
        diskPayloadBytes += record.bytes.count
        if index == 0 && window.loaded && window.nextOffset == offset {
            window.records.append(record)
            window.nextOffset = offset + Int64(encoded.count)
        }
        return dropped
    }

    private enum Removal { case acknowledged, dropped, corrupt }

    /// Deletes the oldest segment and accounts for its remaining records; returns them if there were any.
    @discardableResult
    private mutating func removeOldestSegment(countingAs removal: Removal) -> DroppedRecords? {
        let segment = segments.removeFirst()
        if segments.isEmpty, let fd = tail {
            try? fd.close()
            tail = nil
        }
        // A failed unlink only leaves an acknowledged file behind; `head` (persisted on close) skips it on reopen.
        try? directory.unlinkAt(segment.fileName)
        let firstLive = window.loaded ? window.records.first?.sequence : nil
        window = HeadWindow()
        diskFileBytes -= segment.validBytes
        diskRecords -= segment.liveRecords
        diskPayloadBytes -= segment.livePayloadBytes
        switch removal {
        case .acknowledged: counters.acknowledged += segment.liveRecords
        case .dropped: counters.droppedOldest += segment.liveRecords
        case .corrupt: counters.corruptRecordsDiscarded += segment.liveRecords
        }
        if segment.lastSequence >= head { head = segment.lastSequence + 1 }
        guard segment.liveRecords > 0 else { return nil }
        return DroppedRecords(
            count: segment.liveRecords, firstSequence: firstLive ?? max(head, segment.firstSequence),
            lastSequence: segment.lastSequence)
    }

    // MARK: - Reading the disk log

    /// Loads the next window of the oldest segment. On a record that no longer decodes (damaged since open), the
    /// rest of the segment is discarded and counted; the segment is sealed.
    private mutating func loadHeadWindow() throws(QueueError) {
        let segment = segments[0]
        let offset = window.loaded ? window.nextOffset : 0
        let wanted = Int(min(Int64(windowBytes), segment.validBytes - offset))
        let filePath = path.appending(segment.fileName)
        let chunk: [UInt8]
        do throws(Errno) {
            let fd = try directory.openAt(segment.fileName, .readOnly, options: [.noFollow, .nonBlocking])
            defer { try? fd.close() }
            chunk = try fd.read(at: offset, count: wanted)
        } catch {
            throw .io("read segment", filePath, error)
        }
        var position = 0
        var kept: [QueuedRecord] = []
        var defect = chunk.count < wanted
        decoding: while position < chunk.count {
            switch QueueRecord.decode(chunk[position...], maxRecordBytes: limits.maxRecordBytes) {
            case .record(let record, let byteCount):
                if record.sequence >= head { kept.append(record) }
                position += byteCount
            case .incomplete(let needed):
                if offset + Int64(position + needed) > segment.validBytes || position == 0 { defect = true }
                break decoding
            case .invalid:
                defect = true
                break decoding
            }
        }
        if !window.loaded { window = HeadWindow(loaded: true, records: RecordFIFO(), nextOffset: 0) }
        for record in kept { window.records.append(record) }
        window.nextOffset = offset + Int64(position)
        guard defect else { return }

        // Damaged since it was written: keep what decoded, discard (and count) the rest of this segment.
        let badOffset = offset + Int64(position)
        let discarded = segment.liveRecords - window.records.count  // every live record at or after badOffset
        counters.corruptRecordsDiscarded += max(0, discarded)
        counters.corruptBytesDiscarded += Int(segment.validBytes - badOffset)
        if segments.count == 1, let fd = tail {
            try? fd.close()
            tail = nil
        }
        if let fd = try? directory.openAt(segment.fileName, .writeOnly, options: [.noFollow, .nonBlocking]) {
            try? fd.truncate(to: badOffset)
            try? fd.close()
        }
        let keptPayload = window.records.elements.reduce(0) { $0 + $1.bytes.count }
        diskFileBytes -= segment.validBytes - badOffset
        diskRecords -= segment.liveRecords - window.records.count
        diskPayloadBytes -= segment.livePayloadBytes - keptPayload
        segments[0].validBytes = badOffset
        segments[0].liveRecords = window.records.count
        segments[0].livePayloadBytes = keptPayload
        if let last = window.records.elements.last {
            segments[0].lastSequence = last.sequence
        } else {
            removeOldestSegment(countingAs: .corrupt)
        }
    }

    /// Makes the head window hold the oldest unacknowledged disk record, if there is one.
    private mutating func fillHeadWindow() throws(QueueError) {
        while let segment = segments.first {
            if !window.loaded || (window.records.isEmpty && window.nextOffset < segment.validBytes) {
                try loadHeadWindow()
                continue
            }
            if window.records.isEmpty {
                removeOldestSegment(countingAs: .acknowledged)  // nothing live left in it
                continue
            }
            return
        }
    }

    /// Decodes the live records of `segment` from `offset` on, appending to `result` until it holds `max`.
    /// Does not cache and stops quietly at damage (handled when the segment becomes the oldest).
    private func readAhead(
        _ segment: Segment, from offset: Int64, into result: inout [QueuedRecord], max: Int, minimumSequence: UInt64 = 0
    ) throws(QueueError) {
        guard offset < segment.validBytes else { return }
        let filePath = path.appending(segment.fileName)
        let fd: FileDescriptor
        do throws(Errno) {
            fd = try directory.openAt(segment.fileName, .readOnly, options: [.noFollow, .nonBlocking])
        } catch {
            throw .io("read segment", filePath, error)
        }
        defer { try? fd.close() }
        var offset = offset
        while offset < segment.validBytes && result.count < max {
            let chunk: [UInt8]
            do throws(Errno) {
                chunk = try fd.read(at: offset, count: Int(min(Int64(windowBytes), segment.validBytes - offset)))
            } catch {
                throw .io("read segment", filePath, error)
            }
            var position = 0
            decoding: while position < chunk.count && result.count < max {
                guard case .record(let record, let byteCount) = QueueRecord.decode(
                    chunk[position...], maxRecordBytes: limits.maxRecordBytes)
                else { break decoding }
                if record.sequence >= head && record.sequence >= minimumSequence { result.append(record) }
                position += byteCount
            }
            if position == 0 { return }
            offset += Int64(position)
        }
    }

    // MARK: - Peek and acknowledge

    mutating func peek(max: Int) throws(QueueError) -> [QueuedRecord] {
        try peek(after: nil, max: max)
    }

    /// Up to `max` of the unacknowledged records numbered after `after` (all of them for nil), oldest first: what a
    /// sender with records in flight reads next. Segments that end at or before `after` are not read.
    mutating func peek(after: UInt64?, max: Int) throws(QueueError) -> [QueuedRecord] {
        guard !isClosed, max > 0 else { return [] }
        let from: UInt64
        if let after {
            guard after < .max else { return [] }
            from = after + 1
        } else {
            from = 0
        }
        guard isDiskMode else { return Array(memory.elements(from: from).prefix(max)) }
        try fillHeadWindow()
        guard let oldest = segments.first else { return [] }
        var result = Array(window.records.elements(from: from).prefix(max))
        if result.count < max && oldest.lastSequence >= from {
            try readAhead(oldest, from: window.nextOffset, into: &result, max: max, minimumSequence: from)
        }
        for segment in segments.dropFirst() where result.count < max && segment.lastSequence >= from {
            try readAhead(segment, from: 0, into: &result, max: max, minimumSequence: from)
        }
        return result
    }

    mutating func acknowledge(through sequence: UInt64) throws(QueueError) {
        guard !isClosed else { throw .closed() }
        guard sequence >= head else { return }  // already acknowledged (or dropped): harmless
        // Never beyond what was handed out, so a later record can never hide below `head`.
        let newHead = min(sequence == .max ? .max : sequence + 1, nextSequence)
        guard newHead > head else { return }
        while let oldest = memory.first, oldest.sequence < newHead {
            _ = memory.popFirst()
            memoryBytes -= QueueRecord.encodedByteCount(payloadCount: oldest.bytes.count)
            memoryPayloadBytes -= oldest.bytes.count
            counters.acknowledged += 1
        }
        let before = counters.acknowledged
        while let segment = segments.first {
            if segment.lastSequence < newHead {
                removeOldestSegment(countingAs: .acknowledged)
                continue
            }
            if !window.loaded || (window.records.isEmpty && window.nextOffset < segment.validBytes) {
                try loadHeadWindow()
                continue
            }
            if window.records.isEmpty {
                removeOldestSegment(countingAs: .acknowledged)
                continue
            }
            while let oldest = window.records.first, oldest.sequence < newHead {
                _ = window.records.popFirst()
                segments[0].liveRecords -= 1
                segments[0].livePayloadBytes -= oldest.bytes.count
                diskRecords -= 1
                diskPayloadBytes -= oldest.bytes.count
                counters.acknowledged += 1
            }
            if window.records.isEmpty && window.nextOffset < segments[0].validBytes { continue }
            break
        }
        head = max(head, newHead)
        if segments.isEmpty {
            acksSincePersist = 0  // nothing on disk: the head file is irrelevant until the next spill
        } else {
            acksSincePersist += counters.acknowledged - before
            if acksSincePersist >= Self.headPersistInterval { try persistHead() }
        }
    }

    // MARK: - Close

    /// Writes memory records to disk (`.spill`), persists `head`, and releases the directory.
    mutating func close() throws(QueueError) {
        guard !isClosed else { return }
        var failure: QueueError?
        if !memory.isEmpty && limits.diskBytes > 0 {
            do throws(QueueError) { try spillMemory(adding: nil) } catch { failure = error }
        }
        if !segments.isEmpty && head != persistedHead {
            do throws(QueueError) { try persistHead() } catch { failure = failure ?? error }
        }
        // Hand the unused part of the reservation back: after a clean close the next open continues at the true
        // next number, so sequences have gaps only after a crash.
        if nextSequence < reservedUpTo {
            do throws(Errno) {
                try writeStateFile(.next, nextSequence)
                reservedUpTo = nextSequence
            } catch {
                failure = failure ?? .io("write", path.appending(StateFile.next.fileName), error)
            }
        }
        closeDescriptors()
        if let failure { throw failure }
    }

    /// Closes every descriptor without writing anything (what a crash does; used by `deinit`).
    mutating func closeDescriptors() {
        guard !isClosed else { return }
        isClosed = true
        if let fd = tail { try? fd.close() }
        tail = nil
        try? lock.close()  // releases the POSIX lock before the registry entry
        try? directory.close()
        _ = Self.openDirectories.withLock { $0.remove(identity) }
        memory.removeAll()
        window = HeadWindow()
    }
}
