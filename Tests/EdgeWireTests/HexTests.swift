// Hex: lowercase encoding, strict decoding of either case.
import EdgeTestSupport
import EdgeWire
import Testing

@Suite("Hex")
struct HexTests {
    @Test func encodeIsLowercase() {
        #expect(Hex.encode([UInt8]()) == "")
        #expect(Hex.encode([0x00, 0x0f, 0xf0, 0xff, 0xab, 0x12] as [UInt8]) == "000ff0ffab12")
        #expect(Hex.encode([0xde, 0xad, 0xbe, 0xef, 0x01, 0x02][2...3]) == "beef")
        #expect(Hex.byte(0x00) == "00")
        #expect(Hex.byte(0x9a) == "9a")
        #expect(Hex.byte(0xff) == "ff")
    }

    @Test func decodeAcceptsEitherCase() {
        #expect(Hex.decode("") == [])
        #expect(Hex.decode("deadbeef") == [0xde, 0xad, 0xbe, 0xef])
        #expect(Hex.decode("DEADBEEF") == [0xde, 0xad, 0xbe, 0xef])
        #expect(Hex.decode("DeAdBeEf") == [0xde, 0xad, 0xbe, 0xef])
        #expect(Hex.decode("00ff09A0") == [0x00, 0xff, 0x09, 0xa0])
        let text = "xx0a0Byy"
        #expect(Hex.decode(text.dropFirst(2).dropLast(2)) == [0x0a, 0x0b])
    }

    @Test("odd lengths are rejected", arguments: ["0", "abc", "00000", " "])
    func oddLength(text: String) {
        #expect(Hex.decode(text) == nil)
    }

    @Test(
        "characters outside 0-9a-fA-F are rejected",
        arguments: [
            "0g", "g0", "zz", "0x00", " 0", "0 ", "-1", "\u{e9}", "00\u{0}0", "+1", "ff\n0", "/0", ":0", "@0", "`0",
            "G0",
        ])
    func badCharacters(text: String) {
        #expect(Hex.decode(text) == nil)
    }

    @Test func everyByteRoundTrips() {
        let all = (0...255).map { UInt8($0) }
        let encoded = Hex.encode(all)
        #expect(encoded.count == 512)
        #expect(encoded.allSatisfy { "0123456789abcdef".contains($0) })
        #expect(Hex.decode(encoded) == all)
        #expect(Hex.decode(encoded.uppercased()) == all)
        for value in all {
            #expect(Hex.byte(value) == String(value, radix: 16).leftPadded(to: 2))
            #expect(Hex.decode(Hex.byte(value)) == [value])
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
