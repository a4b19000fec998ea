// The example firmware: takes one reading every `readingIntervalMilliseconds`, hands it to the gateway's bridge
// through the device kit, and reports on the console what happened. Board-independent: it uses only `Board`.

/// Time between readings. `readingCount` comes from the generated FirmwareSettings.swift (device/build-firmware.sh).
let readingInterval: UInt32 = 100

/// Console output without allocation.
enum Console {
    static func write(_ text: StaticString) {
        text.withUTF8Buffer { for byte in $0 { Board.console.put(byte) } }
    }

    /// (32-bit: 64-bit division needs compiler-rt, which this minimal firmware does not link.)
    static func write(_ value: UInt32) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            } while rest != 0
            while count > 0 {
                count -= 1
                Board.console.put(buffer[count])
            }
        }
    }
}

@_cdecl("firmware_main")
func firmwareMain() {
    Board.start()
    Console.write("boot\n")
    var node = DeviceNode(
        port: Board.link,
        session: LinkSession.Configuration(maxFrameSize: 256, keepaliveMilliseconds: 5_000),
        bridge: BridgeClient.Configuration(bridge: "sensors", capacity: 8, maxPayload: 32, retryMilliseconds: 3_000),
        seed: UInt64(Board.entropy) << 32 | UInt64(Board.entropy))
    node.onAcknowledged = { id, sequence in
        Console.write("ack ")
        Console.write(UInt32(truncatingIfNeeded: id))
        Console.write(" ")
        Console.write(UInt32(truncatingIfNeeded: sequence))
        Console.write("\n")
    }
    node.onLink = { up in Console.write(up ? "link up\n" : "link down\n") }
    let payload = FixedBuffer(capacity: 32)
    let heapAtStart = Board.heapHighWater
    Console.write("heap ")
    Console.write(UInt32(truncatingIfNeeded: heapAtStart))
    Console.write("\n")

    var taken: UInt32 = 0
    var lastReading = Board.milliseconds
    var reported = false
    while true {
        let now = Board.milliseconds
        node.poll(now: now)
        if taken < readingCount && now &- lastReading >= readingInterval && !node.bridge.isFull {
            // "reading <n>": the payload the cloud's JSON lines show as "text".
            var writer = ByteWriter(payload.storage)
            writer.write("reading ")
            writeDecimal(taken, into: &writer)
            if node.enqueue(UnsafeBufferPointer(rebasing: UnsafeBufferPointer(payload.storage)[0..<writer.count])) != nil {
                taken += 1
                lastReading = now
            }
        }
        if !reported && taken == readingCount && node.bridge.pending == 0 {
            reported = true
            Console.write("done acknowledged=")
            Console.write(UInt32(truncatingIfNeeded: node.bridge.acknowledged))
            Console.write(" resent=")
            Console.write(UInt32(truncatingIfNeeded: node.bridge.resent))
            Console.write(" link_ups=")
            Console.write(UInt32(truncatingIfNeeded: node.counters.linkUps))
            Console.write(" dropped=")
            Console.write(UInt32(truncatingIfNeeded: node.counters.dropped))
            Console.write(" bytes_out=")
            Console.write(UInt32(truncatingIfNeeded: node.counters.bytesOut))
            Console.write(" heap_start=")
            Console.write(UInt32(truncatingIfNeeded: heapAtStart))
            Console.write(" heap_high_water=")
            Console.write(UInt32(truncatingIfNeeded: Board.heapHighWater))
            Console.write(" stack_high_water=")
            Console.write(UInt32(truncatingIfNeeded: Board.stackHighWater))
            Console.write("\n")
        }
    }
}

func writeDecimal(_ value: UInt32, into writer: inout ByteWriter) {
    var divisor: UInt32 = 1
    while value / divisor >= 10 { divisor *= 10 }
    while divisor > 0 {
        writer.write(UInt8(ascii: "0") + UInt8(value / divisor % 10))
        divisor /= 10
    }
}
