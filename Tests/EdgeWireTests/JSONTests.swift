import EdgeWire
import Testing

@Suite("JSON writer")
struct JSONTests {
    @Test func escapesAndOrders() {
        let value = JSON.object([
            ("name", .string("a\"b\\c\n\u{01}é")), ("n", .int(-3)), ("big", .uint(UInt64.max)), ("ok", .bool(true)),
            ("none", .null), ("list", .array([.int(1), .array([]), .object([])])),
        ])
        #expect(
            value.serialized(pretty: false)
                == #"{"name":"a\"b\\c\n\u0001é","n":-3,"big":18446744073709551615,"ok":true,"none":null,"list":[1,[],{}]}"#
        )
        #expect(JSON.array([.int(1)]).serialized() == "[\n  1\n]")
    }

    @Test func doublesAreShortestIntegralWithoutFractionAndNonFiniteAsNull() {
        #expect(JSON.array([.double(2), .double(0.1), .double(-1.5), .double(1e20), .double(.nan), .double(.infinity)])
            .serialized(pretty: false) == "[2,0.1,-1.5,1e+20,null,null]")
    }
}
