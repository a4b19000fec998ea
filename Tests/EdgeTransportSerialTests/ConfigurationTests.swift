// Spec-string parsing, baud mapping and termios flags; opening ptys (raw mode, exclusivity, BOTHER).
import CPty
import EdgeTestSupport
import EdgeTransportSerial
import Foundation
import SystemPackage
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Serial configuration")
struct ConfigurationTests {
    @Test func parsesTheIssueExample() throws {
        let configuration = try SerialConfiguration(
            parsing: "/dev/ttyUSB0,baud=115200,flow=rtscts,parity=none,data=8,stop=1,dtr=on")
        #expect(configuration.path == "/dev/ttyUSB0")
        #expect(configuration.name == "ttyUSB0")
        #expect(configuration.baudRate == 115_200)
        #expect(configuration.flowControl == .rtsCts)
        #expect(configuration.parity == .none)
        #expect(configuration.dataBits == .eight)
        #expect(configuration.stopBits == .one)
        #expect(configuration.dtr == .assert)
        #expect(configuration.rts == .leave)
        #expect(configuration.role == .listener)
        #expect(configuration.maxFrameSize == 16384)
    }

    @Test func parsesEveryKeyAndPrintsCanonically() throws {
        let spec =
            "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0,name=sensor-1,mode=connect,baud=12M,"
            + "data=7,parity=even,stop=2,flow=none,dtr=off,rts=on,max-frame=256"
        let configuration = try SerialConfiguration(parsing: spec)
        #expect(configuration.name == "sensor-1")
        #expect(configuration.role == .connector)
        #expect(configuration.baudRate == 12_000_000)
        #expect(configuration.dataBits == .seven)
        #expect(configuration.parity == .even)
        #expect(configuration.stopBits == .two)
        #expect(configuration.dtr == .deassert)
        #expect(configuration.rts == .assert)
        #expect(configuration.maxFrameSize == 256)
        #expect(
            configuration.description
                == "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0,name=sensor-1,mode=connect,baud=12000000,data=7,parity=even,stop=2,flow=none,dtr=off,rts=on,max-frame=256"
        )
        #expect(try SerialConfiguration(parsing: configuration.description) == configuration)
        #expect(configuration.lineSummary == "12000000 7E2")
        // Defaults print too and round-trip.
        let plain = try SerialConfiguration(parsing: "/dev/ttyACM0")
        #expect(try SerialConfiguration(parsing: plain.description) == plain)
        #expect(try SerialConfiguration(parsing: "/dev/ttyS1,baud=250k").baudRate == 250_000)
    }

    @Test func keepaliveIsADurationOrOffAndPrintsOnlyWhenSet() throws {
        #expect(try SerialConfiguration(parsing: "/dev/ttyS1").keepalive == nil)
        #expect(!(try SerialConfiguration(parsing: "/dev/ttyS1").description.contains("keepalive")))
        for (text, expected, printed) in [
            ("30s", Duration.seconds(30), "keepalive=30s"), ("500ms", .milliseconds(500), "keepalive=500ms"),
            ("1.5s", .milliseconds(1500), "keepalive=1500ms"), ("off", .zero, "keepalive=off"), ("0", .zero, "keepalive=off"),
        ] {
            let configuration = try SerialConfiguration(parsing: "/dev/ttyS1,keepalive=\(text)")
            #expect(configuration.keepalive == expected, "\(text)")
            #expect(configuration.description.hasSuffix("," + printed), "\(configuration.description)")
            #expect(try SerialConfiguration(parsing: configuration.description) == configuration)
        }
        for bad in ["50ms", "25h", "soon", "-1s", ""] {
            do {
                _ = try SerialConfiguration(parsing: "/dev/ttyS1,keepalive=\(bad)")
                Issue.record("keepalive=\(bad) parsed")
            } catch {
                guard case .invalidValue(let key, let value, _) = error else {
                    Issue.record("keepalive=\(bad): \(error)")
                    continue
                }
                #expect(key == "keepalive" && value == bad, "\(error)")
            }
        }
    }

    @Test(arguments: [
        ("", SerialConfigurationError.missingPath),
        ("baud=9600", .missingPath),
        ("ttyUSB0,baud=9600", .invalidPath("ttyUSB0")),
        ("/dev/ttyUSB0,speed=9600", .unknownKey("speed")),
        ("/dev/ttyUSB0,baud", .malformedOption("baud")),
        ("/dev/ttyUSB0,", .malformedOption("")),
        ("/dev/ttyUSB0,=1", .malformedOption("=1")),
        ("/dev/ttyUSB0,baud=9600,baud=19200", .duplicateKey("baud")),
        ("/dev/ttyUSB0,baud=fast", .invalidValue(key: "baud", value: "fast", expected: "")),
        ("/dev/ttyUSB0,baud=13000000", .invalidValue(key: "baud", value: "13000000", expected: "")),
        ("/dev/ttyUSB0,baud=0", .invalidValue(key: "baud", value: "0", expected: "")),
        ("/dev/ttyUSB0,data=9", .invalidValue(key: "data", value: "9", expected: "")),
        ("/dev/ttyUSB0,parity=mark", .invalidValue(key: "parity", value: "mark", expected: "")),
        ("/dev/ttyUSB0,stop=1.5", .invalidValue(key: "stop", value: "1.5", expected: "")),
        ("/dev/ttyUSB0,flow=xonxoff", .invalidValue(key: "flow", value: "xonxoff", expected: "")),
        ("/dev/ttyUSB0,dtr=maybe", .invalidValue(key: "dtr", value: "maybe", expected: "")),
        ("/dev/ttyUSB0,mode=server", .invalidValue(key: "mode", value: "server", expected: "")),
        ("/dev/ttyUSB0,name=a#b", .invalidValue(key: "name", value: "a#b", expected: "")),
        ("/dev/ttyUSB0,max-frame=63", .invalidValue(key: "max-frame", value: "63", expected: "")),
        ("/dev/ttyUSB0,max-frame=2000000", .invalidValue(key: "max-frame", value: "2000000", expected: "")),
        ("/dev/ttyUSB0,flow=rtscts,rts=off", .conflict("")),
    ])
    func rejectsBadSpecsNamingTheKey(spec: String, expected: SerialConfigurationError) {
        do {
            _ = try SerialConfiguration(parsing: spec)
            Issue.record("\(spec) parsed")
        } catch {
            switch (error, expected) {
            case (.invalidValue(let key, let value, _), .invalidValue(let expectedKey, let expectedValue, _)):
                #expect(key == expectedKey && value == expectedValue, "\(spec): \(error)")
                #expect(error.description.contains("'\(key)'"))
            case (.conflict, .conflict):
                #expect(error.description.contains("rtscts"))
            default:
                #expect(error == expected, "\(spec): \(error)")
            }
        }
    }

    @Test func baudRateMapping() {
        #expect(SerialPort.standardSpeedConstant(9600) == speed_t(B9600))
        #expect(SerialPort.standardSpeedConstant(115_200) == speed_t(B115200))
        #expect(SerialPort.standardSpeedConstant(921_600) == speed_t(B921600))
        #expect(SerialPort.standardSpeedConstant(4_000_000) == speed_t(B4000000))
        for rate in BaudRate.standardRates { #expect(SerialPort.standardSpeedConstant(rate) != nil, "\(rate)") }
        // Non-standard rates go through termios2 BOTHER.
        for rate in [250_000, 12_000_000, 31_250, 74_880, 1_843_200] {
            #expect(SerialPort.standardSpeedConstant(rate) == nil)
            #expect(!BaudRate(rate).isStandard)
        }
        #expect(BaudRate(parsing: "1M") == 1_000_000)
        #expect(BaudRate(parsing: "12m") == 12_000_000)
        #expect(BaudRate(parsing: "-5") == nil)
        #expect(BaudRate(parsing: "99999999999999999999k") == nil)
        #expect(SerialPort.baudRateMatches(requested: 250_000, actual: 250_000))
        #expect(SerialPort.baudRateMatches(requested: 3_000_000, actual: 2_970_000))
        #expect(!SerialPort.baudRateMatches(requested: 250_000, actual: 38400))
        #expect(!SerialPort.baudRateMatches(requested: 250_000, actual: 0))
    }

    @Test func termiosFlags() throws {
        let base = SerialConfiguration(path: "/dev/ttyUSB0")
        let plain = SerialPort.termiosFlags(for: base)
        #expect(plain.cflag == tcflag_t(CS8))
        #expect(plain.iflag == 0)
        var odd = base
        odd.dataBits = .seven
        odd.parity = .odd
        odd.stopBits = .two
        odd.flowControl = .rtsCts
        let flags = SerialPort.termiosFlags(for: odd)
        #expect(flags.cflag == tcflag_t(CS7 | PARENB | PARODD | CSTOPB) | CRTSCTS)
        #expect(flags.iflag == tcflag_t(INPCK))
        var five = base
        five.dataBits = .five
        five.parity = .even
        #expect(SerialPort.termiosFlags(for: five).cflag == tcflag_t(CS5 | PARENB))
    }
}

