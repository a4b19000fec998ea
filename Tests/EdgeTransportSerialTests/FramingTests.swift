// Framing: CRC-32C, COBS, frame encode/decode, the worked examples of docs/serial-framing.md, noise and fuzzing.
import EdgeRouting
import EdgeTestSupport
import EdgeTransportSerial
import Foundation
import Testing

/// The worked examples of docs/serial-framing.md §8, byte for byte (the doc is parsed and compared as well).
enum WorkedExamples {
    static let helloBody = [UInt8](hex: "01 00 00 40 00 00 cd ab 34 12 00 00 00 00 10 27 00 00")
    static let helloDecoded = [UInt8](hex: "01 01 00 00 40 00 00 cd ab 34 12 00 00 00 00 10 27 00 00 47 55 22 5b")
    static let helloWire = [UInt8](hex: "03 01 01 01 02 40 01 05 cd ab 34 12 01 01 01 03 10 27 01 05 47 55 22 5b 00")
    static let hello = SerialHello(maxFrameSize: 16384, nonce: 0x1234_abcd, keepaliveMilliseconds: 10000)

    static let ackDecoded = [UInt8](hex: "02 01 00 00 01 00 00 fe ca ad 0b cd ab 34 12 00 00 00 00 8c 47 57 4f")
    static let ackWire = [UInt8](hex: "03 02 01 01 02 01 01 09 fe ca ad 0b cd ab 34 12 01 01 01 05 8c 47 57 4f 00")
    static let ack = SerialHello(
        maxFrameSize: 256, nonce: 0x0bad_cafe, peerNonce: 0x1234_abcd, keepaliveMilliseconds: 0)

    static let routingMessage = [UInt8](hex: "83 81 82 00 44 65 63 68 6f 81 82 00 43 61 70 70 42 68 69")
    static let dataDecoded = [UInt8](
        hex: "03 83 81 82 00 44 65 63 68 6f 81 82 00 43 61 70 70 42 68 69 c5 a6 c2 c5")
    static let dataWire = [UInt8](
        hex: "05 03 83 81 82 08 44 65 63 68 6f 81 82 0c 43 61 70 70 42 68 69 c5 a6 c2 c5 00")

    static let keepaliveDecoded = [UInt8](hex: "04 4e c4 e7 95")
    static let keepaliveWire = [UInt8](hex: "06 04 4e c4 e7 95 00")
}

@Suite("CRC-32C and COBS", .cpuBound)
struct ChecksumTests {
    @Test func crc32cCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum(Array("123456789".utf8)) == CRC32C.checkValue)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        // RFC 3720 B.4 test vectors: 32 bytes of zeros, 32 bytes of 0xFF, 0x00...0x1F.
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        // Incremental equals one-shot.
        var crc = CRC32C()
        crc.update(Array("12345".utf8))
        for byte in "6789".utf8 { crc.update(byte) }
        #expect(crc.value == CRC32C.checkValue)
    }

    @Test(arguments: [
        ("empty", "", "01"),
        ("one zero", "00", "01 01"),
        ("two zeros", "00 00", "01 01 01"),
        ("zero between", "11 22 00 33", "03 11 22 02 33"),
        ("no zeros", "11 22 33 44", "05 11 22 33 44"),
        ("trailing zeros", "11 00 00 00", "02 11 01 01 01"),
    ])
    func cobsVectors(name: String, plain: String, encoded: String) throws {
        #expect(COBS.encode([UInt8](hex: plain)) == [UInt8](hex: encoded), "\(name)")
        #expect(try COBS.decode([UInt8](hex: encoded)) == [UInt8](hex: plain), "\(name)")
    }

    @Test func cobsLongRuns() throws {
        // 254 non-zero bytes: one full block, no extra code byte (Cheshire & Baker's form).
        let run254 = (1...254).map { UInt8($0) }
        #expect(COBS.encode(run254) == [0xFF] + run254)
        #expect(try COBS.decode([0xFF] + run254) == run254)
        // The form with a trailing 0x01 code byte decodes to the same bytes.
        #expect(try COBS.decode([0xFF] + run254 + [0x01]) == run254)
        // 255 non-zero bytes: a full block, then a block of one.
        let run255 = (0..<255).map { UInt8($0 % 255 + 1) }
        #expect(COBS.encode(run255) == [0xFF] + run255[0..<254] + [0x02, run255[254]])
        // A zero first, then 254 non-zero bytes.
        #expect(COBS.encode([0] + run254) == [0x01, 0xFF] + run254)
        // 254 non-zero bytes then a zero.
        #expect(COBS.encode(run254 + [0]) == [0xFF] + run254 + [0x01, 0x01])
        // 254 non-zero, zero, 254 non-zero.
        let mixed = run254 + [0] + run254
        #expect(try COBS.decode(COBS.encode(mixed)) == mixed)
        // Long runs of zeros.
        let zeros = [UInt8](repeating: 0, count: 600)
        #expect(COBS.encode(zeros) == [UInt8](repeating: 1, count: 601))
        #expect(try COBS.decode(COBS.encode(zeros)) == zeros)
    }

    @Test func cobsRoundTripsAndBoundsOverhead() throws {
        var generator = SeededGenerator(seed: 0xC0B5)
        for length in [0, 1, 2, 253, 254, 255, 256, 507, 508, 509, 1000, 4096] {
            for zeroProbability in [0, 1, 50] {
                let input = (0..<length).map { _ -> UInt8 in
                    Int.random(in: 0..<100, using: &generator) < zeroProbability
                        ? 0 : UInt8.random(in: 1...255, using: &generator)
                }
                let encoded = COBS.encode(input)
                #expect(!encoded.contains(0))
                #expect(encoded.count <= COBS.maxEncodedLength(length))
                #expect(try COBS.decode(encoded) == input)
            }
        }
    }

    @Test func cobsRejectsInvalidInput() {
        #expect(throws: COBSError.empty) { try COBS.decode([]) }
        #expect(throws: COBSError.truncated) { try COBS.decode([0x05, 0x11, 0x22]) }
        #expect(throws: COBSError.zeroInData) { try COBS.decode([0x03, 0x11, 0x00]) }
        #expect(throws: COBSError.zeroInData) { try COBS.decode([0x00]) }
    }
}

