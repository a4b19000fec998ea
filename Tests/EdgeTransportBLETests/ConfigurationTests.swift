import Testing

@testable import EdgeTransportBLE

@Suite("--ble-listen / --ble-connect specs")
struct ConfigurationTests {
    @Test func parsesListenSpecs() throws {
        let full = try BLEListenConfiguration(parsing: "hci1,psm=0x81,mtu=23,security=medium")
        #expect(full.adapter == .index(1))
        #expect(full.psm == L2CAPPSM(0x81))
        #expect(full.receiveMTU == 23)
        #expect(full.security == .medium)

        let minimal = try BLEListenConfiguration(parsing: "psm=200")
        #expect(minimal.adapter == .any)
        #expect(minimal.receiveMTU == nil)
        #expect(minimal.security == .low)

        let byAddress = try BLEListenConfiguration(parsing: "adapter=00:AA:01:00:00:00,psm=auto,backlog=4")
        #expect(byAddress.adapter == .address(try BluetoothDeviceAddress(parsing: "00:AA:01:00:00:00")))
        #expect(byAddress.psm == .automatic)
        #expect(byAddress.backlog == 4)

        for config in [full, minimal, byAddress] {
            #expect(try BLEListenConfiguration(parsing: config.description) == config, "\(config)")
        }
    }

    @Test(arguments: [
        ("hci0", BLEParseError.missingKey("psm")),
        ("hci0,psm=0x81,port=3", .unknownKey("port")),
        ("psm=0x81,psm=0x82", .duplicateKey("psm")),
        ("hci0,adapter=hci1,psm=0x81", .duplicateKey("adapter")),
        ("psm=0x81,mtu=22", .invalidValue(key: "mtu", value: "22", reason: "expected 23-65535")),
        ("psm=0x81,mtu=65536", .invalidValue(key: "mtu", value: "65536", reason: "expected 23-65535")),
        ("psm=0x81,mtu=", .invalidValue(key: "mtu", value: "", reason: "empty value")),
        ("psm=0x81,security=none", .invalidValue(key: "security", value: "none", reason: "expected low, medium, high or fips")),
        ("psm=0x25", .invalidValue(key: "psm", value: "0x25", reason: "must be in 0x80-0xff")),
        ("hcix,psm=0x81", .invalidAdapter("hcix")),
        ("psm=0x81,,mtu=23", .emptySpec("psm=0x81,,mtu=23")),
        ("", .emptySpec("")),
        ("psm=0x81,hci0", .unknownKey("hci0")),
        ("psm=0x81,backlog=0", .invalidValue(key: "backlog", value: "0", reason: "expected 1-128")),
    ])
    func rejectsBadListenSpecsNamingTheKey(_ spec: String, _ expected: BLEParseError) {
        #expect(throws: expected) { try BLEListenConfiguration(parsing: spec) }
    }

    @Test func listenPSMRangeIsConfigurable() throws {
        let fixed = try BLEListenConfiguration(parsing: "psm=0x25", allowedPSMs: L2CAPPSM.leRange)
        #expect(fixed.psm == L2CAPPSM(0x25))
    }

    @Test func parsesConnectSpecs() throws {
        let config = try BLEConnectConfiguration(
            parsing: "AA:BB:CC:DD:EE:FF/random,psm=0x81,adapter=hci1,mtu=65535,security=fips,reconnect=off")
        #expect(config.peer == (try BLEPeerAddress(parsing: "AA:BB:CC:DD:EE:FF/random,psm=0x81")))
        #expect(config.adapter == .index(1))
        #expect(config.receiveMTU == 65535)
        #expect(config.security == .fips)
        #expect(!config.reconnect)
        #expect(try BLEConnectConfiguration(parsing: config.description) == config)

        let minimal = try BLEConnectConfiguration(parsing: "00:AA:01:00:00:00,psm=0x81")
        #expect(minimal.peer.addressType == .public)
        #expect(minimal.adapter == .any)
        #expect(minimal.reconnect)
        #expect(try BLEConnectConfiguration(parsing: minimal.description) == minimal)
    }

    @Test(arguments: [
        ("psm=0x81", BLEParseError.missingKey("device address")),
        ("AA:BB:CC:DD:EE:FF", .missingKey("psm")),
        ("AA:BB:CC:DD:EE:FF,psm=0x81,reconnect=maybe", .invalidValue(key: "reconnect", value: "maybe", reason: "expected on or off")),
        ("AA:BB:CC:DD:EE:FF,psm=0x81,backlog=3", .unknownKey("backlog")),
        ("AA:BB:CC:DD:EE:FF/rnd,psm=0x81", .invalidAddressType("rnd")),
        ("AA:BB:CC:DD:EE,psm=0x81", .invalidDeviceAddress("AA:BB:CC:DD:EE")),
        ("AA:BB:CC:DD:EE:FF,psm=0x81,adapter=usb0", .invalidAdapter("usb0")),
    ])
    func rejectsBadConnectSpecsNamingTheKey(_ spec: String, _ expected: BLEParseError) {
        #expect(throws: expected) { try BLEConnectConfiguration(parsing: spec) }
    }

    @Test func adaptersParse() throws {
        #expect(try BLEAdapterSelector(parsing: "hci12") == .index(12))
        #expect(try BLEAdapterSelector(parsing: "any") == .any)
        #expect(throws: BLEParseError.invalidAdapter("hci")) { try BLEAdapterSelector(parsing: "hci") }
        #expect(throws: BLEParseError.invalidAdapter("hci-1")) { try BLEAdapterSelector(parsing: "hci-1") }
        #expect(throws: BLEParseError.invalidAdapter("hci99999")) { try BLEAdapterSelector(parsing: "hci99999") }
    }

    @Test func errorsReadWell() {
        #expect(BLEParseError.unknownKey("port").description == "unknown option \"port\"")
        #expect(
            BLETransportError.bluetoothUnsupported.description
                == "no Bluetooth support in this kernel (socket(AF_BLUETOOTH) failed with EAFNOSUPPORT)")
        #expect(
            BLETransportError.messageTooLarge(size: 300_000, limit: 262_144).description
                == "routing message of 300000 bytes exceeds the BLE transport limit of 262144 bytes")
        #expect(BLETransportError.connectFailed(peer: "x", errno: 111).description.contains("ECONNREFUSED"))
        #expect(
            BLETransportError.insufficientSecurity(peer: "AA:BB:CC:DD:EE:FF/public,psm=0x81", link: .low, required: .medium)
                .description
                == "the link to AA:BB:CC:DD:EE:FF/public,psm=0x81 opened at security low, below the required medium; closed")
    }

    /// Links say what security the kernel gave them; stand-in sockets (not L2CAP) have none to say.
    @Test func linkInfoShowsTheLinkSecurityWhenKnown() {
        var info = BLELinkInfo(
            id: 1, peer: nil, senderAddress: .local("s"), outgoing: true, sendMTU: 672, receiveMTU: 672, sduLimit: 672)
        #expect(info.security == nil)
        #expect(!info.description.contains("security"))
        info.security = .medium
        #expect(info.description.hasSuffix("sdu=672 security=medium"))
    }
}
