// BARE / ULEB128 as pinned by Ockam (`ockam_core/src/bare.rs`) and serde_bare strings (spec §0.1).
import EdgeTestSupport
import EdgeWire
import Testing

@Suite("BARE and ULEB128")
struct BARETests {
    private static func readVarint(_ hex: String) throws(WireError) -> (value: UInt64, consumed: Int) {
        let input = [UInt8](hex: hex)[...]
        var position = input.startIndex
        let value = try BARE.readVarint(input, at: &position)
        return (value, position - input.startIndex)
    }

    static let varintCases: [(UInt64, String)] = [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (255, "ff01"),
        (300, "ac02"),
        (16383, "ff7f"),
        (16384, "808001"),
        (62526, "bee803"),
        (UInt64(UInt32.max), "ffffffff0f"),
        (1 << 63, "80808080808080808001"),
        (UInt64.max - 1, "feffffffffffffffff01"),
        (UInt64.max, "ffffffffffffffffff01"),
    ]

    @Test("ULEB128 encoding and decoding", arguments: varintCases)
    func varint(value: UInt64, hex: String) throws {
        #expect(BARE.varint(value).hexString == hex)
        var out: [UInt8] = [0xee]
        BARE.writeVarint(value, into: &out)
        #expect(out.hexString == "ee" + hex)
        let (decoded, consumed) = try Self.readVarint(hex)
        #expect(decoded == value)
        #expect(consumed == hex.count / 2)
    }

    @Test func uint64MaxIsTenBytes() {
        #expect(BARE.varint(.max).count == BARE.maxVarintLength)
        #expect(BARE.maxVarintLength == 10)
    }

    @Test(
        "a 10th byte other than 0x01 is rejected",
        arguments: ["00", "02", "03", "7f", "80", "81", "ff"])
    func tenthByteMustBeOne(last: String) {
        #expect(throws: WireError.invalidVarint) { try Self.readVarint(String(repeating: "ff", count: 9) + last) }
        #expect(throws: WireError.invalidVarint) { try Self.readVarint(String(repeating: "80", count: 9) + last) }
    }

