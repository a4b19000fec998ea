// EdgeFuzz/QueueTargets: the store-and-forward queue's record codec and crash recovery.
import EdgeQueue
import SystemPackage

extension FuzzTargets {
    /// The limit the queue targets decode with (small, so over-limit lengths are easy to reach).
    static let queueMaxRecordBytes = 1024

    /// Whether the input starts with a valid record (for `accepts`).
    static func queueRecordAccepts(_ input: [UInt8]) -> Bool {
        if case .record = QueueRecord.decode(input[...], maxRecordBytes: queueMaxRecordBytes) { return true }
        return false
    }

    /// Decoding never goes over the limit; decode → encode reproduces the input's record bytes; decoding the
    /// re-encoding gives the same record.
    static func queueRecord(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        var offset = 0
        var records = 0
        while offset < input.count, records < 64 {
            guard case .record(let record, let byteCount) = QueueRecord.decode(
                input[offset...], maxRecordBytes: queueMaxRecordBytes)
            else { return }
            try check(record.bytes.count <= queueMaxRecordBytes, "payload over the limit")
            try check(byteCount == QueueRecord.encodedByteCount(payloadCount: record.bytes.count), "byte count")
            let encoded = QueueRecord.encode(sequence: record.sequence, payload: record.bytes)
            try check(encoded[...] == input[offset..<(offset + byteCount)], "re-encoding differs from the input")
            try check(
                QueueRecord.decode(encoded[...], maxRecordBytes: queueMaxRecordBytes)
                    == .record(record, byteCount: byteCount), "decode → encode → decode changed the record")
            offset += byteCount
            records += 1
        }
    }

    /// The input as a segment file: opening the queue must succeed; recovered records have increasing sequences
    /// and are exactly the valid prefix of the input; the repaired file decodes completely to them; a new append
    /// gets a larger sequence and survives a reopen.
    static func queueRecovery(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        let limits = QueueLimits(
            memoryMessages: 8, memoryBytes: 2048, diskBytes: 16 << 10, segmentBytes: 2048,
            maxRecordBytes: queueMaxRecordBytes, durability: .always)
        // The valid prefix, decoded independently of the queue's scan.
        var expected: [QueuedRecord] = []
        var offset = 0
        while case .record(let record, let byteCount) = QueueRecord.decode(
            input[offset...], maxRecordBytes: queueMaxRecordBytes),
            expected.last.map({ record.sequence > $0.sequence }) ?? true
        {
            expected.append(record)
            offset += byteCount
        }
        let segmentName = "seg-00000000000000000000.q"
        let result: Result<Void, FuzzInvariantViolation> = withScratchQueueDirectory { directory in
            let queuePath = directory.appending("q")
            do throws(FuzzInvariantViolation) {
                try writeSegment(queuePath, segmentName, input)
                let recovered: [QueuedRecord]
                let appended: UInt64
                do {
                    let queue = try StoreAndForwardQueue.open(
                        directory: queuePath, limits: limits, writePath: UnsyncedWritePath())
                    recovered = try queue.peek(max: Int.max)
                    let counters = queue.counters
                    try check(counters.recoveredOnOpen == recovered.count, "recoveredOnOpen miscounted")
                    try check(
                        counters.corruptRecordsDiscarded == (offset < input.count ? 1 : 0), "corruption miscounted")
                    appended = try queue.append([0x42]).sequence
                    try queue.close()
                } catch let error as FuzzInvariantViolation {
                    throw error
                } catch let error as QueueError
                    where error.code == .corruptState && (expected.last?.sequence ?? 0) > UInt64.max - (1 << 33)
                {
                    return .success(())  // sequences too close to 2^64 to continue: refused, by design
                } catch {
                    throw FuzzInvariantViolation(description: "queue failed on a segment file: \(error)")
                }
                try check(recovered == expected, "recovered records are not the input's valid prefix")
                try check(appended > (expected.last?.sequence ?? 0) || expected.isEmpty, "sequence reused")
                if !expected.isEmpty {
                    let repaired = readSegment(queuePath.appending(segmentName))
                    try check(repaired.count == offset, "repaired segment is not the valid prefix")
                }
                do {
                    let queue = try StoreAndForwardQueue.open(
                        directory: queuePath, limits: limits, writePath: UnsyncedWritePath())
                    let again = try queue.peek(max: Int.max)
                    try check(again == expected + [QueuedRecord(sequence: appended, bytes: [0x42])], "reopen differs")
                    try check(queue.counters.corruptRecordsDiscarded == 0, "repaired log is still corrupt")
                    try queue.close()
                } catch let error as FuzzInvariantViolation {
                    throw error
                } catch {
                    throw FuzzInvariantViolation(description: "reopen failed: \(error)")
                }
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    private static func writeSegment(_ queuePath: FilePath, _ name: String, _ bytes: [UInt8])
        throws(FuzzInvariantViolation)
    {
        do {
            _ = queuePath.withPlatformString { mkdirQueue($0) }
            let fd = try FileDescriptor.open(
                queuePath.appending(name), .writeOnly, options: [.create, .exclusiveCreate],
                permissions: .ownerReadWrite)
            try fd.closeAfter { _ = try fd.writeAll(bytes) }
        } catch {
            throw FuzzInvariantViolation(description: "fuzz setup failed: \(error)")
        }
    }

    private static func readSegment(_ path: FilePath) -> [UInt8] {
        guard let fd = try? FileDescriptor.open(path, .readOnly) else { return [] }
        defer { try? fd.close() }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while let count = try? chunk.withUnsafeMutableBytes({ try fd.read(into: $0) }), count > 0 {
            bytes += chunk[..<count]
        }
        return bytes
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `mkdir(path, 0700)`.
private func mkdirQueue(_ path: UnsafePointer<CChar>) -> Int32 { mkdir(path, 0o700) }
