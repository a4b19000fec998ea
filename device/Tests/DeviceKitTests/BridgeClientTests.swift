// Routing messages and the bridge client's retry buffer, and a whole device node against a scripted gateway.
import Testing

@testable import DeviceKit

/// Writes a routing message with EdgeWire's encoding rules, for replies a gateway would send.
func routingMessage(onward: [String], returnRoute: [String], payload: [UInt8]) -> [UInt8] {
    func bytes(_ b: [UInt8]) -> [UInt8] { (b.count < 24 ? [0x40 | UInt8(b.count)] : [0x58, UInt8(b.count)]) + b }
    func route(_ r: [String]) -> [UInt8] { [0x80 | UInt8(r.count)] + r.flatMap { [0x82, 0x00] + bytes(Array($0.utf8)) } }
    return [0x83] + route(onward) + route(returnRoute) + bytes(payload)
}

func bare(_ text: String) -> [UInt8] { [UInt8(text.utf8.count)] + Array(text.utf8) }

func withBytes<R>(_ bytes: [UInt8], _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    bytes.withUnsafeBufferPointer(body)
}

@Suite struct BridgeClientTests {
    @Test func writesAReadingAsTheDocumentedRoutingMessage() {
        var client = BridgeClient(configuration: .init(bridge: "sensors"))
        let id = withBytes(Array("t=21.5".utf8)) { client.enqueue($0) }
        #expect(id == 0)
        let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 128)
        defer { buffer.deallocate() }
        var writer = ByteWriter(buffer)
        #expect(client.writeNextDue(now: 0, into: &writer))
        #expect(Array(buffer[0..<writer.count])
            == routingMessage(onward: ["sensors"], returnRoute: ["r00000000"], payload: Array("t=21.5".utf8)))
    }

    @Test func keepsReadingsUntilAcknowledgedAndResendsAfterTheTimeout() {
        var client = BridgeClient(configuration: .init(bridge: "b", capacity: 2, retryMilliseconds: 1_000))
        let r1 = withBytes([1]) { client.enqueue($0) }
        #expect(r1 == 0)
        let r2 = withBytes([2]) { client.enqueue($0) }
        #expect(r2 == 1)
        #expect(withBytes([3]) { client.enqueue($0) } == nil)  // full
        #expect(client.isFull)
        var other = BridgeClient(configuration: .init(bridge: "b", maxPayload: 48))
        #expect(withBytes([UInt8](repeating: 9, count: 49)) { other.enqueue($0) } == nil)  // too long
        let r3 = withBytes([UInt8](repeating: 9, count: 48)) { other.enqueue($0) }
        #expect(r3 == 0)
        let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 128)
        defer { buffer.deallocate() }
        var writer = ByteWriter(buffer)
        #expect(client.writeNextDue(now: 0, into: &writer))
        writer = ByteWriter(buffer)
        #expect(!client.writeNextDue(now: 999, into: &writer))  // window 1: reading 1 waits for reading 0
        #expect(client.millisecondsUntilDue(now: 999) == 1)
        #expect(client.writeNextDue(now: 1_000, into: &writer))  // reading 0 again
        #expect(client.resent == 1)

        // The bridge's answer, as the gateway routes it back: onward [0#r00000000].
        let reply = routingMessage(onward: ["r00000000"], returnRoute: ["0123", "b"], payload: bare("ok 41"))
        let answer = withBytes(reply) { body -> BridgeClient.Answer in
            let view = RoutingCodec.decode(body)!
            return client.handle(destination: view.destination!, payload: UnsafeBufferPointer(
                rebasing: body[view.payloadStart..<(view.payloadStart + view.payloadCount)]), in: body)
        }
        #expect(answer == .acknowledged(id: 0, sequence: 41))
        #expect(client.pending == 1)
        let again = withBytes(reply) { body -> BridgeClient.Answer in
            let view = RoutingCodec.decode(body)!
            return client.handle(destination: view.destination!, payload: UnsafeBufferPointer(
                rebasing: body[view.payloadStart..<(view.payloadStart + view.payloadCount)]), in: body)
        }
        #expect(again == .duplicate(id: 0))
        writer = ByteWriter(buffer)
        #expect(client.writeNextDue(now: 1_001, into: &writer))  // now reading 1
    }

    @Test func anErrorAnswerKeepsTheReading() {
        var client = BridgeClient(configuration: .init(bridge: "b"))
        _ = withBytes([1]) { client.enqueue($0) }
        let reply = routingMessage(onward: ["r00000000"], returnRoute: [], payload: bare("error store"))
        let answer = withBytes(reply) { body -> BridgeClient.Answer in
            let view = RoutingCodec.decode(body)!
            return client.handle(destination: view.destination!, payload: UnsafeBufferPointer(
                rebasing: body[view.payloadStart..<(view.payloadStart + view.payloadCount)]), in: body)
        }
        #expect(answer == .refused(id: 0))
        #expect(client.pending == 1)
    }

    @Test func parsesOnlyWellFormedOkAnswers() {
        func parse(_ bytes: [UInt8]) -> UInt64? { withBytes(bytes) { BridgeClient.parseOK($0) } }
        #expect(parse(bare("ok 0")) == 0)
        #expect(parse(bare("ok 18446744073709551615")) == UInt64.max)
        #expect(parse(bare("ok 18446744073709551616")) == nil)  // overflow
        #expect(parse(bare("ok -1")) == nil)
        #expect(parse(bare("ok ")) == nil)
        #expect(parse([9] + Array("ok 1".utf8)) == nil)  // length prefix disagrees
        #expect(parse([]) == nil)
    }

    @Test func refusesMalformedRoutingMessages() {
        func decode(_ bytes: [UInt8]) -> RoutingMessageView? { withBytes(bytes) { RoutingCodec.decode($0) } }
        let good = routingMessage(onward: ["a"], returnRoute: ["b"], payload: [1, 2])
        #expect(decode(good) != nil)
        for cut in 0..<good.count { #expect(decode(Array(good[0..<cut])) == nil, "cut at \(cut)") }
        #expect(decode([0x9F] + good.dropFirst()) == nil)  // indefinite-length array
        #expect(decode([0x83, 0x98, 0x41] + good.dropFirst(2)) == nil)  // a route of 65 addresses
        #expect(decode([0x83, 0x80, 0x80, 0x5A, 0xFF, 0xFF, 0xFF, 0xFF]) == nil)  // payload longer than the message
        let heartbeat = decode([0x83, 0x80, 0x80, 0x40])
        #expect(heartbeat != nil && heartbeat!.destination == nil)
    }
}