@Suite("Opening ptys", .serialized)
struct PortOpenTests {
    @Test func opensRawExclusiveAndLocked() async throws {
        let pty = try PtyPair()
        defer { pty.close() }
        let configuration = SerialConfiguration(
            path: FilePath(pty.slavePath), baudRate: 57600, stopBits: .two, flowControl: .rtsCts)
        let fd = try SerialPort.open(configuration)
        var open = true
        defer { if open { SerialPort.close(fd) } }  // closed once: a second close could hit another test's descriptor
        #expect(SerialPort.isExclusive(fd))
        var t = termios()
        #expect(tcgetattr(fd.rawValue, &t) == 0)
        #expect(t.c_lflag & tcflag_t(ICANON | ECHO | ISIG) == 0, "raw mode")
        #expect(t.c_cflag & tcflag_t(CSIZE) == tcflag_t(CS8))
        #expect(t.c_cflag & tcflag_t(PARENB) == 0)
        #expect(t.c_cflag & tcflag_t(CSTOPB) != 0)
        #expect(t.c_cflag & CRTSCTS != 0)
        #expect(t.c_cflag & tcflag_t(CLOCAL | CREAD) == tcflag_t(CLOCAL | CREAD))
        #expect(cfgetospeed(&t) == speed_t(B57600))
        #expect(try SerialPort.currentBaudRate(fd) == 57600)
        #expect(fcntl(fd.rawValue, F_GETFL) & O_NONBLOCK != 0)
        #expect(fcntl(fd.rawValue, F_GETFD) & FD_CLOEXEC != 0)

        // A second agent (or a terminal program) cannot open the port: TIOCEXCL refuses non-root openers with EBUSY,
        // and the advisory flock catches root (which TIOCEXCL lets through).
        #expect(throws: SerialTransportError.portBusy(path: pty.slavePath)) {
            _ = try SerialPort.open(configuration)
        }
        #expect(SerialTransportError.portBusy(path: pty.slavePath).description.contains("in use by another process"))
        // Closing releases the lock at once, even while a child that another test is spawning holds a copy of the
        // descriptor until its exec closes it (O_CLOEXEC): `SerialPort.close` unlocks before it closes.
        open = false
        SerialPort.close(fd)
        SerialPort.close(try SerialPort.open(configuration))
    }

    @Test func settingsADriverIgnoresAreErrors() throws {
        // Linux ptys force CS8 and no parity (pty_set_termios), like a USB adapter that lacks 5-bit or parity
        // support: the read-back catches it and names the line setting.
        let pty = try PtyPair()
        defer { pty.close() }
        for (bits, parity) in [(SerialDataBits.eight, SerialParity.even), (.seven, .none), (.five, .odd)] {
            let configuration = SerialConfiguration(path: FilePath(pty.slavePath), dataBits: bits, parity: parity)
            #expect(
                throws: SerialTransportError.settingNotSupported(
                    path: pty.slavePath, setting: configuration.lineSummary)
            ) {
                _ = try SerialPort.open(configuration)
            }
        }
        #expect(
            SerialTransportError.settingNotSupported(path: "/dev/ttyUSB0", setting: "115200 8E1").description
                == "/dev/ttyUSB0 does not support 115200 8E1")
    }

    @Test func customBaudRatesUseBother() throws {
        let pty = try PtyPair()
        defer { pty.close() }
        // On a pty, termios2 BOTHER speeds are stored and read back as set (a real UART driver may round).
        for rate in [250_000, 12_000_000, 31_250, 115_200, 4_000_000] {
            let configuration = SerialConfiguration(path: FilePath(pty.slavePath), baudRate: BaudRate(rate))
            let fd = try SerialPort.open(configuration)
            #expect(try SerialPort.currentBaudRate(fd) == rate, "\(rate)")
            var ispeed: UInt32 = 0
            var ospeed: UInt32 = 0
            var bother: Int32 = 0
            #expect(cpty_get_speed(fd.rawValue, &ispeed, &ospeed, &bother) == 0)
            #expect(ispeed == UInt32(rate) && ospeed == UInt32(rate))
            #expect((bother != 0) == !BaudRate(rate).isStandard, "\(rate): CBAUD is BOTHER only for non-standard rates")
            SerialPort.close(fd)
        }
    }

    @Test func modemLinesOnAPtyAreReportedAsUnsupported() throws {
        // ptys have no modem-control lines: asking to set DTR fails with a clear error; leaving it works.
        let pty = try PtyPair()
        defer { pty.close() }
        var configuration = SerialConfiguration(path: FilePath(pty.slavePath))
        configuration.dtr = .assert
        do {
            SerialPort.close(try SerialPort.open(configuration))
            // Some kernels accept TIOCMBIS on a pty; then there is nothing to report.
        } catch {
            guard case .configurationFailed(_, let setting, _) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(setting == "DTR on")
        }
        configuration.dtr = .leave
        SerialPort.close(try SerialPort.open(configuration))
    }

    @Test func openErrorsAreTyped() throws {
        let directory = try TemporaryDirectory("open")
        #expect(throws: SerialTransportError.deviceNotFound(path: directory.file("missing"))) {
            _ = try SerialPort.open(SerialConfiguration(path: FilePath(directory.file("missing"))))
        }
        _ = FileManager.default.createFile(atPath: directory.file("plain"), contents: Data())
        #expect(throws: SerialTransportError.notATerminal(path: directory.file("plain"))) {
            _ = try SerialPort.open(SerialConfiguration(path: FilePath(directory.file("plain"))))
        }
        // A dangling symlink (unplugged adapter's by-id name) is "not found".
        symlink("/dev/pts/999999", directory.file("gone"))
        #expect(throws: SerialTransportError.deviceNotFound(path: directory.file("gone"))) {
            _ = try SerialPort.open(SerialConfiguration(path: FilePath(directory.file("gone"))))
        }
    }
}
