// CBORReader: round trips, and every malformed input rejected with its specific WireError.
import EdgeTestSupport
import EdgeWire
import Testing

@Suite("CBOR reader", .cpuBound)
struct CBORReaderTests {
    private static func reader(_ hex: String) -> CBORReader { CBORReader([UInt8](hex: hex)) }

    // MARK: Round trips

    @Test("unsigned round trip at every head boundary", arguments: CBORWriterTests.unsignedCases)
    func unsignedRoundTrip(value: UInt64, hex: String) throws {
        var writer = CBORWriter()
        writer.writeUnsigned(value)
        var reader = CBORReader(writer.bytes)
        #expect(try reader.peekType() == .unsigned)
        #expect(try reader.readUnsigned() == value)
        #expect(reader.isAtEnd)
        try reader.expectEnd()
    }

    @Test("negative integers are typed and skipped whole", arguments: CBORWriterTests.integerCases)
    func negativeSkip(value: Int64, hex: String) throws {
        var writer = CBORWriter()
        writer.writeInteger(value)
        writer.writeNull()
        var reader = CBORReader(writer.bytes)
        #expect(try reader.peekType() == (value < 0 ? .negative : .unsigned))
        let raw = try reader.skipValue()
        #expect(Array(raw).hexString == hex)
        let consumedNull = reader.readNullIfPresent()
        #expect(consumedNull)
        try reader.expectEnd()
    }

    @Test func nonNegativeIntegersWrittenSignedReadBackUnsigned() throws {
        for value: Int64 in [0, 1, 23, 24, 255, 256, 65535, 65536, 1 << 32, .max] {
            var writer = CBORWriter()
            writer.writeInteger(value)
            var reader = CBORReader(writer.bytes)
            #expect(try reader.readUnsigned() == UInt64(value))
        }
    }

    @Test func nonShortestIntegerHeadsAreAcceptedLikeMinicbor() throws {
        for (hex, value): (String, UInt64) in [("1800", 0), ("190017", 23), ("1b00000000000000ff", 255)] {
            var reader = Self.reader(hex)
            #expect(try reader.readUnsigned() == value)
            #expect(reader.isAtEnd)
        }
    }

    @Test func byteStringRoundTrip() throws {
        for count in [0, 1, 23, 24, 255, 256, 65535, 65536] {
            let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            var writer = CBORWriter()
            writer.writeBytes(bytes)
            var reader = CBORReader(writer.bytes)
            #expect(try reader.peekType() == .bytes)
            let slice = try reader.readBytes()
            #expect(Array(slice) == bytes)
            #expect(reader.isAtEnd)
        }
    }

    @Test func readBytesReturnsASliceOfTheInput() throws {
        var reader = Self.reader("00 43 0a0b0c f6")
        _ = try reader.readUnsigned()
        let slice = try reader.readBytes()
        #expect(slice.startIndex == 2)
        #expect(slice.endIndex == 5)
        #expect(reader.position == 5)
        #expect(reader.remaining == 1)
    }

    @Test func textRoundTrip() throws {
        for text in [
            "", "a", "IETF", "\u{00fc}", "\u{6c34}", "\u{10151}", String(repeating: "z", count: 24),
            String(repeating: "\u{e9}", count: 200),
        ] {
            var writer = CBORWriter()
            writer.writeText(text)
            var reader = CBORReader(writer.bytes)
            #expect(try reader.peekType() == .text)
            #expect(try reader.readText() == text)
            #expect(reader.isAtEnd)
        }
    }

