import EdgeRouting
import EdgeTestSupport
import Testing

@testable import EdgeTransportBLE

@Suite("BLE fragmentation", .cpuBound)
struct FramingTests {
    static let sduSizes = [23, 24, 27, 100, 251, 672, 2048, 65535]
    static let messageSizes = [0, 1, 21, 22, 23, 24, 100, 420, 671, 672, 900, 4096, 65534, 65535, 65536, 200_000]

    func reassemble(_ sdus: [[UInt8]], limit: Int = 1 << 20) throws -> [[UInt8]] {
        var reassembler = BLEReassembler(maxMessageSize: limit)
        var out: [[UInt8]] = []
        for sdu in sdus {
            if case .message(let m) = try reassembler.push(sdu[...]) { out.append(m) }
        }
        #expect(reassembler.isIdle)
        return out
    }

    @Test(arguments: sduSizes)
    func roundTripsEveryMessageSize(_ sduSize: Int) throws {
        var generator = SeededGenerator(seed: UInt64(sduSize))
        for size in Self.messageSizes {
            let message = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let sdus = try BLEFraming.fragment(message, maxSDUSize: sduSize, maxMessageSize: 1 << 20)
            #expect(sdus.allSatisfy { $0.count <= sduSize && !$0.isEmpty }, "size \(size)")
            #expect(sdus.count == BLEFraming.sduCount(messageSize: size, maxSDUSize: sduSize), "size \(size)")
            if size + 1 <= sduSize {
                #expect(sdus.count == 1 && sdus[0][0] == 0x00)
            } else {
                #expect(sdus[0][0] == 0x01 && sdus.dropFirst().allSatisfy { $0[0] == 0x02 })
                // Every fragment but the last is full.
                #expect(sdus.dropLast().allSatisfy { $0.count == sduSize }, "size \(size)")
            }
            #expect(try reassemble(sdus) == [message], "size \(size) at SDU \(sduSize)")
        }
    }

    @Test func handshakeSizedMessagesAtTheMinimumMTU() throws {
        // Secure-channel handshake messages are ~420–900 bytes; at MTU 23 they need 20–42 SDUs.
        #expect(BLEFraming.sduCount(messageSize: 420, maxSDUSize: 23) == 20)
        #expect(BLEFraming.sduCount(messageSize: 900, maxSDUSize: 23) == 42)
        #expect(BLEFraming.sduCount(messageSize: 22, maxSDUSize: 23) == 1)
        #expect(BLEFraming.sduCount(messageSize: 23, maxSDUSize: 23) == 2)
    }

    @Test func wireFormatIsAsDocumented() throws {
        #expect(try BLEFraming.fragment([1, 2, 3], maxSDUSize: 23, maxMessageSize: 100) == [[0, 1, 2, 3]])
        let message = Array(UInt8(0)..<UInt8(30))
        let sdus = try BLEFraming.fragment(message, maxSDUSize: 23, maxMessageSize: 100)
        #expect(sdus == [[1, 0, 0, 0, 30] + Array(message[0..<18]), [2] + Array(message[18..<30])])
    }

