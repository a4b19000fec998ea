// Suite 7 (BLE, run inside the virtual rig's VM by bench/ble-guest.sh): the raw reference transfer over a bare
// L2CAP LE credit-based channel. The ockam-edge side is `serve --ble-listen` / `send --ble-connect` (NodeSuites).
//
// The raw peers carry the stream of the plain-socket peers (RawTCP: `u32 BE length ‖ bytes` per message, a zero
// length ends a run and is answered with the byte count) over a BLERawChannel, which is set up exactly as a
// transport link (the same socket plan, MTUs, send buffer and SDU limit). Each message is written as SDUs of at
// most the link's SDU limit, as the transport writes each routing message, but with no header and no routing
// message around the payload: what is left is the kernel's L2CAP and btvirt.
import EdgeTransportBLE
import EdgeWire

#if canImport(Glibc)
import Glibc
#endif

enum BLESuites {
    /// `raw-sink --l2cap-listen hci0,psm=0x83,mtu=672`: prints `listening l2cap:<psm>`, then serves connections one
    /// after another until killed.
    static func rawSink(_ arguments: Arguments, spec: String) async throws {
        let listener = try BLERawListener(try BLEListenConfiguration(parsing: spec))
        print("listening l2cap:\(listener.psm)")
        fflush(nil)
        let capacity = 1 << 18
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        while true {
            let channel = try await listener.accept()
            RawTCP.serveConnection(channel.fd, buffer: buffer, capacity: capacity)
            channel.close()
        }
    }

    /// `raw-source --l2cap-connect 00:AA:01:00:00:00,psm=0x83,adapter=hci1,mtu=672 --size N (--count N | --seconds S)`:
    /// the same measured stream as `raw-source`, each message cut into SDUs of at most the link's SDU limit.
    static func rawSource(_ arguments: Arguments, spec: String) async throws {
        let channel = try await BLERawChannel.connect(try BLEConnectConfiguration(parsing: spec))
        defer { channel.close() }
        let limit = channel.sduLimit
        let size = try arguments.int("size", default: 16384)
        let extra: [(String, JSON)] = [
            ("send_mtu", .int(Int64(channel.sendMTU))), ("receive_mtu", .int(Int64(channel.receiveMTU))), ("sdu_limit", .int(Int64(limit))),
            ("wire_sdus_per_msg", .int(Int64((size + 4 + limit - 1) / limit))),
        ]
        try RawTCP.stream(arguments, fd: channel.fd, extra: extra) { frame in
            try frame.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let end = min(offset + limit, bytes.count)
                    try channel.send(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
                    offset = end
                }
            }
        }
    }
}