/// An in-memory UART: what the device writes, and what the test lets it read.
struct MemoryPort: DevicePort {
    final class Line {
        var toDevice: [UInt8] = []
        var fromDevice: [UInt8] = []
    }
    let line = Line()

    mutating func readByte() -> UInt8? { line.toDevice.isEmpty ? nil : line.toDevice.removeFirst() }
    mutating func write(_ bytes: UnsafeBufferPointer<UInt8>) { line.fromDevice += bytes }
}

/// Frames in the test's direction, with the device kit's own encoder (checked against the document above).
func gatewayFrame(type: UInt8, body: [UInt8]) -> [UInt8] {
    let sender = FrameSender(maxFrameSize: 1024)
    for (index, byte) in body.enumerated() { sender.bodyBuffer[index] = byte }
    return Array(sender.encode(type: type, bodyLength: body.count)!)
}

func helloBody(nonce: UInt32, peerNonce: UInt32) -> [UInt8] {
    var body: [UInt8] = [1, 0]
    for value in [UInt32(16384), nonce, peerNonce, 10_000] {
        body += [UInt8(truncatingIfNeeded: value), UInt8(truncatingIfNeeded: value >> 8),
                 UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 24)]
    }
    return body
}

@Suite struct DeviceNodeTests {
    @Test func sendsAReadingAfterTheHandshakeAndDropsItOnceAcknowledged() {
        var node = DeviceNode(port: MemoryPort(), session: .init(), bridge: .init(bridge: "sensors"), seed: 9)
        let line = node.port.line
        _ = withBytes(Array("reading 0".utf8)) { node.enqueue($0) }
        node.poll(now: 0)
        var device = FrameReceiver(maxFrameSize: 1024)
        var frames = receive(line.fromDevice, into: &device)
        line.fromDevice = []
        guard case .hello(let hello)? = frames.first?.0 else { Issue.record("no hello: \(frames)"); return }
        #expect(hello.maxFrameSize == 256 && hello.keepaliveMilliseconds == 5_000)

        // The gateway answers; the device links and sends its reading at once.
        line.toDevice = gatewayFrame(type: SerialWire.helloAckType, body: helloBody(nonce: 77, peerNonce: hello.nonce))
        node.poll(now: 10)
        frames = receive(line.fromDevice, into: &device)
        line.fromDevice = []
        #expect(frames.count == 1 && frames[0].0 == .data)
        #expect(frames[0].1 == routingMessage(onward: ["sensors"], returnRoute: ["r00000000"],
                                              payload: Array("reading 0".utf8)))
        #expect(node.counters.linkUps == 1 && node.bridge.pending == 1)

        // The bridge's `ok`, routed back through the gateway's serial sender.
        line.toDevice = gatewayFrame(type: SerialWire.dataType, body: routingMessage(
            onward: ["r00000000"], returnRoute: [String(repeating: "f", count: 32), "sensors"], payload: bare("ok 5")))
        node.poll(now: 20)
        #expect(node.bridge.pending == 0 && node.counters.lastSequence == 5)
        #expect(line.fromDevice.isEmpty)

        // A gateway restart (new nonce): the session restarts and the device answers.
        _ = withBytes(Array("reading 1".utf8)) { node.enqueue($0) }
        node.poll(now: 30)
        line.fromDevice = []
        line.toDevice = gatewayFrame(type: SerialWire.helloType, body: helloBody(nonce: 88, peerNonce: 0))
        node.poll(now: 40)
        frames = receive(line.fromDevice, into: &device)
        #expect(node.counters.linkDowns == 1 && node.counters.linkUps == 2)
        #expect(frames.count == 2)
        if case .helloAck(let ack)? = frames.first?.0 { #expect(ack.peerNonce == 88) } else { Issue.record("\(frames)") }
        #expect(frames.last?.1 == routingMessage(onward: ["sensors"], returnRoute: ["r00000001"],
                                                 payload: Array("reading 1".utf8)))
        #expect(node.bridge.resent == 1)
    }

    @Test func hostileBytesOnTheLineNeverStopTheNode() {
        var node = DeviceNode(port: MemoryPort(), session: .init(), bridge: .init(bridge: "sensors"), seed: 10)
        var state: UInt64 = 42
        for step in 0..<2_000 {
            var chunk: [UInt8] = []
            for _ in 0..<64 {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                chunk.append(UInt8(truncatingIfNeeded: state >> 59))  // small values: many delimiters and codes
            }
            node.port.line.toDevice = chunk
            node.poll(now: UInt32(step))
            node.port.line.fromDevice = []
        }
        #expect(node.counters.dropped > 0)
    }
}