    @Test func refusesMessagesOverTheLimit() {
        #expect(throws: BLETransportError.messageTooLarge(size: 101, limit: 100)) {
            try BLEFraming.fragment([UInt8](repeating: 0, count: 101), maxSDUSize: 672, maxMessageSize: 100)
        }
        #expect(throws: BLETransportError.sduTooLarge(size: 23, limit: 22)) {
            try BLEFraming.fragment([1], maxSDUSize: 22, maxMessageSize: 100)
        }
    }

    @Test func oversizeMessagesAreSkippedWithoutLosingTheLink() throws {
        var reassembler = BLEReassembler(maxMessageSize: 50)
        let big = try BLEFraming.fragment([UInt8](repeating: 7, count: 120), maxSDUSize: 23, maxMessageSize: 1000)
        var outputs: [BLEReassembler.Output] = []
        for sdu in big { outputs.append(try reassembler.push(sdu[...])) }
        #expect(outputs.first == .oversize(declared: 120))
        #expect(outputs.dropFirst().allSatisfy { $0 == .incomplete })
        #expect(reassembler.isIdle && reassembler.bufferedBytes == 0)
        // The next message is fine.
        #expect(try reassembler.push([0, 9, 9][...]) == .message([9, 9]))
        // A complete SDU over the limit is also reported, not buffered.
        #expect(try reassembler.push([0] + [UInt8](repeating: 1, count: 51)) == .oversize(declared: 51))
    }

    /// A first fragment that carries a whole over-limit message leaves nothing to skip: the next multi-fragment
    /// message is delivered, not silently swallowed as the rest of the skipped one.
    @Test func anOversizeMessageInOneFirstFragmentLeavesNothingToSkip() throws {
        var reassembler = BLEReassembler(maxMessageSize: 10)
        #expect(try reassembler.push([0x01, 0, 0, 0, 12] + [UInt8](repeating: 5, count: 12)) == .oversize(declared: 12))
        #expect(reassembler.isIdle)
        #expect(try reassembler.push([0x01, 0, 0, 0, 4, 1, 2][...]) == .incomplete)
        #expect(try reassembler.push([0x02, 3, 4][...]) == .message([1, 2, 3, 4]))
    }

    @Test(arguments: [
        ([[UInt8]()], "empty SDU"),
        ([[0x03, 1]], "unknown fragment header 0x03"),
        ([[0x80]], "unknown fragment header 0x80"),
        ([[0x02, 1]], "continuation fragment with no message in progress"),
        ([[0x01, 0, 0, 0, 10, 1], [0x00, 1]], "new message while 9 bytes are outstanding"),
        ([[0x01, 0, 0, 0, 10, 1], [0x01, 0, 0, 0, 2, 1]], "new message while 9 bytes are outstanding"),
        ([[0x01, 0, 0, 0, 2, 1], [0x02, 1, 2]], "continuation of 2 bytes where 1 remain"),
        ([[0x01, 0, 0, 0, 2, 1], [0x02]], "empty continuation fragment"),
        ([[0x01, 0, 0, 0, 1, 1, 2]], "first fragment carries 2 bytes of a 1-byte message"),
        ([[0x01, 0, 0]], "first fragment shorter than its length field"),
    ] as [([[UInt8]], String)])
    func framingViolationsAreLinkFatal(_ sdus: [[UInt8]], _ reason: String) {
        var reassembler = BLEReassembler(maxMessageSize: 1000)
        #expect(throws: BLETransportError.framingViolation(reason)) {
            for sdu in sdus { _ = try reassembler.push(sdu[...]) }
        }
    }

    @Test func decoderReportsMalformedMessagesAndKeepsGoing() throws {
        let good = RoutingMessage(onwardRoute: [.local("echo")], returnRoute: [.local("app")], payload: [1, 2, 3])
        let sdus: [ArraySlice<UInt8>] = [
            [0x00, 0xff, 0x00][...],  // not CBOR for a routing message
            try BLEFraming.fragment(good.encode(), maxSDUSize: 23, maxMessageSize: 100)[0][...],
        ]
        let (results, violation) = BLESDUDecoder.decodeAll(sdus, maxMessageSize: 100)
        #expect(violation == nil)
        #expect(results.count == 2)
        if case .malformed = results[0] {} else { Issue.record("expected malformed, got \(results[0])") }
        #expect(results[1] == .message(good))
    }

    @Test func decoderStopsAtTheFirstViolation() {
        let (results, violation) = BLESDUDecoder.decodeAll([[0x02, 1][...], [0x00, 1][...]], maxMessageSize: 100)
        #expect(results.isEmpty)
        #expect(violation == .framingViolation("continuation fragment with no message in progress"))
    }

    /// Random SDU sizes, random messages, random garbage: the decoder never crashes, never buffers more than its
    /// limit, and round-trips what the fragmenter produced.
    @Test func propertyRandomSequences() throws {
        var generator = SeededGenerator(seed: 0xB1E)
        for round in 0..<300 {
            let sduSize = Int.random(in: 23...700, using: &generator)
            let limit = Int.random(in: 1...5000, using: &generator)
            var reassembler = BLEReassembler(maxMessageSize: limit)
            for _ in 0..<5 {
                let size = Int.random(in: 0...6000, using: &generator)
                let message = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
                let sdus = try BLEFraming.fragment(message, maxSDUSize: sduSize, maxMessageSize: 1 << 20)
                var got: [UInt8]?
                for sdu in sdus {
                    switch try reassembler.push(sdu[...]) {
                    case .message(let m): got = m
                    case .oversize(let declared): #expect(declared == size && size > limit)
                    case .incomplete: break
                    }
                    #expect(reassembler.bufferedBytes <= limit)
                }
                if size <= limit { #expect(got == message, "round \(round)") } else { #expect(got == nil) }
                #expect(reassembler.isIdle)
            }
            // Garbage must throw or be handled, never trap.
            var garbage = BLEReassembler(maxMessageSize: limit)
            for _ in 0..<20 {
                let sdu = (0..<Int.random(in: 0...40, using: &generator)).map { _ in
                    UInt8.random(in: 0...3, using: &generator)
                }
                do { _ = try garbage.push(sdu[...]) } catch { garbage.reset() }
                #expect(garbage.bufferedBytes <= limit)
            }
        }
    }
}