    @Test func arrayAndMapHeaderRoundTrip() throws {
        for count in [0, 1, 23, 24, 25, 255, 256, 1000] {
            var writer = CBORWriter()
            writer.writeArrayHeader(count)
            for i in 0..<count { writer.writeUnsigned(UInt64(i)) }
            writer.writeMapHeader(count)
            for i in 0..<count {
                writer.writeUnsigned(UInt64(i))
                writer.writeBool(i % 2 == 0)
            }
            var reader = CBORReader(writer.bytes)
            #expect(try reader.peekType() == .array)
            #expect(try reader.readArrayHeader() == count)
            for i in 0..<count { #expect(try reader.readUnsigned() == UInt64(i)) }
            #expect(try reader.peekType() == .map)
            #expect(try reader.readMapHeader() == count)
            for i in 0..<count {
                #expect(try reader.readUnsigned() == UInt64(i))
                #expect(try reader.readBool() == (i % 2 == 0))
            }
            try reader.expectEnd()
        }
    }

    @Test func boolAndNull() throws {
        var reader = Self.reader("f4 f5 f6")
        #expect(try reader.peekType() == .bool)
        #expect(try reader.readBool() == false)
        #expect(try reader.readBool() == true)
        #expect(try reader.peekType() == .null)
        let first = reader.readNullIfPresent()
        #expect(first)
        let second = reader.readNullIfPresent()  // at end: nothing consumed, no trap
        #expect(!second)
        try reader.expectEnd()
    }

    @Test func readNullIfPresentLeavesOtherItemsAlone() throws {
        var reader = Self.reader("00")
        let consumed = reader.readNullIfPresent()
        #expect(!consumed)
        #expect(reader.position == 0)
        #expect(try reader.readUnsigned() == 0)
    }

    @Test func peekTypeClassifiesEveryInitialByteKind() throws {
        let cases: [(String, CBORType)] = [
            ("00", .unsigned), ("20", .negative), ("40", .bytes), ("60", .text), ("80", .array), ("a0", .map),
            ("c0", .tag), ("f4", .bool), ("f5", .bool), ("f6", .null), ("f7", .undefined), ("f9", .float),
            ("fa", .float), ("fb", .float), ("f8", .other), ("e0", .other), ("ff", .other),
        ]
        for (hex, type) in cases {
            let reader = Self.reader(hex)
            #expect(try reader.peekType() == type, "initial byte \(hex)")
            #expect(reader.position == 0)
        }
        #expect(throws: WireError.truncated) { try CBORReader([UInt8]()).peekType() }
    }

    @Test func readerOverASliceWithNonZeroStartIndex() throws {
        let frame = [UInt8](hex: "ffffffff 83 01 41 aa 62 6869")
        var reader = CBORReader(frame[4...])
        #expect(reader.position == 4)
        #expect(try reader.readArrayHeader() == 3)
        #expect(try reader.readUnsigned() == 1)
        #expect(Array(try reader.readBytes()) == [0xaa])
        #expect(try reader.readText() == "hi")
        try reader.expectEnd()
    }

    @Test("random item sequences round-trip through writer and reader (seeded)")
    func randomRoundTrip() throws {
        enum Item: Equatable {
            case unsigned(UInt64), bytes([UInt8]), text(String), bool(Bool), null
            case array([Item])
        }
        func randomItem(_ g: inout SeededGenerator, depth: Int) -> Item {
            switch Int.random(in: 0..<(depth < 3 ? 6 : 5), using: &g) {
            case 0:
                let bits = Int.random(in: 0...64, using: &g)
                let value = bits == 0 ? 0 : UInt64.random(in: 0...UInt64.max, using: &g) >> UInt64(64 - bits)
                return .unsigned(value)
            case 1:
                return .bytes(
                    (0..<Int.random(in: 0...300, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) })
            case 2:
                let scalars = (0..<Int.random(in: 0...40, using: &g)).map { _ -> Character in
                    let pool: [Character] = ["a", "Z", "0", " ", "\u{e9}", "\u{6c34}", "\u{1F600}", "#", "\u{0}"]
                    return pool[Int.random(in: 0..<pool.count, using: &g)]
                }
                return .text(String(scalars))
            case 3: return .bool(Bool.random(using: &g))
            case 4: return .null
            default: return .array((0..<Int.random(in: 0...5, using: &g)).map { _ in randomItem(&g, depth: depth + 1) })
            }
        }
        func write(_ item: Item, _ w: inout CBORWriter) {
            switch item {
            case .unsigned(let v): w.writeUnsigned(v)
            case .bytes(let b): w.writeBytes(b)
            case .text(let t): w.writeText(t)
            case .bool(let b): w.writeBool(b)
            case .null: w.writeNull()
            case .array(let items):
                w.writeArrayHeader(items.count)
                for i in items { write(i, &w) }
            }
        }
        func read(_ r: inout CBORReader) throws -> Item {
            switch try r.peekType() {
            case .unsigned: return .unsigned(try r.readUnsigned())
            case .bytes: return .bytes(Array(try r.readBytes()))
            case .text: return .text(try r.readText())
            case .bool: return .bool(try r.readBool())
            case .null:
                _ = r.readNullIfPresent()
                return .null
            case .array:
                let n = try r.readArrayHeader()
                return .array(try (0..<n).map { _ in try read(&r) })
            default: throw WireError.unsupported("unexpected in test")
            }
        }
        var g = SeededGenerator(seed: 0xC0FFEE)
        for _ in 0..<1000 {
            let items = (0..<Int.random(in: 1...6, using: &g)).map { _ in randomItem(&g, depth: 0) }
            var writer = CBORWriter()
            for item in items { write(item, &writer) }
            var reader = CBORReader(writer.bytes)
            let back = try items.map { _ in try read(&reader) }
            #expect(back == items)
            try reader.expectEnd()
            // skipValue consumes exactly the same items.
            var skipper = CBORReader(writer.bytes)
            try skipper.skipValues(items.count)
            #expect(skipper.isAtEnd)
        }
    }

    // MARK: Rejections

    @Test("truncated heads", arguments: ["", "18", "19", "1901", "1a", "1a000001", "1b", "1b00000000000000"])
    func truncatedHeads(hex: String) {
        var reader = Self.reader(hex)
        #expect(throws: WireError.truncated) { try reader.readUnsigned() }
        var skipper = Self.reader(hex)
        #expect(throws: WireError.truncated) { try skipper.skipValue() }
    }

    @Test func truncatedHeadsOfOtherMajorTypes() {
        for hex in ["58", "5901", "78", "98", "b9", "5b00000000"] {
            var reader = Self.reader(hex)
            #expect(throws: WireError.truncated, "\(hex)") { try reader.skipValue() }
        }
        var bytes = Self.reader("59 01")
        #expect(throws: WireError.truncated) { try bytes.readBytes() }
        var text = Self.reader("78")
        #expect(throws: WireError.truncated) { try text.readText() }
        var array = Self.reader("99 00")
        #expect(throws: WireError.truncated) { try array.readArrayHeader() }
        var map = Self.reader("b8")
        #expect(throws: WireError.truncated) { try map.readMapHeader() }
        var bool = CBORReader([UInt8]())
        #expect(throws: WireError.truncated) { try bool.readBool() }
    }

    @Test func truncatedByteAndTextStrings() {
        var a = Self.reader("43 0102")
        #expect(throws: WireError.truncated) { try a.readBytes() }
        var b = Self.reader("5a 00010000 00")
        #expect(throws: WireError.truncated) { try b.readBytes() }
        var c = Self.reader("63 6162")
        #expect(throws: WireError.truncated) { try c.readText() }
        var d = Self.reader("43 0102")
        #expect(throws: WireError.truncated) { try d.skipValue() }
        var e = Self.reader("7a ffffffff 61")
        #expect(throws: WireError.truncated) { try e.skipValue() }
        // A huge declared length is rejected before any allocation or slicing.
        var f = Self.reader("5b ffffffffffffffff 00")
        #expect(throws: WireError.limitExceeded(what: "byte string", limit: Int(UInt32.max))) { try f.readBytes() }
        var g = Self.reader("5b 7fffffffffffffff 00")
        #expect(throws: WireError.truncated) { try g.readBytes(limit: Int.max) }
        var g2 = Self.reader("5b ffffffffffffffff 00")  // above Int.max: over any limit
        #expect(throws: WireError.limitExceeded(what: "byte string", limit: Int.max)) {
            try g2.readBytes(limit: Int.max)
        }
        var h = Self.reader("5b ffffffffffffffff 00")
        #expect(throws: WireError.truncated) { try h.skipValue() }
    }