    @Test func elevenByteVarintsAreRejected() {
        #expect(throws: WireError.invalidVarint) { try Self.readVarint(String(repeating: "ff", count: 10) + "01") }
        #expect(throws: WireError.invalidVarint) { try Self.readVarint(String(repeating: "80", count: 10) + "00") }
        #expect(throws: WireError.invalidVarint) {
            try Self.readVarint(String(repeating: "80", count: 9) + "8101")
        }
    }

    @Test("truncated varints are rejected", arguments: ["", "80", "ffff", "ac", String(repeating: "ff", count: 9)])
    func truncated(hex: String) {
        #expect(throws: WireError.truncated) { try Self.readVarint(hex) }
    }

    @Test func nonMinimalEncodingsAreAcceptedLikeOckam() throws {
        // Ockam's reader does not insist on the shortest form.
        #expect(try Self.readVarint("8000") == (0, 2))
        #expect(try Self.readVarint("ff00") == (127, 2))
    }

    @Test func readVarintAdvancesOnlyOnSuccessAndRespectsSliceBounds() throws {
        let buffer = [UInt8](hex: "aa ac02 ff ff")
        var position = 1
        #expect(try BARE.readVarint(buffer[1...], at: &position) == 300)
        #expect(position == 3)
        // The slice ends after the continuation byte: truncated, position unchanged.
        var failing = 3
        #expect(throws: WireError.truncated) { try BARE.readVarint(buffer[3..<5], at: &failing) }
        #expect(failing == 3)
    }

    @Test("random UInt64 values round-trip (seeded)")
    func randomRoundTrip() throws {
        var g = SeededGenerator(seed: 0xBA5E_1EB1)
        var stream: [UInt8] = []
        var values: [UInt64] = []
        for _ in 0..<2000 {
            // Spread over all bit widths so short encodings are as common as long ones.
            let bits = Int.random(in: 0...64, using: &g)
            let value = bits == 0 ? 0 : g.next() >> UInt64(64 - bits)
            let encoded = BARE.varint(value)
            let significant = 64 - value.leadingZeroBitCount
            #expect(encoded.count == max(1, (significant + 6) / 7), "value \(value)")
            #expect(encoded.dropLast().allSatisfy { $0 & 0x80 != 0 })
            #expect(encoded.last! & 0x80 == 0)
            var position = 0
            #expect(try BARE.readVarint(encoded[...], at: &position) == value)
            #expect(position == encoded.count)
            stream += encoded
            values.append(value)
        }
        // And back to back in one buffer.
        let input = stream[...]
        var position = input.startIndex
        for value in values { #expect(try BARE.readVarint(input, at: &position) == value) }
        #expect(position == input.endIndex)
    }

    // MARK: Strings and byte strings

    @Test func helloMatchesTheSpecExample() throws {
        #expect(BARE.encodeString("hello").hexString == "0568656c6c6f")
        #expect(try BARE.decodeString([UInt8](hex: "05 68656c6c6f")) == "hello")
    }

    @Test func stringEncodings() throws {
        #expect(BARE.encodeString("").hexString == "00")
        #expect(BARE.encodeString("h\u{e9}").hexString == "0368c3a9")
        let long = String(repeating: "a", count: 200)
        #expect(BARE.encodeString(long).hexString == "c801" + Array(long.utf8).hexString)
        for text in ["", "x", "h\u{e9}llo \u{1F600}", long, String(repeating: "\u{6c34}", count: 1000)] {
            #expect(try BARE.decodeString(BARE.encodeString(text)) == text)
        }
    }

    @Test func decodeStringRejectsTrailingBytes() {
        #expect(throws: WireError.trailingBytes(1)) { try BARE.decodeString([UInt8](hex: "05 68656c6c6f 00")) }
        #expect(throws: WireError.trailingBytes(3)) { try BARE.decodeString([UInt8](hex: "00 010203")) }
    }

    @Test func decodeStringRejectsInvalidUTF8() {
        #expect(throws: WireError.invalidUTF8) { try BARE.decodeString([UInt8](hex: "01 ff")) }
        #expect(throws: WireError.invalidUTF8) { try BARE.decodeString([UInt8](hex: "02 c080")) }
        #expect(throws: WireError.invalidUTF8) { try BARE.decodeString([UInt8](hex: "03 eda080")) }
    }

    @Test func decodeStringRejectsLengthAboveLimit() throws {
        #expect(throws: WireError.limitExceeded(what: "BARE length", limit: 4)) {
            try BARE.decodeString([UInt8](hex: "05 68656c6c6f"), limit: 4)
        }
        #expect(try BARE.decodeString([UInt8](hex: "05 68656c6c6f"), limit: 5) == "hello")
        // The default limit (1 MiB) rejects a hostile length before looking at the remaining input.
        #expect(throws: WireError.limitExceeded(what: "BARE length", limit: 1 << 20)) {
            try BARE.decodeString([UInt8](hex: "ffffffffffffffffff01 00"))
        }
    }

    @Test func decodeStringRejectsTruncationAndBadLengths() {
        #expect(throws: WireError.truncated) { try BARE.decodeString([UInt8](hex: "05 68656c6c")) }
        #expect(throws: WireError.truncated) { try BARE.decodeString([UInt8]()) }
        #expect(throws: WireError.truncated) { try BARE.decodeString([UInt8](hex: "80")) }
        #expect(throws: WireError.invalidVarint) {
            try BARE.decodeString([UInt8](hex: "ffffffffffffffffff02"), limit: Int.max)
        }
        #expect(throws: WireError.truncated) {
            try BARE.decodeString([UInt8](hex: "ffffffffffffffff7f 00"), limit: Int.max)  // Int.max bytes
        }
        #expect(throws: WireError.limitExceeded(what: "BARE length", limit: Int.max)) {
            try BARE.decodeString([UInt8](hex: "ffffffffffffffffff01 00"), limit: Int.max)  // UInt64.max bytes
        }
    }

    @Test func readBytesAndReadString() throws {
        let input = [UInt8](hex: "02 aabb 03 616263 01")[...]
        var position = input.startIndex
        #expect(Array(try BARE.readBytes(input, at: &position, limit: 16)) == [0xaa, 0xbb])
        #expect(position == 3)
        #expect(try BARE.readString(input, at: &position, limit: 16) == "abc")
        #expect(position == 7)
        // A failing read leaves the position where it was.
        #expect(throws: WireError.truncated) { try BARE.readBytes(input, at: &position, limit: 16) }
        #expect(position == 7)
        var limited = input.startIndex
        #expect(throws: WireError.limitExceeded(what: "BARE length", limit: 1)) {
            try BARE.readBytes(input, at: &limited, limit: 1)
        }
        #expect(limited == input.startIndex)
        var badText = 0
        #expect(throws: WireError.invalidUTF8) { try BARE.readString([0x01, 0xfe][...], at: &badText, limit: 8) }
        #expect(badText == 0)
    }

    @Test func writeBytesPrefixesTheLength() {
        var out: [UInt8] = []
        BARE.writeBytes([UInt8](), into: &out)
        BARE.writeBytes([1, 2, 3] as [UInt8], into: &out)
        BARE.writeBytes([UInt8](repeating: 7, count: 128), into: &out)
        #expect(out.hexString == "00" + "03010203" + "8001" + String(repeating: "07", count: 128))
    }
}
