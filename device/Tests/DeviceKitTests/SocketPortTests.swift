// The device node on a real file descriptor (a Unix socket pair standing in for the UART), as a Linux host build of a
// firmware would run it: the test plays the gateway on the other end.
import Glibc
import Testing

@testable import DeviceKit

/// A non-blocking descriptor as the device's UART.
struct DescriptorPort: DevicePort {
    let fd: Int32

    mutating func readByte() -> UInt8? {
        var byte: UInt8 = 0
        return read(fd, &byte, 1) == 1 ? byte : nil
    }

    mutating func write(_ bytes: UnsafeBufferPointer<UInt8>) {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written > 0 { offset += written } else if errno != EAGAIN && errno != EINTR { return }
        }
    }
}

func monotonicMilliseconds() -> UInt32 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt32(truncatingIfNeeded: Int(now.tv_sec) * 1000 + Int(now.tv_nsec) / 1_000_000)
}

@Suite struct SocketPortTests {
    @Test func handshakesAndDeliversAReadingOverADescriptor() throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        defer {
            close(fds[0])
            close(fds[1])
        }
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        var node = DeviceNode(port: DescriptorPort(fd: fds[0]), session: .init(), bridge: .init(bridge: "sensors"),
                              seed: UInt64(monotonicMilliseconds()))
        _ = Array("reading 0".utf8).withUnsafeBufferPointer { node.enqueue($0) }

        var gateway = FrameReceiver(maxFrameSize: 16384)
        var seen: [ReceivedFrame] = []
        var reading: [UInt8] = []
        let deadline = monotonicMilliseconds() &+ 5_000
        while reading.isEmpty && Int32(bitPattern: deadline &- monotonicMilliseconds()) > 0 {
            node.poll(now: monotonicMilliseconds())
            var byte: UInt8 = 0
            while read(fds[1], &byte, 1) == 1 {
                guard let frame = gateway.feed(byte) else { continue }
                seen.append(frame)
                if case .hello(let hello) = frame {
                    let ack = gatewayFrame(type: SerialWire.helloAckType, body: helloBody(nonce: 5, peerNonce: hello.nonce))
                    _ = ack.withUnsafeBytes { Glibc.write(fds[1], $0.baseAddress, $0.count) }
                }
                if frame == .data { reading = Array(gateway.body) }
            }
            var wait = pollfd(fd: fds[1], events: Int16(POLLIN), revents: 0)
            _ = poll(&wait, 1, 10)
        }
        #expect(reading == routingMessage(onward: ["sensors"], returnRoute: ["r00000000"],
                                          payload: Array("reading 0".utf8)), "frames: \(seen)")
        #expect(node.session.isLinked)
    }
}