    @Test func lengthLimits() throws {
        var a = Self.reader("43 010203")
        #expect(throws: WireError.limitExceeded(what: "byte string", limit: 2)) { try a.readBytes(limit: 2) }
        var b = Self.reader("43 010203")
        #expect(Array(try b.readBytes(limit: 3)) == [1, 2, 3])
        var c = Self.reader("63 616263")
        #expect(throws: WireError.limitExceeded(what: "text string", limit: 2)) { try c.readText(limit: 2) }
        var d = Self.reader("83 010203")
        #expect(throws: WireError.limitExceeded(what: "array length", limit: 2)) { try d.readArrayHeader(limit: 2) }
        var e = Self.reader("a2 01020304")
        #expect(throws: WireError.limitExceeded(what: "map length", limit: 1)) { try e.readMapHeader(limit: 1) }
    }

    @Test("indefinite lengths are rejected", arguments: ["5f", "7f", "9f", "bf", "1f", "3f", "df"])
    func indefinite(hex: String) {
        var skipper = Self.reader(hex + "ff")
        #expect(throws: WireError.unsupported("indefinite length")) { try skipper.skipValue() }
    }

    @Test func indefiniteLengthsRejectedByTypedReads() {
        var bytes = Self.reader("5f 41 00 ff")
        #expect(throws: WireError.unsupported("indefinite length")) { try bytes.readBytes() }
        var text = Self.reader("7f 61 61 ff")
        #expect(throws: WireError.unsupported("indefinite length")) { try text.readText() }
        var array = Self.reader("9f 01 ff")
        #expect(throws: WireError.unsupported("indefinite length")) { try array.readArrayHeader() }
        var map = Self.reader("bf 01 02 ff")
        #expect(throws: WireError.unsupported("indefinite length")) { try map.readMapHeader() }
        var unsigned = Self.reader("1f")
        #expect(throws: WireError.unsupported("indefinite length")) { try unsigned.readUnsigned() }
    }

