// Suite 6 (serial), the part that needs no timing: the exact bytes a payload costs on a serial link, computed by
// encoding real messages with the project's own encoders (RoutingMessage, SecureChannelMessage, OckamEncryptor,
// SerialFrameEncoder) — nothing here is counted by hand. The goodput half of the suite is `serve --serial` /
// `send --serial` (NodeSuites) against `raw-sink --tty` / `raw-source --tty` (RawTCP).
import EdgeCrypto
import EdgeNoise
import EdgeRouting
import EdgeSecureChannel
import EdgeTransportSerial
import EdgeWire

enum SerialSuites {
    /// `serial-overhead --sizes 16,64,200,1024 [--port bench]`: one JSON line per payload size and path (routing
    /// without a channel; through a secure channel), with the wire bytes broken down layer by layer.
    ///
    /// The routes are the ones the goodput run (`send --serial`) puts on the wire: the device sends to
    /// `[64#<port>, 0#sink]` (no channel) or to its channel's encryptor with onward `[0#sink]`; the serial sender
    /// worker pops `64#<port>` before encoding, and data messages travel with an empty return route (the suite's
    /// messages expect no reply; the encryptor always sends payloads with an empty outer return route).
    static func overhead(_ arguments: Arguments) throws {
        let sizes = try arguments.ints("sizes", default: [16, 64, 200, 1024])
        for size in sizes {
            var payload = fillerBytes(count: size)
            if size > 0 { payload[0] = SinkKind.data.rawValue }

            // Routing without a channel: the routing message is the DATA frame's body.
            let plain = RoutingMessage(onwardRoute: [.local("sink")], returnRoute: [], payload: payload).encode()
            var plainFields: [(String, JSON)] = [
                ("suite", .string("serial-overhead")), ("path", .string("routing, no channel")), ("payload", .int(Int64(size))),
                ("onward_route_on_wire", .string("[0#sink]")), ("return_route_on_wire", .string("[]")),
                ("routing_message_bytes", .int(Int64(plain.count))), ("routing_overhead", .int(Int64(plain.count - size))),
            ]
            plainFields += frameFields(body: plain, payload: size)
            emit(plainFields)

            // Secure channel: the payload inside the channel's plaintext envelope, AEAD-sealed (8-byte nonce ‖
            // ciphertext ‖ 16-byte tag), as the payload of an outer routing message to the peer's decryptor (a random
            // 32-hex local address, as the channel makes them). The nonce is a steady-state one (message 1000), not 0.
            let inner = SecureChannelMessage.payload(onwardRoute: [.local("sink")], returnRoute: [], payload: payload).encode()
            let key = SecretKey(randomCount: 32)
            var encryptor = try OckamEncryptor(key: key)
            var sealed: [UInt8] = []
            for _ in 0..<1001 { sealed = try encryptor.encrypt(inner) }
            let decryptor = Address.random()
            let outer = RoutingMessage(onwardRoute: [decryptor], returnRoute: [], payload: sealed).encode()
            let routeOverhead = outer.count - sealed.count
            var secureFields: [(String, JSON)] = [
                  ("suite", .string("serial-overhead")), ("path", .string("secure channel")), ("payload", .int(Int64(size))),
                  ("onward_route_on_wire", .string("[0#<decryptor, 32 hex>]")), ("return_route_on_wire", .string("[]")),
                  ("inner_routes", .string("onward [0#sink], return []")),
                  ("channel_plaintext_bytes", .int(Int64(inner.count))),
                  ("channel_envelope_and_inner_routes", .int(Int64(inner.count - size))),
                  ("nonce_bytes", .int(Int64(sealed.count - inner.count - 16))), ("tag_bytes", .int(Int64(16))),
                  ("sealed_bytes", .int(Int64(sealed.count))),
                  ("outer_routing_overhead", .int(Int64(routeOverhead))),
                  ("routing_message_bytes", .int(Int64(outer.count))), ("routing_overhead", .int(Int64(outer.count - size))),
            ]
            secureFields += frameFields(body: outer, payload: size)
            emit(secureFields)
        }
    }

    /// The serial frame around a routing message: type (1) ‖ body ‖ CRC-32C (4), COBS-encoded, with the two 0x00
    /// delimiters ockam-edge writes (one before, one after every frame).
    static func frameFields(body: [UInt8], payload: Int) -> [(String, JSON)] {
        let frameLength = SerialFraming.frameLength(bodyCount: body.count)
        let wire = SerialFrameEncoder.encode(.data(body), leadingDelimiter: true)
        let cobs = wire.count - 2
        let worst = COBS.maxEncodedLength(frameLength)
        return [
            ("frame_type_and_crc", .int(Int64(SerialFraming.overhead))), ("frame_bytes", .int(Int64(frameLength))),
            ("cobs_actual", .int(Int64(cobs - frameLength))), ("cobs_worst", .int(Int64(worst - frameLength))),
            ("delimiters", .int(Int64(wire.count - cobs))),
            ("wire_bytes", .int(Int64(wire.count))), ("wire_bytes_worst", .int(Int64(worst + 2))),
            ("overhead_bytes", .int(Int64(wire.count - payload))), ("overhead_bytes_worst", .int(Int64(worst + 2 - payload))),
            ("payload_efficiency", .double(Double(payload) / Double(wire.count))),
            // A real UART at 115200 baud 8N1 moves 11520 bytes/s (10 bit times per byte).
            ("uart_115200_msgs_per_s", .double(11520 / Double(wire.count))),
            ("uart_115200_payload_bytes_per_s", .double(11520 * Double(payload) / Double(wire.count))),
        ]
    }
}
