// CBORWriter: exact bytes per RFC 8949 (definite lengths, shortest integer heads).
import EdgeTestSupport
import EdgeWire
import Testing

@Suite("CBOR writer")
struct CBORWriterTests {
    private static func written(_ build: (inout CBORWriter) -> Void) -> String {
        var writer = CBORWriter()
        build(&writer)
        return writer.bytes.hexString
    }

    /// Every boundary where the head grows (RFC 8949 §3.1 and Appendix A).
    static let unsignedCases: [(UInt64, String)] = [
        (0, "00"),
        (1, "01"),
        (10, "0a"),
        (23, "17"),
        (24, "1818"),
        (25, "1819"),
        (100, "1864"),
        (255, "18ff"),
        (256, "190100"),
        (1000, "1903e8"),
        (65535, "19ffff"),
        (65536, "1a00010000"),
        (1_000_000, "1a000f4240"),
        (4_294_967_295, "1affffffff"),
        (4_294_967_296, "1b0000000100000000"),
        (1_000_000_000_000, "1b000000e8d4a51000"),
        (UInt64.max, "1bffffffffffffffff"),
    ]

    @Test("unsigned integers use the shortest head", arguments: unsignedCases)
    func unsigned(value: UInt64, hex: String) {
        #expect(Self.written { $0.writeUnsigned(value) } == hex)
    }

    static let integerCases: [(Int64, String)] = [
        (0, "00"),
        (23, "17"),
        (24, "1818"),
        (Int64.max, "1b7fffffffffffffff"),
        (-1, "20"),
        (-10, "29"),
        (-24, "37"),
        (-25, "3818"),
        (-100, "3863"),
        (-256, "38ff"),
        (-257, "390100"),
        (-1000, "3903e7"),
        (-65536, "39ffff"),
        (-65537, "3a00010000"),
        (-4_294_967_296, "3affffffff"),
        (-4_294_967_297, "3b0000000100000000"),
        (Int64.min, "3b7fffffffffffffff"),
    ]

    @Test("signed integers: major type 1 carries -1 - n", arguments: integerCases)
    func integer(value: Int64, hex: String) {
        #expect(Self.written { $0.writeInteger(value) } == hex)
    }

    @Test func byteStrings() {
        #expect(Self.written { $0.writeBytes([UInt8]()) } == "40")
        #expect(Self.written { $0.writeBytes([1, 2, 3, 4] as [UInt8]) } == "4401020304")
        let b23 = [UInt8](repeating: 0xaa, count: 23)
        #expect(Self.written { $0.writeBytes(b23) } == "57" + b23.hexString)
        let b24 = [UInt8](repeating: 0xbb, count: 24)
        #expect(Self.written { $0.writeBytes(b24) } == "5818" + b24.hexString)
        let b256 = [UInt8](repeating: 0xcc, count: 256)
        #expect(Self.written { $0.writeBytes(b256) } == "590100" + b256.hexString)
        let b65536 = [UInt8](repeating: 0, count: 65536)
        var writer = CBORWriter()
        writer.writeBytes(b65536)
        #expect(Array(writer.bytes.prefix(5)).hexString == "5a00010000")
        #expect(writer.bytes.count == 5 + 65536)
        // Any collection of bytes, e.g. a slice.
        #expect(Self.written { $0.writeBytes([9, 1, 2, 9][1...2]) } == "420102")
    }

    @Test func textStrings() {
        // RFC 8949 Appendix A.
        #expect(Self.written { $0.writeText("") } == "60")
        #expect(Self.written { $0.writeText("a") } == "6161")
        #expect(Self.written { $0.writeText("IETF") } == "6449455446")
        #expect(Self.written { $0.writeText("\"\\") } == "62225c")
        #expect(Self.written { $0.writeText("\u{00fc}") } == "62c3bc")
        #expect(Self.written { $0.writeText("\u{6c34}") } == "63e6b0b4")
        #expect(Self.written { $0.writeText("\u{10151}") } == "64f0908591")
        let t24 = String(repeating: "x", count: 24)
        #expect(Self.written { $0.writeText(t24) } == "7818" + Array(t24.utf8).hexString)
        let t300 = String(repeating: "y", count: 300)
        #expect(Self.written { $0.writeText(t300) } == "79012c" + Array(t300.utf8).hexString)
    }

    @Test func arrayAndMapHeaders() {
        #expect(Self.written { $0.writeArrayHeader(0) } == "80")
        #expect(Self.written { $0.writeArrayHeader(3) } == "83")
        #expect(Self.written { $0.writeArrayHeader(23) } == "97")
        #expect(Self.written { $0.writeArrayHeader(24) } == "9818")
        #expect(Self.written { $0.writeArrayHeader(25) } == "9819")
        #expect(Self.written { $0.writeArrayHeader(256) } == "990100")
        #expect(Self.written { $0.writeArrayHeader(65536) } == "9a00010000")
        #expect(Self.written { $0.writeArrayHeader(1 << 32) } == "9b0000000100000000")
        #expect(Self.written { $0.writeMapHeader(0) } == "a0")
        #expect(Self.written { $0.writeMapHeader(2) } == "a2")
        #expect(Self.written { $0.writeMapHeader(23) } == "b7")
        #expect(Self.written { $0.writeMapHeader(24) } == "b818")
        #expect(Self.written { $0.writeMapHeader(1000) } == "b903e8")
        #expect(Self.written { $0.writeMapHeader(70000) } == "ba00011170")
    }

    @Test func simpleValues() {
        #expect(Self.written { $0.writeBool(false) } == "f4")
        #expect(Self.written { $0.writeBool(true) } == "f5")
        #expect(Self.written { $0.writeNull() } == "f6")
    }

    @Test("RFC 8949 Appendix A nested examples")
    func nestedExamples() {
        // [1, [2, 3], [4, 5]]
        let array = Self.written { w in
            w.writeArrayHeader(3)
            w.writeUnsigned(1)
            w.writeArrayHeader(2); w.writeUnsigned(2); w.writeUnsigned(3)
            w.writeArrayHeader(2); w.writeUnsigned(4); w.writeUnsigned(5)
        }
        #expect(array == "8301820203820405")
        // {"a": 1, "b": [2, 3]}
        let map = Self.written { w in
            w.writeMapHeader(2)
            w.writeText("a"); w.writeUnsigned(1)
            w.writeText("b"); w.writeArrayHeader(2); w.writeUnsigned(2); w.writeUnsigned(3)
        }
        #expect(map == "a26161016162820203")
        // ["a", {"b": "c"}]
        let mixed = Self.written { w in
            w.writeArrayHeader(2)
            w.writeText("a")
            w.writeMapHeader(1); w.writeText("b"); w.writeText("c")
        }
        #expect(mixed == "826161a161626163")
    }

    @Test func rawBytesAreAppendedVerbatimAfterEarlierItems() {
        let hex = Self.written { w in
            w.writeArrayHeader(2)
            w.writeRaw([0x82, 0x00, 0x41, 0x61] as [UInt8])
            w.writeNull()
        }
        #expect(hex == "8282004161f6")
    }

    @Test func freshWriterIsEmptyWhateverTheCapacity() {
        #expect(CBORWriter().bytes.isEmpty)
        #expect(CBORWriter(capacity: 0).bytes.isEmpty)
        #expect(CBORWriter(capacity: 4096).bytes.isEmpty)
    }
}