    @Test("reserved additional information 28-30 is rejected", arguments: [28, 29, 30] as [UInt8])
    func reservedAdditionalInfo(info: UInt8) {
        let reason = WireError.unsupported("reserved additional information \(info)")
        for major: UInt8 in [0, 1, 2, 3, 4, 5, 6] {
            let input = [major << 5 | info, 0, 0, 0, 0, 0, 0, 0, 0]
            var skipper = CBORReader(input)
            #expect(throws: reason, "major \(major)") { try skipper.skipValue() }
        }
        var unsigned = CBORReader([info, 0])
        #expect(throws: reason) { try unsigned.readUnsigned() }
        var bytes = CBORReader([0x40 | info, 0])
        #expect(throws: reason) { try bytes.readBytes() }
        var array = CBORReader([0x80 | info, 0])
        #expect(throws: reason) { try array.readArrayHeader() }
    }

    @Test func tagsAreRejectedWhenSkipping() {
        for hex in ["c0 00", "c1 1a00000000", "d8 20 60", "d9 d9f7 80", "c2 41 01"] {
            var reader = Self.reader(hex)
            #expect(throws: WireError.unsupported("tag"), "\(hex)") { try reader.skipValue() }
        }
        // Also when nested.
        var nested = Self.reader("82 01 c0 00")
        #expect(throws: WireError.unsupported("tag")) { try nested.skipValue() }
    }