@Suite("Serial frames", .cpuBound)
struct FrameTests {
    @Test func workedExamplesByteForByte() throws {
        #expect(WorkedExamples.hello.encode() == WorkedExamples.helloBody)
        #expect(SerialFrameEncoder.encode(.hello(WorkedExamples.hello)) == WorkedExamples.helloWire)
        #expect(try COBS.decode(Array(WorkedExamples.helloWire.dropLast())) == WorkedExamples.helloDecoded)

        #expect(SerialFrameEncoder.encode(.helloAck(WorkedExamples.ack)) == WorkedExamples.ackWire)
        #expect(try COBS.decode(Array(WorkedExamples.ackWire.dropLast())) == WorkedExamples.ackDecoded)

        let message = RoutingMessage(
            onwardRoute: [.local("echo")], returnRoute: [.local("app")], payload: Array("hi".utf8))
        #expect(message.encode() == WorkedExamples.routingMessage)
        #expect(SerialFrameEncoder.encode(.data(message.encode())) == WorkedExamples.dataWire)
        #expect(try COBS.decode(Array(WorkedExamples.dataWire.dropLast())) == WorkedExamples.dataDecoded)
        #expect(
            SerialFrameEncoder.encode(.data(message.encode()), leadingDelimiter: true) == [0] + WorkedExamples.dataWire)

        #expect(SerialFrameEncoder.encode(.keepalive) == WorkedExamples.keepaliveWire)

