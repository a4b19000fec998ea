// EdgeQueueTests/QueueFormatTests: CRC-32C, the record codec, state files, segment names and the documented bytes.
import EdgeTestSupport
import Foundation
import Testing

@testable import EdgeQueue

@Suite("Store-and-forward queue formats", .cpuBound)
struct QueueFormatTests {
    /// The worked example of docs/store-and-forward.md: sequence 1, payload "hi".
    static let workedExample = "51 01 00 00 00 00 00 00 00 02 00 00 00 68 69 9b 7a 86 4c"

    @Test("CRC-32C check value")
    func crcCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
    }

    @Test("record encoding matches the documented bytes and decodes back")
    func workedExample() throws {
        let encoded = QueueRecord.encode(sequence: 1, payload: Array("hi".utf8))
        #expect(encoded == [UInt8](hex: Self.workedExample))
        let decoded = QueueRecord.decode(encoded[...], maxRecordBytes: 2)
        #expect(decoded == .record(QueuedRecord(sequence: 1, bytes: Array("hi".utf8)), byteCount: 19))
        // The docs carry the same bytes.
        let docs = try String(
            contentsOf: TestData.packageRoot.appendingPathComponent("docs/store-and-forward.md"), encoding: .utf8)
        #expect(docs.contains(Self.workedExample))
        #expect(docs.contains(StateFile.head.encode(1).hexString.spaced))
        #expect(docs.contains(StateFile.next.encode(4096).hexString.spaced))
    }

    @Test("decoding rejects bad magic, over-limit lengths (before reading the payload) and bad CRCs")
    func defects() {
        let good = QueueRecord.encode(sequence: 7, payload: [1, 2, 3])
        var bad = good
        bad[0] = 0x52
        #expect(QueueRecord.decode(bad[...], maxRecordBytes: 64) == .invalid(.badMagic(0x52)))
        // A header announcing 4 GiB: refused from the 13 header bytes alone.
        let huge: [UInt8] = [0x51, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        #expect(
            QueueRecord.decode(huge[...], maxRecordBytes: 65_536)
                == .invalid(.lengthOverLimit(length: 0xFFFF_FFFF, limit: 65_536)))
        #expect(QueueRecord.decode(good[...], maxRecordBytes: 2) == .invalid(.lengthOverLimit(length: 3, limit: 2)))
        bad = good
        bad[14] ^= 1
        guard case .invalid(.checksumMismatch) = QueueRecord.decode(bad[...], maxRecordBytes: 64) else {
            Issue.record("flipped payload byte not detected")
            return
        }
        #expect(QueueRecord.decode(good.dropLast()[...], maxRecordBytes: 64) == .incomplete(needed: 20))
        #expect(QueueRecord.decode(good.prefix(5), maxRecordBytes: 64) == .incomplete(needed: 13))
        #expect(QueueRecord.decode([][...], maxRecordBytes: 64) == .incomplete(needed: 13))
        // Slices that do not start at index 0 decode the same.
        let padded = [0xAA] + good
        let direct = QueueRecord.decode(good[...], maxRecordBytes: 64)
        #expect(QueueRecord.decode(padded[1...], maxRecordBytes: 64) == direct)
    }

    @Test("state files round-trip and refuse damage")
    func stateFiles() {
        for file in StateFile.allCases {
            let bytes = file.encode(0x0102_0304_0506_0708)
            #expect(bytes.count == 16)
            #expect(file.decode(bytes) == 0x0102_0304_0506_0708)
            for index in bytes.indices {
                var damaged = bytes
                damaged[index] ^= 0x04
                #expect(file.decode(damaged) == nil)
            }
            #expect(file.decode(bytes + [0]) == nil)
        }
        #expect(StateFile.next.decode(StateFile.head.encode(1)) == nil)
    }

    @Test("segment names: 20-digit zero-padded first sequence; anything else is not a segment")
    func segmentNames() {
        #expect(SegmentName.format(42) == "seg-00000000000000000042.q")
        #expect(SegmentName.format(.max) == "seg-18446744073709551615.q")
        #expect(SegmentName.parse("seg-00000000000000000042.q") == 42)
        #expect(SegmentName.parse("seg-18446744073709551615.q") == .max)
        for name in ["seg-99999999999999999999.q", "seg-0000000000000000042.q", "seg-0000000000000000004x.q",
                     "seg-00000000000000000042.q.tmp", "xseg-0000000000000000042.q", "lock", "head"] {
            #expect(SegmentName.parse(name) == nil, "\(name)")
        }
    }
}

extension String {
    /// "a1b2" → "a1 b2".
    var spaced: String {
        var out = ""
        for (index, character) in enumerated() {
            if index > 0 && index % 2 == 0 { out.append(" ") }
            out.append(character)
        }
        return out
    }
}
