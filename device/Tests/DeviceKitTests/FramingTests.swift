// The device's framing against docs/serial-framing.md §8, byte for byte, and against hostile input.
import Testing

@testable import DeviceKit

func hex(_ text: String) -> [UInt8] {
    text.split(separator: " ").map { UInt8($0, radix: 16)! }
}

/// Feeds bytes to a receiver and collects what it completed (DATA bodies copied out).
func receive(_ bytes: [UInt8], into receiver: inout FrameReceiver) -> [(ReceivedFrame, [UInt8])] {
    var out: [(ReceivedFrame, [UInt8])] = []
    for byte in bytes {
        if let frame = receiver.feed(byte) { out.append((frame, frame == .data ? Array(receiver.body) : [])) }
    }
    return out
}

@Suite struct FramingTests {
    @Test func crcCheckValue() {
        var crc = CRC32CCore.initial
        for byte in "123456789".utf8 { crc = CRC32CCore.update(crc, byte: byte) }
        #expect(CRC32CCore.finish(crc) == 0xE306_9283)
    }

    @Test func encodesTheDocumentsWorkedExamples() {
        let sender = FrameSender(maxFrameSize: 256)
        let hello = sender.encode(.hello(nonce: 0x1234_ABCD), ourMaxFrameSize: 16384, keepaliveMilliseconds: 10_000)!
        #expect(Array(hello) == [0] + hex("03 01 01 01 02 40 01 05 cd ab 34 12 01 01 01 03 10 27 01 05 47 55 22 5b 00"))
        let ack = sender.encode(.helloAck(nonce: 0x0BAD_CAFE, peerNonce: 0x1234_ABCD), ourMaxFrameSize: 256,
                                keepaliveMilliseconds: 0)!
        #expect(Array(ack) == [0] + hex("03 02 01 01 02 01 01 09 fe ca ad 0b cd ab 34 12 01 01 01 05 8c 47 57 4f 00"))
        let keepalive = sender.encode(.keepalive, ourMaxFrameSize: 256, keepaliveMilliseconds: 0)!
        #expect(Array(keepalive) == [0] + hex("06 04 4e c4 e7 95 00"))
        let message = hex("83 81 82 00 44 65 63 68 6f 81 82 00 43 61 70 70 42 68 69")
        for (index, byte) in message.enumerated() { sender.bodyBuffer[index] = byte }
        let data = sender.encode(type: SerialWire.dataType, bodyLength: message.count)!
        #expect(Array(data) == [0] + hex("05 03 83 81 82 08 44 65 63 68 6f 81 82 0c 43 61 70 70 42 68 69 c5 a6 c2 c5 00"))
    }

    @Test func decodesTheDocumentsWorkedExamples() {
        var receiver = FrameReceiver(maxFrameSize: 256)
        let frames = receive(
            hex("03 01 01 01 02 40 01 05 cd ab 34 12 01 01 01 03 10 27 01 05 47 55 22 5b 00")
                + hex("05 03 83 81 82 08 44 65 63 68 6f 81 82 0c 43 61 70 70 42 68 69 c5 a6 c2 c5 00")
                + hex("06 04 4e c4 e7 95 00"), into: &receiver)
        #expect(frames.count == 3)
        #expect(frames[0].0 == .hello(LinkHello(maxFrameSize: 16384, nonce: 0x1234_ABCD, keepaliveMilliseconds: 10_000)))
        #expect(frames[1].0 == .data)
        #expect(frames[1].1 == hex("83 81 82 00 44 65 63 68 6f 81 82 00 43 61 70 70 42 68 69"))
        #expect(frames[2].0 == .keepalive)
    }

    @Test func garbageBeforeAFrameIsDroppedOnItsOwn() {
        var receiver = FrameReceiver(maxFrameSize: 256)
        let frames = receive([0x55, 0x12, 0x00] + hex("06 04 4e c4 e7 95 00"), into: &receiver)
        #expect(frames.map(\.0) == [.dropped(.badEncoding), .keepalive])
    }

    @Test func rejectsCorruptShortAndUnknownFrames() {
        var receiver = FrameReceiver(maxFrameSize: 256)
        #expect(receive(hex("06 04 4e c4 e7 96 00"), into: &receiver).map(\.0) == [.dropped(.crcMismatch)])
        #expect(receive(hex("02 04 00"), into: &receiver).map(\.0) == [.dropped(.tooShort)])
        // A hello with nonce 0 (well-formed frame, bad hello).
        let sender = FrameSender(maxFrameSize: 256)
        let bad = sender.encode(.hello(nonce: 0), ourMaxFrameSize: 256, keepaliveMilliseconds: 0)!
        #expect(receive(Array(bad), into: &receiver).map(\.0) == [.dropped(.badHello)])
        for (index, byte) in [UInt8]([1, 2, 3]).enumerated() { sender.bodyBuffer[index] = byte }
        let unknown = sender.encode(type: 0x7F, bodyLength: 3)!
        #expect(receive(Array(unknown), into: &receiver).map(\.0) == [.dropped(.unknownType)])
        // Two delimiters in a row are not a frame.
        #expect(receive([0, 0, 0], into: &receiver).isEmpty)
    }

    @Test func anOversizeFrameIsReportedOnceAndTheNextOneArrives() {
        var receiver = FrameReceiver(maxFrameSize: 64)
        let long = [UInt8](repeating: 0x41, count: 500)
        let frames = receive(long + [0] + hex("06 04 4e c4 e7 95 00"), into: &receiver)
        #expect(frames.map(\.0) == [.dropped(.oversize), .keepalive])
    }

    @Test func fullCOBSBlocksRoundTrip() {
        // 254 and 600 non-zero bytes: 0xFF blocks with no extra 0x01 after a final full block; zeros inside.
        for count in [253, 254, 255, 508, 600] {
            let sender = FrameSender(maxFrameSize: 1024)
            var body = [UInt8]()
            for index in 0..<count { body.append(index % 97 == 50 ? 0 : UInt8(index % 251 + 1)) }
            for (index, byte) in body.enumerated() { sender.bodyBuffer[index] = byte }
            let wire = Array(sender.encode(type: SerialWire.dataType, bodyLength: count)!)
            #expect(!wire.dropFirst().dropLast().contains(0))
            var receiver = FrameReceiver(maxFrameSize: 1024)
            let frames = receive(wire, into: &receiver)
            #expect(frames.count == 1 && frames[0].1 == body, "count \(count)")
        }
    }

    @Test func theDecoderAcceptsAnExtraBlockAfterAFullOne() {
        var decoder = COBSStreamDecoder()
        var out: [UInt8] = []
        for byte in [UInt8(0xFF)] + [UInt8](repeating: 7, count: 254) + [0x01] {
            if case .byte(let b) = decoder.push(byte) { out.append(b) }
        }
        #expect(decoder.isCompleteFrame)
        #expect(out == [UInt8](repeating: 7, count: 254))
    }

    @Test func randomBytesNeverTrapAndNeverOverfillTheBuffer() {
        var receiver = FrameReceiver(maxFrameSize: 64)
        var state: UInt64 = 0x1234_5678
        for _ in 0..<200_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let byte = UInt8(truncatingIfNeeded: state >> 56)
            _ = receiver.feed(byte % 7 == 0 ? 0 : byte)
        }
        #expect(receiver.maxFrameSize == 64)
    }
}
