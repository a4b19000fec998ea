// SerialPorts.list on fixture /dev and /sys trees, and the pure sysfs parsing.
import EdgeTransportSerial
import Foundation
import SystemPackage
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A fake /dev + /sys: an FTDI adapter (ttyUSB0) with by-id, by-path and ockam-edge links, a CH340 without serial
/// number (ttyUSB1), an RP2040 CDC-ACM board (ttyACM0), a real 8250 UART (ttyS0) and a phantom one (ttyS1), plus a
/// dangling by-id link from an unplugged adapter.
struct Fixture {
    let root: TemporaryDirectory
    var dev: FilePath { FilePath(root.path).appending("dev") }
    var sys: FilePath { FilePath(root.path).appending("sys") }

    init() throws {
        root = try TemporaryDirectory("fixture")
        let fm = FileManager.default
        func mkdir(_ path: String) throws {
            try fm.createDirectory(atPath: root.path + "/" + path, withIntermediateDirectories: true)
        }
        func write(_ path: String, _ text: String) throws {
            try Data(text.utf8).write(to: URL(fileURLWithPath: root.path + "/" + path))
        }
        func link(_ path: String, _ target: String) throws {
            try fm.createSymbolicLink(atPath: root.path + "/" + path, withDestinationPath: target)
        }
        try mkdir("dev/serial/by-id")
        try mkdir("dev/serial/by-path")
        try mkdir("dev/ockam-edge")
        for node in ["ttyUSB0", "ttyUSB1", "ttyUSB10", "ttyACM0", "ttyS0", "ttyS1", "ttyS10x", "tty0", "console"] {
            try write("dev/\(node)", "")
        }
        try link("dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0", "../../ttyUSB0")
        try link("dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0-port0", "../../ttyUSB0")
        try link("dev/ockam-edge/0403_6001-A50285BI-if00", "../ttyUSB0")
        try link("dev/serial/by-id/usb-Raspberry_Pi_Pico_E6614C311B2D6A39-if00", "../../ttyACM0")
        try link("dev/serial/by-path/pci-0000:00:14.0-usb-0:3:1.0-port0", "../../ttyUSB1")
        try link("dev/serial/by-id/usb-gone-adapter-if00-port0", "../../ttyUSB7")

        // sysfs: class/tty/<name>/device → the interface (or port) directory; USB attributes on an ancestor.
        let usb = "sys/devices/pci0000:00/0000:00:14.0/usb1"
        try mkdir("\(usb)/1-2/1-2:1.0/ttyUSB0")
        try mkdir("sys/bus/usb-serial/drivers/ftdi_sio")
        try link("\(usb)/1-2/1-2:1.0/ttyUSB0/driver", root.path + "/sys/bus/usb-serial/drivers/ftdi_sio")
        try write("\(usb)/1-2/idVendor", "0403\n")
        try write("\(usb)/1-2/idProduct", "6001\n")
        try write("\(usb)/1-2/manufacturer", "FTDI\n")
        try write("\(usb)/1-2/product", "FT232R USB UART\n")
        try write("\(usb)/1-2/serial", "A50285BI\n")

        try mkdir("\(usb)/1-3/1-3:1.0/ttyUSB1")
        try mkdir("sys/bus/usb-serial/drivers/ch341-uart")
        try link("\(usb)/1-3/1-3:1.0/ttyUSB1/driver", root.path + "/sys/bus/usb-serial/drivers/ch341-uart")
        try write("\(usb)/1-3/idVendor", "1a86\n")
        try write("\(usb)/1-3/idProduct", "7523\n")
        try write("\(usb)/1-3/product", "USB Serial\n")

        try mkdir("\(usb)/1-4/1-4:1.0")
        try mkdir("sys/bus/usb/drivers/cdc_acm")
        try link("\(usb)/1-4/1-4:1.0/driver", root.path + "/sys/bus/usb/drivers/cdc_acm")
        try write("\(usb)/1-4/idVendor", "2e8a\n")
        try write("\(usb)/1-4/idProduct", "000a\n")
        try write("\(usb)/1-4/manufacturer", "Raspberry Pi\n")
        try write("\(usb)/1-4/product", "Pico\n")
        try write("\(usb)/1-4/serial", "E6614C311B2D6A39\n")

        try mkdir("sys/devices/platform/serial8250/tty/ttyS0")
        try mkdir("sys/class/tty")
        try link("sys/class/tty/ttyUSB0", "../../devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/ttyUSB0")
        try link("sys/class/tty/ttyUSB1", "../../devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/ttyUSB1")
        try mkdir("sys/devices/virtual/tty/ttyACM0")
        try link("sys/devices/virtual/tty/ttyACM0/device", "../../../pci0000:00/0000:00:14.0/usb1/1-4/1-4:1.0")
        try link("sys/class/tty/ttyACM0", "../../devices/virtual/tty/ttyACM0")
        try link("sys/devices/platform/serial8250/tty/ttyS0/device", "../../../serial8250")
        try link("sys/class/tty/ttyS0", "../../devices/platform/serial8250/tty/ttyS0")
        try mkdir("sys/devices/virtual/tty/ttyS1")  // no device link: a phantom 8250 port
        try link("sys/class/tty/ttyS1", "../../devices/virtual/tty/ttyS1")
        // ttyUSB*'s class entry points at the port; its `device` link is the port directory itself in real sysfs.
        try link("\(usb)/1-2/1-2:1.0/ttyUSB0/device", ".")
        try link("\(usb)/1-3/1-3:1.0/ttyUSB1/device", ".")
    }
}