        // And the decoder turns the wire bytes back into the frames.
        var decoder = SerialFrameDecoder()
        let events = decoder.feed(
            WorkedExamples.helloWire + WorkedExamples.ackWire + WorkedExamples.dataWire + WorkedExamples.keepaliveWire)
        #expect(
            events == [
                .frame(.hello(WorkedExamples.hello)), .frame(.helloAck(WorkedExamples.ack)),
                .frame(.data(WorkedExamples.routingMessage)), .frame(.keepalive),
            ])
        let decoded = try? RoutingMessage(decoding: WorkedExamples.routingMessage)
        #expect(decoded == message)
    }

    /// The hex dumps in docs/serial-framing.md are the ones tested here.
    @Test func documentMatchesTheWorkedExamples() throws {
        let doc = try String(
            contentsOf: TestData.packageRoot.appendingPathComponent("docs/serial-framing.md"), encoding: .utf8)
        func block(_ label: String) throws -> [UInt8] {
            // Lines like "hello wire:  03 01 01 ..." inside the examples section.
            guard let line = doc.split(separator: "\n").first(where: { $0.hasPrefix(label + ":") }) else {
                throw TestDataError("docs/serial-framing.md has no line '\(label):'")
            }
            return [UInt8](hex: String(line.dropFirst(label.count + 1)))
        }
        #expect(try block("hello body") == WorkedExamples.helloBody)
        #expect(try block("hello decoded") == WorkedExamples.helloDecoded)
        #expect(try block("hello wire") == WorkedExamples.helloWire)
        #expect(try block("ack decoded") == WorkedExamples.ackDecoded)
        #expect(try block("ack wire") == WorkedExamples.ackWire)
        #expect(try block("message") == WorkedExamples.routingMessage)
        #expect(try block("data decoded") == WorkedExamples.dataDecoded)
        #expect(try block("data wire") == WorkedExamples.dataWire)
        #expect(try block("keepalive decoded") == WorkedExamples.keepaliveDecoded)
        #expect(try block("keepalive wire") == WorkedExamples.keepaliveWire)
        #expect(doc.contains("0xE3069283"))
    }

    @Test func roundTripsEveryBodySizeUpToTheMaximum() {
        let maxFrame = 1024
        var decoder = SerialFrameDecoder(maxFrameSize: maxFrame)
        var generator = SeededGenerator(seed: 7)
        for size in 0...(maxFrame - SerialFraming.overhead) {
            let body = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let wire = SerialFrameEncoder.encode(.data(body), leadingDelimiter: size % 2 == 0)
            #expect(wire.last == 0 && !wire.dropLast().dropFirst().contains(0))
            #expect(wire.count <= COBS.maxEncodedLength(size + 5) + 2)
            // Feed in two arbitrary pieces.
            let cut = size == 0 ? 0 : Int.random(in: 0..<wire.count, using: &generator)
            let events = decoder.feed(wire[..<cut]) + decoder.feed(wire[cut...])
            #expect(events == [.frame(.data(body))], "size \(size)")
        }
        #expect(decoder.bufferedByteCount == 0)
        // The default maximum: one frame of exactly 16 KiB.
        var big = SerialFrameDecoder()
        let body = [UInt8](repeating: 0x5A, count: SerialFraming.defaultMaxFrameSize - SerialFraming.overhead)
        #expect(big.feed(SerialFrameEncoder.encode(.data(body))) == [.frame(.data(body))])
    }

    @Test func oversizeFramesAreDroppedOnceAndTheNextFrameDecodes() {
        var decoder = SerialFrameDecoder(maxFrameSize: 64)
        let fits = [UInt8](repeating: 7, count: 59)
        let tooBig = [UInt8](repeating: 7, count: 60)
        #expect(decoder.feed(SerialFrameEncoder.encode(.data(fits))) == [.frame(.data(fits))])
        #expect(decoder.feed(SerialFrameEncoder.encode(.data(tooBig))) == [.dropped(.oversize)])
        // A long run without a delimiter: reported once, memory stays bounded.
        let flood = [UInt8](repeating: 0x41, count: 100_000)
        #expect(decoder.feed(flood) == [.dropped(.oversize)])
        #expect(decoder.bufferedByteCount <= decoder.maxEncodedLength)
        #expect(decoder.isDiscarding)
        // Without a leading delimiter the next frame is the tail of the oversize one (skipped); ockam-edge's
        // leading 0x00 ends the oversize frame, so the frame after it decodes.
        #expect(decoder.feed(SerialFrameEncoder.encode(.data(fits))) == [])
        #expect(!decoder.isDiscarding)
        #expect(decoder.feed(SerialFrameEncoder.encode(.data(fits))) == [.frame(.data(fits))])
        _ = decoder.feed(flood)
        #expect(decoder.feed(SerialFrameEncoder.encode(.data(fits), leadingDelimiter: true)) == [.frame(.data(fits))])
    }

    @Test func badFramesAreClassified() {
        var decoder = SerialFrameDecoder()
        let good = SerialFrameEncoder.encode(.data([1, 2, 3]))
        var flipped = good
        flipped[3] ^= 0x10
        #expect(decoder.feed(flipped) == [.dropped(.crcMismatch)])
        #expect(decoder.feed([0x05, 0x11, 0x00]) == [.dropped(.badEncoding)])
        #expect(decoder.feed(COBS.encode([0x03, 0x01, 0x02]) + [0]) == [.dropped(.tooShort)])
        var unknown: [UInt8] = []
        SerialFrameEncoder.encode(type: SerialFrameType(rawValue: 0x7F), body: [1], into: &unknown)
        #expect(decoder.feed(unknown) == [.dropped(.unknownType)])
        var shortHello: [UInt8] = []
        SerialFrameEncoder.encode(type: .hello, body: [1, 0, 0, 1], into: &shortHello)
        #expect(decoder.feed(shortHello) == [.dropped(.badHello)])
        var zeroNonce = SerialHello(maxFrameSize: 128, nonce: 1, keepaliveMilliseconds: 0).encode()
        zeroNonce[6] = 0
        var badHello: [UInt8] = []
        SerialFrameEncoder.encode(type: .hello, body: zeroNonce, into: &badHello)
        #expect(decoder.feed(badHello) == [.dropped(.badHello)])
        let tinyLimit = SerialHello(maxFrameSize: 63, nonce: 9, keepaliveMilliseconds: 0)
        #expect(decoder.feed(SerialFrameEncoder.encode(.hello(tinyLimit))) == [.dropped(.badHello)])
        // An ack must name the hello it answers.
        let ackWithoutPeer = SerialHello(maxFrameSize: 128, nonce: 9, peerNonce: 0, keepaliveMilliseconds: 0)
        #expect(decoder.feed(SerialFrameEncoder.encode(.helloAck(ackWithoutPeer))) == [.dropped(.badHello)])
        // Later versions may append hello fields: ignored.
        var longer: [UInt8] = []
        let future = SerialHello(version: 2, maxFrameSize: 128, nonce: 9, keepaliveMilliseconds: 5)
        SerialFrameEncoder.encode(type: .hello, body: future.encode() + [0xAA, 0xBB], into: &longer)
        #expect(decoder.feed(longer) == [.frame(.hello(future))])
        // Consecutive delimiters are no frames at all.
        #expect(decoder.feed([0, 0, 0, 0]) == [])
        #expect(decoder.feed(good) == [.frame(.data([1, 2, 3]))])
    }

    @Test func resynchronisesAfterGarbage() {
        var generator = SeededGenerator(seed: 42)
        var decoder = SerialFrameDecoder(maxFrameSize: 512)
        var delivered = 0
        var sent = 0
        for round in 0..<500 {
            // Garbage (may contain zeros) between frames, as line noise or a boot banner would.
            let garbage = (0..<Int.random(in: 0...40, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            _ = decoder.feed(garbage)
            let body = (0..<Int.random(in: 0...200, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            sent += 1
            // Each frame as ockam-edge writes it: with a leading delimiter, which ends whatever garbage preceded.
            let events = decoder.feed(SerialFrameEncoder.encode(.data(body), leadingDelimiter: true))
            if events.last == .frame(.data(body)) { delivered += 1 } else { Issue.record("round \(round): \(events)") }
        }
        #expect(delivered == sent)
    }

    @Test func flippedBitsAreCaughtAndTheNextFrameStillDecodes() {
        var generator = SeededGenerator(seed: 99)
        var decoder = SerialFrameDecoder()
        var dropped: [SerialDropReason: Int] = [:]
        var wrongFrames = 0
        for _ in 0..<2000 {
            let body = (0..<Int.random(in: 1...300, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            var wire = SerialFrameEncoder.encode(.data(body))
            // Flip 1-3 bits anywhere (a flipped delimiter splits or merges frames).
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let index = Int.random(in: 0..<wire.count, using: &generator)
                wire[index] ^= UInt8(1) << UInt8.random(in: 0...7, using: &generator)
            }
            for event in decoder.feed(wire) {
                switch event {
                case .dropped(let reason): dropped[reason, default: 0] += 1
                case .frame(let frame): if frame != .data(body) { wrongFrames += 1 }
                }
            }
            // The next clean frame always gets through (the writer's leading delimiter resynchronises).
            let next = decoder.feed(SerialFrameEncoder.encode(.data([0xAB]), leadingDelimiter: true))
            #expect(next.last == .frame(.data([0xAB])))
        }
        #expect(wrongFrames == 0, "a corrupted frame passed the CRC")
        #expect(dropped[.crcMismatch, default: 0] > 0)
    }

    /// 10,000 random chunks: no crash, bounded buffer, every delimiter accounted for.
    @Test func fuzzLikeRandomChunks() {
        var generator = SeededGenerator(seed: 0x5EED_F00D)
        var decoder = SerialFrameDecoder(maxFrameSize: 256)
        var events = 0
        for iteration in 0..<10_000 {
            let length = Int.random(in: 0...512, using: &generator)
            let zeroBias = iteration % 3 == 0
            var chunk = (0..<length).map { _ -> UInt8 in
                zeroBias && Int.random(in: 0..<16, using: &generator) == 0
                    ? 0 : UInt8.random(in: 0...255, using: &generator)
            }
            if iteration % 7 == 0 {
                // Splice in a valid frame, sometimes cut short.
                let frame = SerialFrameEncoder.encode(
                    .data((0..<Int.random(in: 0...300, using: &generator)).map { UInt8($0 & 0xff) }))
                chunk += frame.prefix(Int.random(in: 0...frame.count, using: &generator))
            }
            events += decoder.feed(chunk).count
            #expect(decoder.bufferedByteCount <= decoder.maxEncodedLength)
        }
        #expect(events > 0)
    }

    @Test func hostileSizesNeverAllocateBeyondTheLimit() {
        // Every maximum is clamped to 64 ... 1 MiB, whatever the caller asks for.
        #expect(SerialFrameDecoder(maxFrameSize: 0).maxFrameSize == 64)
        #expect(SerialFrameDecoder(maxFrameSize: .max).maxFrameSize == 1 << 20)
        var decoder = SerialFrameDecoder(maxFrameSize: .max)
        _ = decoder.feed([UInt8](repeating: 1, count: 2 << 20))
        #expect(decoder.bufferedByteCount <= decoder.maxEncodedLength)
    }
}
