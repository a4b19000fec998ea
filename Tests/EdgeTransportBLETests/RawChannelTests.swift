import Testing

@testable import EdgeTransportBLE

#if canImport(Glibc)
import Glibc
#endif

/// The raw reference channel of bench suite 7, over the AF_UNIX SOCK_SEQPACKET stand-in for L2CAP.
@Suite("raw L2CAP reference channel")
struct RawChannelTests {
    func endpoint(sendMTU: Int = 672, receiveMTU: Int = 672) -> SocketEndpoint {
        .unix(name: "ockam-edge-ble-raw-\(UInt64.random(in: 0...UInt64.max))", sendMTU: sendMTU, receiveMTU: receiveMTU)
    }

    /// Each send is one SDU and each receive returns exactly one SDU, at the sizes sent; a close reads as 0.
    @Test func sduBoundariesArePreservedBothWays() async throws {
        let at = endpoint()
        let listener = try BLERawListener(try BLEListenConfiguration(parsing: "psm=0x81"), endpoint: at, options: .init())
        defer { listener.close() }
        let config = try BLEConnectConfiguration(parsing: "00:AA:01:00:00:00,psm=0x81")
        async let connecting = BLERawChannel.connect(config, endpoint: at, options: .init())
        let server = try await listener.accept(timeout: .seconds(60))  // a guard: the whole suite shares two threads
        let client = try await connecting
        #expect(client.sendMTU == 672 && client.receiveMTU == 672 && client.sduLimit == 672)
        #expect(listener.psm == L2CAPPSM(0x81))

        let sizes = [1, 100, 671, 672]
        for size in sizes {
            let sdu = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ size) }
            try sdu.withUnsafeBytes { try client.send($0) }
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        for size in sizes {
            let n = try buffer.withUnsafeMutableBytes { try server.receive(into: $0) }
            #expect(n == size)
            #expect(Array(buffer[..<n]) == (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ size) })
        }
        try [UInt8]([9, 8, 7]).withUnsafeBytes { try server.send($0) }
        #expect(try buffer.withUnsafeMutableBytes { try client.receive(into: $0) } == 3)
        #expect(Array(buffer[..<3]) == [9, 8, 7])

        client.close()
        #expect(try buffer.withUnsafeMutableBytes { try server.receive(into: $0) } == 0)
        server.close()
    }

    /// An SDU above the link's limit is refused before anything is written (as a transport link refuses it).
    @Test func oversizeSDUIsRefused() async throws {
        let at = endpoint(sendMTU: 100, receiveMTU: 100)
        let listener = try BLERawListener(try BLEListenConfiguration(parsing: "psm=0x81"), endpoint: at, options: .init())
        defer { listener.close() }
        async let connecting = BLERawChannel.connect(
            try BLEConnectConfiguration(parsing: "00:AA:01:00:00:00,psm=0x81"), endpoint: at, options: .init())
        let server = try await listener.accept(timeout: .seconds(60))  // a guard: the whole suite shares two threads
        let client = try await connecting
        #expect(client.sduLimit == 100)
        #expect(throws: BLETransportError.sduTooLarge(size: 101, limit: 100)) {
            try [UInt8](repeating: 1, count: 101).withUnsafeBytes { try client.send($0) }
        }
        try [UInt8](repeating: 2, count: 100).withUnsafeBytes { try client.send($0) }
        var buffer = [UInt8](repeating: 0, count: 512)
        #expect(try buffer.withUnsafeMutableBytes { try server.receive(into: $0) } == 100)
        client.close()
        server.close()
    }

    /// Nobody connects: accept gives up after its timeout instead of hanging.
    @Test func acceptTimesOut() async throws {
        let listener = try BLERawListener(
            try BLEListenConfiguration(parsing: "psm=0x81"), endpoint: endpoint(), options: .init())
        defer { listener.close() }
        await #expect(throws: BLETransportError.self) { _ = try await listener.accept(timeout: .milliseconds(100)) }
    }
}