@Suite("Serial port listing")
struct PortListingTests {
    @Test func listsCandidatesWithStableNamesAndUSBDetails() throws {
        let fixture = try Fixture()
        let ports = SerialPorts.list(devRoot: fixture.dev, sysRoot: fixture.sys)
        #expect(ports.map { $0.path.lastComponent!.string } == ["ttyACM0", "ttyS0", "ttyUSB0", "ttyUSB1", "ttyUSB10"])

        let ftdi = try #require(ports.first { $0.path == fixture.dev.appending("ttyUSB0") })
        #expect(
            ftdi.aliases == [
                fixture.dev.appending("ockam-edge/0403_6001-A50285BI-if00"),
                fixture.dev.appending("serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"),
                fixture.dev.appending("serial/by-path/pci-0000:00:14.0-usb-0:2:1.0-port0"),
            ])
        #expect(ftdi.preferredPath == fixture.dev.appending("ockam-edge/0403_6001-A50285BI-if00"))
        #expect(
            ftdi.usb
                == USBDeviceInfo(
                    vendorID: 0x0403, productID: 0x6001, manufacturer: "FTDI", product: "FT232R USB UART",
                    serialNumber: "A50285BI"))
        #expect(ftdi.usb?.ids == "0403:6001")
        #expect(ftdi.driver == "ftdi_sio")

        let ch340 = try #require(ports.first { $0.path == fixture.dev.appending("ttyUSB1") })
        #expect(ch340.usb?.ids == "1a86:7523")
        #expect(ch340.usb?.serialNumber == nil)
        #expect(ch340.usb?.manufacturer == nil)
        #expect(ch340.aliases == [fixture.dev.appending("serial/by-path/pci-0000:00:14.0-usb-0:3:1.0-port0")])
        #expect(ch340.driver == "ch341-uart")

        let pico = try #require(ports.first { $0.path == fixture.dev.appending("ttyACM0") })
        #expect(pico.usb?.ids == "2e8a:000a")
        #expect(pico.usb?.serialNumber == "E6614C311B2D6A39")
        #expect(pico.driver == "cdc_acm")

        let uart = try #require(ports.first { $0.path == fixture.dev.appending("ttyS0") })
        #expect(uart.usb == nil)
        #expect(uart.aliases.isEmpty)
        #expect(uart.preferredPath == uart.path)

        // A node without sysfs entry is still a candidate, just without details.
        let bare = try #require(ports.first { $0.path == fixture.dev.appending("ttyUSB10") })
        #expect(bare.usb == nil && bare.driver == nil)
    }

    @Test func missingRootsGiveAnEmptyList() {
        #expect(SerialPorts.list(devRoot: "/nonexistent/dev", sysRoot: "/nonexistent/sys").isEmpty)
    }

    @Test func sysfsAttributeParsing() {
        #expect(
            SerialPorts.parseUSBAttributes([
                "idVendor": "10c4\n", "idProduct": "EA60\n", "manufacturer": "Silicon Labs\n",
                "product": " CP2102 USB to UART Bridge Controller \n", "serial": "0001\n",
            ])
                == USBDeviceInfo(
                    vendorID: 0x10c4, productID: 0xea60, manufacturer: "Silicon Labs",
                    product: "CP2102 USB to UART Bridge Controller", serialNumber: "0001"))
        #expect(SerialPorts.parseUSBAttributes(["idVendor": "0403\n"]) == nil)
        #expect(SerialPorts.parseUSBAttributes(["idVendor": "xyz\n", "idProduct": "6001"]) == nil)
        #expect(SerialPorts.parseUSBAttributes(["idVendor": "12345", "idProduct": "6001"]) == nil)
        #expect(
            SerialPorts.parseUSBAttributes(["idVendor": "0403", "idProduct": "6001", "serial": "\n"])?.serialNumber
                == nil)
    }

    @Test func namesAndOrdering() {
        #expect(SerialPorts.isCandidateName("ttyUSB0"))
        #expect(SerialPorts.isCandidateName("ttyACM12"))
        #expect(SerialPorts.isCandidateName("ttyS3"))
        #expect(!SerialPorts.isCandidateName("ttyS"))
        #expect(!SerialPorts.isCandidateName("ttyS1x"))
        #expect(!SerialPorts.isCandidateName("tty0"))
        #expect(!SerialPorts.isCandidateName("ttyAMA0"))
        #expect(SerialPorts.naturalLess("/dev/ttyUSB2", "/dev/ttyUSB10"))
        #expect(!SerialPorts.naturalLess("/dev/ttyUSB10", "/dev/ttyUSB2"))
        #expect(SerialPorts.naturalLess("/dev/ttyACM0", "/dev/ttyS0"))
        #expect(
            SerialPorts.resolve("../../ttyUSB0", relativeTo: "/dev/serial/by-id") == FilePath("/dev/ttyUSB0"))
        #expect(SerialPorts.resolve("/dev/ttyACM1", relativeTo: "/dev/serial/by-id") == FilePath("/dev/ttyACM1"))
    }

    @Test func realSystemListingDoesNotCrash() {
        // On this machine: whatever exists (often only ttyS0 in a VM). Just exercise the real roots.
        _ = SerialPorts.list()
    }
}
