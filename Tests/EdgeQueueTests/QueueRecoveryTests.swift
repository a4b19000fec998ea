// EdgeQueueTests/QueueRecoveryTests: damaged files, foreign names, insecure directories and injected write failures.
import EdgeTestSupport
import Foundation
import SystemPackage
import Testing

@testable import EdgeQueue

#if canImport(Glibc)
import Glibc
#endif

@Suite("Store-and-forward queue recovery", .cpuBound)
struct QueueRecoveryTests {
    static let always = smallLimits(durability: .always)

    /// Appends `count` 16-byte records in `.always` mode and "crashes" (no close); returns them.
    func writeRecords(_ path: FilePath, count: Int, limits: QueueLimits = always) throws -> [QueuedRecord] {
        let queue = try StoreAndForwardQueue.open(directory: path, limits: limits, writePath: FaultInjector())
        var records: [QueuedRecord] = []
        for tag in 0..<count {
            let bytes = payload(UInt64(tag))
            records.append(QueuedRecord(sequence: try queue.append(bytes).sequence, bytes: bytes))
        }
        return records
    }

    @Test("a torn tail (short last record) is cut off and counted; its sequence is not reused")
    func truncatedTail() throws {
        try withQueuePath { path in
            let records = try writeRecords(path, count: 5)  // 5 × 33 = 165 bytes: one segment
            let segment = path.appending(try #require(try segmentFiles(path).first))
            let bytes = try readFile(segment)
            #expect(bytes.count == 165)
            try writeFile(segment, Array(bytes.dropLast(3)))

            let queue = try StoreAndForwardQueue.open(directory: path, limits: Self.always)
            #expect(try queue.all() == Array(records.prefix(4)))
            #expect(queue.counters.corruptRecordsDiscarded == 1)
            #expect(queue.counters.corruptBytesDiscarded == 30)
            #expect(queue.counters.recoveredOnOpen == 4)
            #expect(try readFile(segment).count == 132)
            #expect(try queue.append([1]).sequence > records[4].sequence)
            try queue.close()
        }
    }

    @Test("a flipped byte mid-segment: that record and the rest of its segment are discarded; later segments kept")
    func flippedByte() throws {
        try withQueuePath { path in
            let records = try writeRecords(path, count: 12)  // 7 per 256-byte segment: two segments
            let files = try segmentFiles(path)
            #expect(files.count == 2)
            let first = path.appending(files[0])
            var bytes = try readFile(first)
            bytes[2 * 33 + 20] ^= 0x01  // payload of the third record
            try writeFile(first, bytes)

            let queue = try StoreAndForwardQueue.open(directory: path, limits: Self.always)
            let expected = Array(records.prefix(2)) + Array(records[7...])
            #expect(try queue.all() == expected)
            #expect(queue.counters.corruptRecordsDiscarded == 1)
            #expect(queue.counters.corruptBytesDiscarded == bytes.count - 66)
            try queue.close()
        }
    }

    @Test("damage found after open (while reading) discards the rest of the segment, counting exact records")
    func damageAfterOpen() throws {
        try withQueuePath { path in
            let records = try writeRecords(path, count: 12)
            let queue = try StoreAndForwardQueue.open(directory: path, limits: Self.always)
            #expect(queue.depth.messages == 12)
            // The second segment is not read until it is the oldest.
            let second = path.appending(try segmentFiles(path)[1])
            var bytes = try readFile(second)
            bytes[33 + 5] ^= 0x80  // sequence field of its second record
            try writeFile(second, bytes)
            try queue.acknowledge(through: records[6].sequence)
            #expect(try queue.all() == [records[7]])
            #expect(queue.counters.corruptRecordsDiscarded == 4)  // records 8…11
            #expect(queue.depth.messages == 1)
            #expect(try queue.append([1]).sequence > records[11].sequence)
            try queue.close()
        }
    }

    @Test("foreign file names, non-regular entries and stale temporary files are ignored")
    func foreignNames() throws {
        try withQueuePath { path in
            let records = try writeRecords(path, count: 3)
            for name in ["notes.txt", "seg-abc.q", "seg-00000000000000000001.q.bak", "seg-99999999999999999999.q"] {
                try writeFile(path.appending(name), [1, 2, 3])
            }
            try FileManager.default.createDirectory(
                atPath: path.appending("seg-00000000000000000500.q").string, withIntermediateDirectories: false)
            try writeFile(path.appending(".tmp-head"), [0])
            let queue = try StoreAndForwardQueue.open(directory: path, limits: Self.always)
            #expect(try queue.all() == records)
            #expect(queue.counters.corruptRecordsDiscarded == 0)
            #expect(try readFile(path.appending("notes.txt")) == [1, 2, 3])
            #expect(!FileManager.default.fileExists(atPath: path.appending(".tmp-head").string))
            try queue.close()
        }
    }

    @Test("a group/world-accessible directory or a symbolic link is refused with the fix")
    func insecureDirectory() throws {
        try withQueuePath { path in
            try FileManager.default.createDirectory(
                atPath: path.string, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
            #expect(Glibc.chmod(path.string, 0o755) == 0)
            let error = expectQueueError(.insecureDirectory) {
                _ = try StoreAndForwardQueue.open(directory: path, limits: smallLimits())
            }
            #expect(error?.description.contains("chmod 700") == true)
            #expect(Glibc.chmod(path.string, 0o700) == 0)
            try StoreAndForwardQueue.open(directory: path, limits: smallLimits()).close()

            let link = path.removingLastComponent().appending("link")
            #expect(symlink(path.string, link.string) == 0)
            _ = expectQueueError(.insecureDirectory) {
                _ = try StoreAndForwardQueue.open(directory: link, limits: smallLimits())
            }
        }
    }

    @Test("a new directory is created 0700 with 0600 files")
    func modes() throws {
        try withQueuePath { path in
            _ = try writeRecords(path, count: 1)
            func mode(_ name: String?) throws -> Int {
                let target = name.map { path.appending($0) } ?? path
                let attributes = try FileManager.default.attributesOfItem(atPath: target.string)
                return (attributes[.posixPermissions] as? Int ?? -1) & 0o777
            }
            #expect(try mode(nil) == 0o700)
            for name in try FileManager.default.contentsOfDirectory(atPath: path.string) {
                #expect(try mode(name) == 0o600, "\(name)")
            }
        }
    }

    @Test("a damaged next or head file is refused (sequence numbers cannot be continued safely)")
    func damagedStateFile() throws {
        for name in ["next", "head"] {
            try withQueuePath { path in
                try StoreAndForwardQueue.open(directory: path, limits: smallLimits()).close()
                try writeFile(path.appending(name), StateFile.head.encode(7).map { $0 ^ 0x10 })
                let error = expectQueueError(.corruptState) {
                    _ = try StoreAndForwardQueue.open(directory: path, limits: smallLimits())
                }
                #expect(error?.path == path.appending(name))
            }
        }
    }

    @Test("ENOSPC on a disk append: typed error, record not stored, partial write undone, queue still usable")
    func noSpaceOnAppend() throws {
        try withQueuePath { path in
            let faults = FaultInjector()
            let queue = try StoreAndForwardQueue.open(directory: path, limits: Self.always, writePath: faults)
            let first = try queue.append(payload(1))
            faults.failNextWrite(.noSpace)
            let error = expectQueueError(.writeFailed) { _ = try queue.append(payload(2)) }
            #expect(error?.errno == .noSpace)
            #expect(error?.description.contains("not stored") == true)
            #expect(queue.counters.writeFailures == 1)
            #expect(queue.counters.appended == 1)
            let third = try queue.append(payload(3))
            let expected = [QueuedRecord(sequence: first.sequence, bytes: payload(1)),
                            QueuedRecord(sequence: third.sequence, bytes: payload(3))]
            #expect(try queue.all() == expected)
            faults.failNextSync(.ioError)
            _ = expectQueueError(.writeFailed) { _ = try queue.append(payload(4)) }
            #expect(try queue.all() == expected)
            // After a crash the file holds exactly the stored records (no half record in between).
            let reopened: [QueuedRecord]
            do {
                _ = consume queue
                let again = try StoreAndForwardQueue.open(directory: path, limits: Self.always)
                reopened = try again.all()
                #expect(again.counters.corruptRecordsDiscarded == 0)
                try again.close()
            }
            #expect(reopened == expected)
        }
    }

    @Test("ENOSPC while spilling: memory records are kept, the new record is refused, the next append spills")
    func noSpaceOnSpill() throws {
        try withQueuePath { path in
            let faults = FaultInjector()
            let queue = try StoreAndForwardQueue.open(directory: path, limits: smallLimits(), writePath: faults)
            var expected: [QueuedRecord] = []
            for tag in 0..<4 {
                let bytes = payload(UInt64(tag))
                expected.append(QueuedRecord(sequence: try queue.append(bytes).sequence, bytes: bytes))
            }
            faults.failNextWrite(.noSpace)
            _ = expectQueueError(.writeFailed) { _ = try queue.append(payload(4)) }
            #expect(try queue.all() == expected)
            #expect(try segmentFiles(path).isEmpty)
            #expect(queue.counters.spills == 0)
            let bytes = payload(5)
            expected.append(QueuedRecord(sequence: try queue.append(bytes).sequence, bytes: bytes))
            #expect(queue.counters.spills == 1)
            #expect(try queue.all() == expected)
            try queue.close()
        }
    }
}
