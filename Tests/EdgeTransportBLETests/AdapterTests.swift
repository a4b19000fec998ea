import CBlueZ
import EdgeNode
import Testing

@testable import EdgeTransportBLE

#if canImport(Glibc)
import Glibc
#endif

/// Whether this kernel has AF_BLUETOOTH (it does not on the build machines; it does in the rig VM).
func kernelHasBluetooth() -> Bool {
    let fd = socket(AF_BLUETOOTH, Int32(SOCK_RAW.rawValue), BTPROTO_HCI)
    if fd >= 0 {
        close(fd)
        return true
    }
    return errno != EAFNOSUPPORT
}

@Suite("adapters and kernel support")
struct AdapterTests {
    @Test func listingAdaptersWithoutKernelBluetoothIsAClearError() throws {
        if kernelHasBluetooth() {
            let adapters = try BLEAdapters.list()
            #expect(adapters.map(\.index) == adapters.map(\.index).sorted())
        } else {
            #expect(throws: BLETransportError.bluetoothUnsupported) { try BLEAdapters.list() }
            #expect(throws: BLETransportError.bluetoothUnsupported) { try BLEAdapters.info(index: 0) }
            #expect(throws: BLETransportError.bluetoothUnsupported) { try SeqPacketSocket.openL2CAP() }
        }
    }

    @Test func listenerAndConnectorReportMissingKernelSupport() async throws {
        try #require(!kernelHasBluetooth(), "only meaningful where the kernel has no Bluetooth")
        let node = Node()
        let transport = BLETransport(node: node)
        await #expect(throws: BLETransportError.bluetoothUnsupported) {
            try await transport.listen(try BLEListenConfiguration(parsing: "psm=0x81"))
        }
        await #expect(throws: BLETransportError.bluetoothUnsupported) {
            try await transport.connect(try BLEConnectConfiguration(parsing: "00:AA:01:00:00:00,psm=0x81"))
        }
        #expect(transport.counters.connectFailures == 1)
        await transport.shutdown()
        await node.shutdown()
    }

    @Test func adapterSelectorAnyNeedsNoKernel() throws {
        #expect(try BLEAdapters.address(of: .any) == .any)
        let address = try BluetoothDeviceAddress(parsing: "00:AA:01:00:00:00")
        #expect(try BLEAdapters.address(of: .address(address)) == address)
    }
}
