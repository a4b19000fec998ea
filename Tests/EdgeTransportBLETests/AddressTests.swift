import EdgeRouting
import Testing

@testable import EdgeTransportBLE

@Suite("BLE addresses")
struct AddressTests {
    @Test func parsesAndPrintsDeviceAddresses() throws {
        let address = try BluetoothDeviceAddress(parsing: "aa:BB:cc:01:02:0f")
        #expect(address.rawValue == 0xAABB_CC01_020F)
        #expect(address.description == "AA:BB:CC:01:02:0F")
        #expect(address.bytes == [0xAA, 0xBB, 0xCC, 0x01, 0x02, 0x0F])
        #expect(address.kernelOrderBytes == [0x0F, 0x02, 0x01, 0xCC, 0xBB, 0xAA])
        #expect(BluetoothDeviceAddress(kernelOrderBytes: address.kernelOrderBytes) == address)
        #expect(BluetoothDeviceAddress.any.description == "00:00:00:00:00:00")
        #expect(BluetoothDeviceAddress(rawValue: 1 << 48) == nil)
    }

    @Test(arguments: [
        "", "AA:BB:CC:DD:EE", "AA:BB:CC:DD:EE:FF:00", "AAA:BB:CC:DD:EE:F", "GG:BB:CC:DD:EE:FF", "A:BB:CC:DD:EE:FF",
        "AA-BB-CC-DD-EE-FF", "AA:BB:CC:DD:EE:", " AA:BB:CC:DD:EE:FF", "+A:BB:CC:DD:EE:FF", "AABBCCDDEEFF",
    ])
    func rejectsBadDeviceAddresses(_ text: String) {
        #expect(throws: BLEParseError.invalidDeviceAddress(text)) { try BluetoothDeviceAddress(parsing: text) }
    }

    @Test func parsesPeerAddressesInBothForms() throws {
        let random = try BLEPeerAddress(parsing: "AA:BB:CC:DD:EE:FF/random,psm=0x81")
        #expect(random.device.rawValue == 0xAABB_CCDD_EEFF)
        #expect(random.addressType == .random)
        #expect(random.psm == L2CAPPSM(0x81))
        #expect(random.description == "AA:BB:CC:DD:EE:FF/random,psm=0x81")
        #expect(random.multiaddrDescription == "/ble/AA:BB:CC:DD:EE:FF-random/psm/0x81")
        #expect(try BLEPeerAddress(parsing: random.multiaddrDescription) == random)

        let implicitPublic = try BLEPeerAddress(parsing: "00:aa:01:00:00:00,psm=129")
        #expect(implicitPublic.addressType == .public)
        #expect(implicitPublic.description == "00:AA:01:00:00:00/public,psm=0x81")
        #expect(implicitPublic.multiaddrDescription == "/ble/00:AA:01:00:00:00/psm/0x81")
        #expect(try BLEPeerAddress(parsing: "/ble/00:AA:01:00:00:00-public/psm/129") == implicitPublic)
        #expect(try BLEPeerAddress(parsing: implicitPublic.description) == implicitPublic)
    }

    @Test func convertsToAndFromOckamAddresses() throws {
        let peer = BLEPeerAddress(device: try BluetoothDeviceAddress(parsing: "00:AA:01:01:00:01"), psm: L2CAPPSM(0xC0))
        #expect(peer.address.description == "4#00:AA:01:01:00:01/public,psm=0xc0")
        #expect(peer.address.transportType == .ble)
        #expect(try BLEPeerAddress(peer.address) == peer)
        let parsed = try Address(parsing: "4#AA:BB:CC:DD:EE:FF/random,psm=0x81")
        #expect(try BLEPeerAddress(parsed).addressType == .random)
        #expect(throws: BLEParseError.notBLEAddress("1#127.0.0.1:4000")) {
            try BLEPeerAddress(Address.tcp("127.0.0.1:4000"))
        }
        // The hop survives Ockam's route text form.
        let route = try Route(parsing: "4#AA:BB:CC:DD:EE:FF/random,psm=0x81 => echo")
        #expect(route.count == 2)
        #expect(try BLEPeerAddress(route.addresses[0]).psm.rawValue == 0x81)
    }

    @Test func rejectsBadPeerAddressesNamingThePart() {
        #expect(throws: BLEParseError.invalidAddressType("static")) {
            try BLEPeerAddress(parsing: "AA:BB:CC:DD:EE:FF/static,psm=0x81")
        }
        #expect(throws: BLEParseError.invalidPSM("0x7f", reason: "must be in 0x80-0xff")) {
            try BLEPeerAddress(parsing: "AA:BB:CC:DD:EE:FF,psm=0x7f")
        }
        #expect(throws: BLEParseError.invalidPSM("0x100", reason: "must be in 0x80-0xff")) {
            try BLEPeerAddress(parsing: "AA:BB:CC:DD:EE:FF,psm=0x100")
        }
        #expect(throws: BLEParseError.invalidPSM("x", reason: "expected a number such as 0x81 or 129")) {
            try BLEPeerAddress(parsing: "AA:BB:CC:DD:EE:FF,psm=x")
        }
        #expect(throws: BLEParseError.self) { try BLEPeerAddress(parsing: "AA:BB:CC:DD:EE:FF") }
        #expect(throws: BLEParseError.self) { try BLEPeerAddress(parsing: "AA:BB:CC:DD:EE:FF,port=0x81") }
        #expect(throws: BLEParseError.self) { try BLEPeerAddress(parsing: "AA:BB:CC:DD:EE:FF,psm=0x81,mtu=23") }
        #expect(throws: BLEParseError.self) { try BLEPeerAddress(parsing: "/ble/AA:BB:CC:DD:EE:FF/port/0x81") }
        #expect(throws: BLEParseError.self) { try BLEPeerAddress(parsing: String(repeating: "A", count: 200)) }
        #expect(throws: BLEParseError.invalidDeviceAddress("AA:BB:CC:DD:EE")) {
            try BLEPeerAddress(parsing: "AA:BB:CC:DD:EE,psm=0x81")
        }
    }

    @Test func psmRangesAreConfigurable() throws {
        #expect(try L2CAPPSM(parsing: "0x25", allowedRange: L2CAPPSM.leRange).rawValue == 0x25)
        #expect(try BLEPeerAddress(parsing: "AA:BB:CC:DD:EE:FF,psm=0x25", allowedPSMs: L2CAPPSM.leRange).psm.rawValue == 0x25)
        #expect(throws: BLEParseError.self) { try L2CAPPSM(parsing: "0", allowedRange: L2CAPPSM.leRange) }
        #expect(L2CAPPSM(0x81).isDynamic)
        #expect(!L2CAPPSM(0x25).isDynamic)
        #expect(L2CAPPSM(0x5).description == "0x05")
    }

    @Test func addressTypesMapToKernelValues() {
        #expect(BLEAddressType.public.kernelValue == 1)  // BDADDR_LE_PUBLIC
        #expect(BLEAddressType.random.kernelValue == 2)  // BDADDR_LE_RANDOM
        #expect(BLEAddressType(kernelValue: 0) == nil)  // BDADDR_BREDR is not LE
        #expect(BLEAddressType(kernelValue: 2) == .random)
    }
}
