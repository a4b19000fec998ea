// Route: text form, hop manipulation, and the legacy BARE bytes of spec §1.5.
import EdgeRouting
import EdgeTestSupport
import EdgeWire
import Testing

@Suite("Route")
struct RouteTests {
    @Test func parsesOckamTextForm() throws {
        let route = try Route(parsing: "1#alice => bob")
        #expect(route.addresses == [Address(.tcp, "alice"), .local("bob")])
        #expect(route.count == 2)
        #expect(route.first == Address(.tcp, "alice"))
        #expect(route.description == "1#alice => 0#bob")
        #expect(try Route(parsing: route.description) == route)
    }

    @Test func parsingTrimsWhitespaceAroundHops() throws {
        #expect(try Route(parsing: "  a=>1#h:1 =>\tb  ") == [.local("a"), .tcp("h:1"), .local("b")])
        #expect(try Route(parsing: "echo") == [.local("echo")])
    }

    @Test func parsingRejectsBadHops() {
        #expect(throws: RoutingError.self) { try Route(parsing: "a => => b") }
        #expect(throws: RoutingError.self) { try Route(parsing: "a => x#y") }
        #expect(throws: RoutingError.invalidAddress("a#b#c", reason: "more than one '#'")) {
            try Route(parsing: "ok => a#b#c")
        }
    }

    @Test func emptyRoute() {
        let route = Route()
        #expect(route.isEmpty)
        #expect(route.count == 0)
        #expect(route.first == nil)
        #expect(route.description == "")
    }

    @Test func popFrontPrependReplaceFront() {
        var route: Route = [.local("a"), .tcp("h:1"), .local("b")]
        #expect(route.popFront() == .local("a"))
        #expect(route == [.tcp("h:1"), .local("b")])

        route.prepend(.local("me"))
        #expect(route.description == "0#me => 1#h:1 => 0#b")

        route.replaceFront(with: .local("conn"))
        #expect(route == [.local("conn"), .tcp("h:1"), .local("b")])

        route.append(.local("tail"))
        #expect(route.addresses.last == .local("tail"))
        #expect(route.count == 4)

        var empty = Route()
        #expect(empty.popFront() == nil)
        #expect(empty.isEmpty)
        empty.replaceFront(with: .local("x"))
        #expect(empty == [.local("x")])
        #expect(empty.popFront() == .local("x"))
        #expect(empty.popFront() == nil)
    }

    @Test func nonMutatingVariantsLeaveTheOriginal() {
        let route: Route = [.local("b")]
        let prepended = route.prepending(.local("a"))
        #expect(prepended == [.local("a"), .local("b")])
        #expect(route == [.local("b")])
        let joined = prepended.appending([.tcp("h:2"), .local("c")])
        #expect(joined.description == "0#a => 0#b => 1#h:2 => 0#c")
        #expect(prepended.count == 2)
    }

    @Test("legacy v1 TransportMessage body (spec §1.5) assembled from Route.encodeBARE")
    func legacyTransportMessageBytes() throws {
        let onward: Route = [.tcp("127.0.0.1:4000"), .local("printer")]
        let back: Route = [.tcp("127.0.0.1:3000")]

        var onwardBytes: [UInt8] = []
        onward.encodeBARE(into: &onwardBytes)
        // 02 | 01 0e "127.0.0.1:4000" | 00 07 "printer"
        #expect(onwardBytes.hexString == "02" + "010e3132372e302e302e313a34303030" + "00077072696e746572")

        var returnBytes: [UInt8] = []
        back.encodeBARE(into: &returnBytes)
        // 01 | 01 0e "127.0.0.1:3000"
        #expect(returnBytes.hexString == "01" + "010e3132372e302e302e313a33303030")

        var message: [UInt8] = [0x01]  // version 1
        onward.encodeBARE(into: &message)
        back.encodeBARE(into: &message)
        BARE.writeBytes(Array("hello".utf8), into: &message)
        let expected = [UInt8](
            hex: """
                01
                02 01 0e 3132372e302e302e313a34303030 00 07 7072696e746572
                01 01 0e 3132372e302e302e313a33303030
                05 68656c6c6f
                """)
        #expect(message == expected)
    }

    @Test func emptyRouteBARE() {
        var out: [UInt8] = []
        Route().encodeBARE(into: &out)
        #expect(out == [0x00])
    }

    @Test func cborRouteIsAnArrayOfAddresses() throws {
        let route: Route = [.local("echo"), .tcp("h:1")]
        var writer = CBORWriter()
        route.encode(into: &writer)
        #expect(writer.bytes.hexString == "82" + "8200446563686f" + "820143683a31")
        var reader = CBORReader(writer.bytes)
        #expect(try Route(reading: &reader) == route)
        try reader.expectEnd()
    }

    @Test func localMessageLooksUpLocalInfoByType() {
        let info = [
            LocalInfo(typeIdentifier: "A", data: [1]), LocalInfo(typeIdentifier: "B", data: [2]),
            LocalInfo(typeIdentifier: "A", data: [3]),
        ]
        let message = LocalMessage(onwardRoute: [.local("x")], returnRoute: [], payload: [9], localInfo: info)
        #expect(message.localInfo(for: "A")?.data == [1])
        #expect(message.localInfo(for: "B")?.data == [2])
        #expect(message.localInfo(for: "C") == nil)
        #expect(LocalMessage(onwardRoute: [], returnRoute: [], payload: []).localInfo.isEmpty)
    }
}
