import CBlueZ
import Testing

@testable import EdgeTransportBLE

@Suite("sockaddr_l2 and socket set-up plans")
struct SocketTests {
    func bytes(of raw: sockaddr_l2) -> [UInt8] {
        withUnsafeBytes(of: raw) { Array($0) }
    }

    @Test func sockaddrLayoutMatchesTheKernel() {
        // gcc: sizeof 14, l2_psm at 2, l2_bdaddr at 4, l2_cid at 10, l2_bdaddr_type at 12.
        #expect(MemoryLayout<sockaddr_l2>.size == 14)
        #expect(MemoryLayout<sockaddr_l2>.offset(of: \.l2_psm) == 2)
        #expect(MemoryLayout<sockaddr_l2>.offset(of: \.l2_bdaddr) == 4)
        #expect(MemoryLayout<sockaddr_l2>.offset(of: \.l2_cid) == 10)
        #expect(MemoryLayout<sockaddr_l2>.offset(of: \.l2_bdaddr_type) == 12)
        #expect(MemoryLayout<bdaddr_t>.size == 6)
    }

    @Test func sockaddrIsLittleEndianWithReversedAddress() throws {
        let address = L2CAPSocketAddress(
            device: try BluetoothDeviceAddress(parsing: "AA:BB:CC:DD:EE:FF"), addressType: .random, psm: 0x0081,
            cid: 0x1234)
        let raw = bytes(of: address.sockaddr)
        #expect(Array(raw[0..<2]) == [31, 0])  // AF_BLUETOOTH, host (little-endian) order
        #expect(Array(raw[2..<4]) == [0x81, 0x00])  // PSM, htobs
        #expect(Array(raw[4..<10]) == [0xFF, 0xEE, 0xDD, 0xCC, 0xBB, 0xAA])  // bdaddr_t: least significant first
        #expect(Array(raw[10..<12]) == [0x34, 0x12])  // CID, htobs
        #expect(raw[12] == 2)  // BDADDR_LE_RANDOM
        #expect(L2CAPSocketAddress(address.sockaddr) == address)
    }

    @Test func sockaddrOfAPeerHasCIDZero() throws {
        let peer = try BLEPeerAddress(parsing: "00:AA:01:01:00:01/public,psm=0xff")
        let raw = bytes(of: L2CAPSocketAddress(peer: peer).sockaddr)
        #expect(Array(raw[2..<4]) == [0xFF, 0x00])
        #expect(Array(raw[4..<10]) == [0x01, 0x00, 0x01, 0x01, 0xAA, 0x00])
        #expect(Array(raw[10..<12]) == [0, 0])
        #expect(raw[12] == 1)  // BDADDR_LE_PUBLIC
    }

    @Test func constantsComeFromTheHeaders() {
        #expect(AF_BLUETOOTH == 31)
        #expect(BTPROTO_L2CAP == 0)
        #expect(SOL_BLUETOOTH == 274)
        #expect(BT_SECURITY == 4)
        #expect(BT_SNDMTU == 12)
        #expect(BT_RCVMTU == 13)
        #expect(BLESecurityLevel.low.kernelValue == UInt8(BT_SECURITY_LOW))
        #expect(BLESecurityLevel.medium.kernelValue == UInt8(BT_SECURITY_MEDIUM))
        #expect(BLESecurityLevel.high.kernelValue == UInt8(BT_SECURITY_HIGH))
        #expect(BLESecurityLevel.fips.kernelValue == UInt8(BT_SECURITY_FIPS))
        #expect(BLESecurityLevel(kernelValue: 3) == .high)
        #expect(BLESecurityLevel(kernelValue: 0) == nil)  // BT_SECURITY_SDP is not offered
    }

    /// BT_RCVMTU fails with EINVAL before bind and EISCONN once connected: it must sit between the two.
    @Test func receiveMTUIsSetAfterBindAndBeforeListenOrConnect() throws {
        let listen = SocketSetupPlan.listener(try BLEListenConfiguration(parsing: "hci0,psm=0x81,mtu=23,security=high"))
        #expect(listen == [.open, .bind, .setReceiveMTU(23), .setSecurity(.high), .listen(backlog: 8)])

        let connect = SocketSetupPlan.connector(
            try BLEConnectConfiguration(parsing: "AA:BB:CC:DD:EE:FF,psm=0x81,mtu=65535"), sendBuffer: 1 << 21)
        let bind = try #require(connect.firstIndex(of: .bind))
        let mtu = try #require(connect.firstIndex(of: .setReceiveMTU(65535)))
        let connectStep = try #require(connect.firstIndex(of: .connect))
        #expect(bind < mtu && mtu < connectStep)
        #expect(try #require(connect.firstIndex(of: .raiseSendBuffer(1 << 21))) < connectStep)
        #expect(try #require(connect.firstIndex(of: .setSecurity(.low))) < connectStep)
        #expect(connect.last == .readMTUs)

        // Without an MTU the kernel default stays (no BT_RCVMTU at all).
        let plain = SocketSetupPlan.listener(try BLEListenConfiguration(parsing: "psm=0x81"))
        #expect(!plain.contains { if case .setReceiveMTU = $0 { true } else { false } })
        // Accepted sockets do not inherit SO_SNDBUF from the listener.
        #expect(SocketSetupPlan.accepted(sendBuffer: 4096) == [.raiseSendBuffer(4096), .readMTUs])
    }

    @Test func sduLimitRespectsPeerMTUCapAndSendBuffer() {
        #expect(LinkMTUs.sduLimit(sendMTU: 672, sendBuffer: 425_984, cap: nil) == 672)
        #expect(LinkMTUs.sduLimit(sendMTU: 65535, sendBuffer: 4 << 20, cap: nil) == 65535)
        // The default 212992-byte buffer cannot hold a 65535-byte SDU's PDUs: limit to buffer/32.
        #expect(LinkMTUs.sduLimit(sendMTU: 65535, sendBuffer: 212_992, cap: nil) == 6656)
        #expect(LinkMTUs.sduLimit(sendMTU: 65535, sendBuffer: nil, cap: 1000) == 1000)
        #expect(LinkMTUs.sduLimit(sendMTU: 23, sendBuffer: 100, cap: nil) == 23)
    }
}