    @Test func floatsAndOtherSimpleValuesAreRejectedWhenSkipping() {
        let cases: [(String, String)] = [
            ("f9 3c00", "f9"), ("fa 47c35000", "fa"), ("fb 3ff199999999999a", "fb"), ("f8 20", "f8"), ("e0", "e0"),
            ("f3", "f3"), ("fc", "fc"), ("ff", "ff"),
        ]
        for (hex, initial) in cases {
            var reader = Self.reader(hex)
            #expect(throws: WireError.unsupported("simple/float value 0x\(initial)"), "\(hex)") {
                try reader.skipValue()
            }
        }
        var nested = Self.reader("a1 00 f9 0000")
        #expect(throws: WireError.unsupported("simple/float value 0xf9")) { try nested.skipValue() }
    }

    @Test func falseTrueNullUndefinedAreSkippable() throws {
        var reader = Self.reader("84 f4 f5 f6 f7 00")
        let raw = try reader.skipValue()
        #expect(Array(raw).hexString == "84f4f5f6f7")
        #expect(try reader.readUnsigned() == 0)
    }

    @Test(
        "invalid UTF-8 text is rejected",
        arguments: ["61 ff", "62 c328", "62 c080", "63 eda080", "64 f4908080", "61 80"])
    func invalidUTF8(hex: String) {
        var reader = Self.reader(hex)
        #expect(throws: WireError.invalidUTF8) { try reader.readText() }
    }

    @Test func hostileArrayAndMapCountsThrowWithoutAllocating() throws {
        var a = Self.reader("9b ffffffffffffffff")
        #expect(throws: WireError.limitExceeded(what: "array length", limit: 1 << 16)) { try a.readArrayHeader() }
        var b = Self.reader("9b 7fffffffffffffff")
        #expect(throws: WireError.truncated) { try b.readArrayHeader(limit: Int.max) }
        var c = Self.reader("9b ffffffffffffffff")
        #expect(throws: WireError.truncated) { try c.skipValue() }
        var d = Self.reader("9a 00010000 00")
        #expect(throws: WireError.truncated) { try d.readArrayHeader(limit: Int.max) }
        // Each element needs at least one byte: array(3) with 2 bytes left is impossible.
        var e = Self.reader("83 01 02")
        #expect(throws: WireError.truncated) { try e.readArrayHeader() }
        var f = Self.reader("83 01 02 03")
        #expect(try f.readArrayHeader() == 3)

        var m = Self.reader("bb ffffffffffffffff")
        #expect(throws: WireError.limitExceeded(what: "map length", limit: 1 << 16)) { try m.readMapHeader() }
        var n = Self.reader("bb 7fffffffffffffff")
        #expect(throws: WireError.truncated) { try n.readMapHeader(limit: Int.max) }
        var o = Self.reader("bb 7fffffffffffffff")
        #expect(throws: WireError.truncated) { try o.skipValue() }
        // A map entry needs at least two bytes.
        var p = Self.reader("a2 01 02 03")
        #expect(throws: WireError.truncated) { try p.readMapHeader() }
    }

    @Test func nestingDeeperThanMaxDepthIsRejectedWithoutStackOverflow() {
        let deep = [UInt8](repeating: 0x81, count: 10_000) + [0x00]
        var reader = CBORReader(deep)
        #expect(throws: WireError.tooDeep) { try reader.skipValue() }
        let deepMaps = Array([[UInt8]](repeating: [0xa1, 0x00], count: 10_000).joined()) + [0x00]
        var mapReader = CBORReader(deepMaps)
        #expect(throws: WireError.tooDeep) { try mapReader.skipValue() }
    }

    @Test func maxDepthBoundary() throws {
        // n nested arrays around a uint: the uint sits at depth n; depth must stay below maxDepth.
        func nested(_ n: Int) -> [UInt8] { [UInt8](repeating: 0x81, count: n) + [0x07] }
        var ok = CBORReader(nested(31))
        #expect(ok.maxDepth == 32)
        #expect(try ok.skipValue().count == 32)
        var tooDeep = CBORReader(nested(32))
        #expect(throws: WireError.tooDeep) { try tooDeep.skipValue() }

        var shallow = CBORReader(nested(2))
        shallow.maxDepth = 2
        #expect(throws: WireError.tooDeep) { try shallow.skipValue() }
        var fits = CBORReader(nested(1))
        fits.maxDepth = 2
        #expect(try fits.skipValue().count == 2)
    }

    @Test func trailingBytesAreReportedByExpectEnd() throws {
        var reader = Self.reader("01 02 03")
        #expect(try reader.readUnsigned() == 1)
        #expect(throws: WireError.trailingBytes(2)) { try reader.expectEnd() }
        _ = try reader.skipValue()
        #expect(throws: WireError.trailingBytes(1)) { try reader.expectEnd() }
        _ = try reader.skipValue()
        try reader.expectEnd()
    }

    @Test func narrowingReadsRejectOverflow() throws {
        var a = Self.reader("18ff")
        #expect(try a.readUnsigned(as: UInt8.self) == 255)
        var b = Self.reader("190100")
        #expect(throws: WireError.integerOverflow) { try b.readUnsigned(as: UInt8.self) }
        var c = Self.reader("19ffff")
        #expect(try c.readUnsigned(as: UInt16.self) == 65535)
        var d = Self.reader("1a00010000")
        #expect(throws: WireError.integerOverflow) { try d.readUnsigned(as: UInt16.self) }
        var e = Self.reader("1b0000000100000000")
        #expect(throws: WireError.integerOverflow) { try e.readUnsigned(as: UInt32.self) }
        var f = Self.reader("1bffffffffffffffff")
        #expect(try f.readUnsigned(as: UInt64.self) == .max)
    }

    @Test func wrongTypeIsReportedAndDoesNotConsume() throws {
        var reader = Self.reader("61 61")
        #expect(throws: WireError.unexpectedType(expected: "byte string", found: 0x61)) { try reader.readBytes() }
        #expect(reader.position == 0)
        #expect(throws: WireError.unexpectedType(expected: "unsigned integer", found: 0x61)) {
            try reader.readUnsigned()
        }
        #expect(throws: WireError.unexpectedType(expected: "array", found: 0x61)) { try reader.readArrayHeader() }
        #expect(throws: WireError.unexpectedType(expected: "map", found: 0x61)) { try reader.readMapHeader() }
        #expect(throws: WireError.unexpectedType(expected: "bool", found: 0x61)) { try reader.readBool() }
        #expect(reader.position == 0)
        #expect(try reader.readText() == "a")

        var negative = Self.reader("20")
        #expect(throws: WireError.unexpectedType(expected: "unsigned integer", found: 0x20)) {
            try negative.readUnsigned()
        }
        var tag = Self.reader("c0 00")
        #expect(throws: WireError.unexpectedType(expected: "text string", found: 0xc0)) { try tag.readText() }
        var float = Self.reader("f9 0000")
        #expect(throws: WireError.unexpectedType(expected: "unsigned integer", found: 0xf9)) {
            try float.readUnsigned()
        }
    }

    @Test func skipValueReturnsTheRawItem() throws {
        // ["a", {"b": h'01'}, -1, [true, null]] then a trailing 0x00.
        let item = "84 6161 a1 6162 4101 20 82 f5 f6"
        var reader = Self.reader(item + " 00")
        let raw = try reader.skipValue()
        #expect(Array(raw) == [UInt8](hex: item))
        #expect(reader.remaining == 1)
    }

    @Test func skipValuesSkipsExactlyTheCount() throws {
        var reader = Self.reader("01 4161 6162 02")
        try reader.skipValues(3)
        #expect(try reader.readUnsigned() == 2)
        var short = Self.reader("01 02")
        #expect(throws: WireError.truncated) { try short.skipValues(3) }
        var none = Self.reader("01")
        try none.skipValues(0)
        #expect(none.position == 0)
    }

    @Test("random bytes never trap the reader (seeded)")
    func randomInputNeverTraps() {
        var g = SeededGenerator(seed: 42)
        var outcomes = (ok: 0, failed: 0)
        for _ in 0..<5000 {
            let input = (0..<Int.random(in: 0...24, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) }
            var reader = CBORReader(input)
            do {
                let raw = try reader.skipValue()
                #expect(raw.count >= 1 && raw.count <= input.count)
                #expect(reader.position == raw.endIndex)
                outcomes.ok += 1
            } catch {
                outcomes.failed += 1
            }
        }
        // Both paths are exercised (single-byte uints are common, truncated heads too).
        #expect(outcomes.ok > 0)
        #expect(outcomes.failed > 0)
    }

    @Test func errorDescriptions() {
        #expect(
            WireError.unexpectedType(expected: "bool", found: 0x61).description
                == "expected bool, found initial byte 0x61")
        #expect(WireError.trailingBytes(3).description == "3 unexpected trailing bytes")
        #expect(WireError.limitExceeded(what: "byte string", limit: 2).description == "byte string exceeds limit of 2")
        #expect(WireError.unsupported("tag").description == "unsupported encoding: tag")
    }
}
