// Opening a tty for the link: exclusive access (TIOCEXCL + flock), raw termios, baud (incl. BOTHER), DTR/RTS.
import CPty
import EdgePOSIX
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Errors of the serial transport: opening and configuring ports, routing to them.
public enum SerialTransportError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The device path does not exist (not plugged in, or gone).
    case deviceNotFound(path: String)
    /// The process may not open the device.
    case permissionDenied(path: String)
    /// Another process holds the port (TIOCEXCL or our advisory flock).
    case portBusy(path: String)
    /// The path is not a terminal device.
    case notATerminal(path: String)
    /// open(2) failed for another reason.
    case openFailed(path: String, errno: Errno)
    /// A termios or ioctl call failed.
    case configurationFailed(path: String, setting: String, errno: Errno)
    /// The driver did not keep a setting (read back differently).
    case settingNotSupported(path: String, setting: String)
    /// The driver set a rate too far from the requested one.
    case baudRateNotSupported(path: String, requested: Int, actual: Int)
    /// No port with this name (or path) was opened on the transport.
    case unknownPort(String)
    /// A port with this name is already open on the transport.
    case duplicatePort(String)
    /// The port's link did not come up in time.
    case linkDown(port: String)
    /// A routing message does not fit in one frame to the peer.
    case messageTooLarge(port: String, size: Int, limit: Int)
    /// The address is not a serial address (`64#name`).
    case notASerialAddress(String)
    /// The transport is shutting down.
    case shutdown

    public var description: String {
        switch self {
        case .deviceNotFound(let path): return "serial device \(path) not found"
        case .permissionDenied(let path):
            return "permission denied opening \(path) (is the user in the ockam-edge group? see udev/README.md)"
        case .portBusy(let path): return "serial port \(path) is in use by another process"
        case .notATerminal(let path): return "\(path) is not a terminal device"
        case .openFailed(let path, let errno): return "cannot open \(path): \(errno)"
        case .configurationFailed(let path, let setting, let errno): return "cannot set \(setting) on \(path): \(errno)"
        case .settingNotSupported(let path, let setting): return "\(path) does not support \(setting)"
        case .baudRateNotSupported(let path, let requested, let actual):
            return "\(path) cannot run at \(requested) baud (driver set \(actual))"
        case .unknownPort(let name): return "no serial port named '\(name)'"
        case .duplicatePort(let name): return "a serial port named '\(name)' is already open"
        case .linkDown(let port): return "serial link on port '\(port)' is down"
        case .messageTooLarge(let port, let size, let limit):
            return
                "routing message of \(size) bytes exceeds the limit of \(limit) bytes per frame on serial port "
                + "'\(port)'"
        case .notASerialAddress(let address): return "\(address) is not a serial address (64#<port name>)"
        case .shutdown: return "serial transport is shutting down"
        }
    }
}

/// Opens and configures serial ports. All calls are synchronous and fast (no blocking reads).
public enum SerialPort {
    /// Opens `configuration.path` for the link: `O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC`, then
    /// exclusive access (`TIOCEXCL` plus a non-blocking `flock(LOCK_EX)`, so neither a second agent nor a
    /// terminal program can interleave bytes), then ``apply(_:to:)``, then discards stale input.
    ///
    /// - Returns: the descriptor; the caller owns it (closing it releases the lock).
    /// - Throws: ``SerialTransportError`` (`.portBusy` when another process holds the port).
    public static func open(
        _ configuration: SerialConfiguration
    ) throws(SerialTransportError) -> SystemPackage.FileDescriptor {
        let path = configuration.path.string
        let raw = retryingOnInterrupt { Glibc.open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC) }
        guard raw >= 0 else {
            let error = Errno(rawValue: errno)
            switch error.rawValue {
            case ENOENT, ENXIO, ENODEV, ENOTDIR: throw .deviceNotFound(path: path)
            case EACCES, EPERM: throw .permissionDenied(path: path)
            case EBUSY: throw .portBusy(path: path)
            default: throw .openFailed(path: path, errno: error)
            }
        }
        let fd = SystemPackage.FileDescriptor(rawValue: raw)
        do {
            guard isatty(raw) == 1 else { throw SerialTransportError.notATerminal(path: path) }
            if retryingOnInterrupt({ flock(raw, LOCK_EX | LOCK_NB) }) != 0 {
                if errno == EWOULDBLOCK { throw SerialTransportError.portBusy(path: path) }
                throw SerialTransportError.configurationFailed(
                    path: path, setting: "flock", errno: Errno(rawValue: errno))
            }
            guard cpty_set_exclusive(raw, 1) == 0 else {
                throw SerialTransportError.configurationFailed(
                    path: path, setting: "TIOCEXCL", errno: Errno(rawValue: errno))
            }
            try apply(configuration, to: fd)
            _ = tcflush(raw, TCIFLUSH)
        } catch let error as SerialTransportError {
            release(raw)
            throw error
        } catch {
            release(raw)
            throw .openFailed(path: path, errno: .ioError)
        }
        return fd
    }

    /// Closes a descriptor from ``open(_:)`` and frees the port at once: drops the `flock` first, because the lock
    /// belongs to the open file description, which a child forked by another thread shares until it execs, so
    /// closing our descriptor alone could leave the port "in use" for that while. (Once the descriptor is handed to
    /// the event loop, NIO closes it; nothing in this process forks, so only the plain close is left there.)
    public static func close(_ fd: SystemPackage.FileDescriptor) {
        release(fd.rawValue)
    }

    private static func release(_ raw: CInt) {
        _ = flock(raw, LOCK_UN)
        _ = Glibc.close(raw)
    }

    /// Applies the line settings of `configuration` to an open tty: raw mode (`cfmakeraw`, `CLOCAL | CREAD`,
    /// no software flow control, `VMIN 1 VTIME 0`), data bits, parity (with input checking), stop bits, RTS/CTS,
    /// the baud rate (a `Bnnn` constant for standard rates, termios2 `BOTHER` otherwise), then DTR/RTS.
    /// Settings are read back; a driver that silently ignores one is an error.
    ///
    /// - Throws: ``SerialTransportError/configurationFailed(path:setting:errno:)``,
    ///   ``SerialTransportError/settingNotSupported(path:setting:)`` or
    ///   ``SerialTransportError/baudRateNotSupported(path:requested:actual:)``.
    public static func apply(_ configuration: SerialConfiguration, to fd: FileDescriptor) throws(SerialTransportError) {
        let path = configuration.path.string
        let raw = fd.rawValue
        func fail(_ setting: String) -> SerialTransportError {
            .configurationFailed(path: path, setting: setting, errno: Errno(rawValue: errno))
        }
        var t = termios()
        guard tcgetattr(raw, &t) == 0 else { throw fail("termios (tcgetattr)") }
        let wanted = termiosFlags(for: configuration)
        cfmakeraw(&t)
        t.c_iflag &= ~tcflag_t(IXON | IXOFF | IXANY | INPCK | ISTRIP | IGNPAR | PARMRK)
        t.c_iflag |= wanted.iflag
        // CIBAUD cleared: input speed = output speed (a BOTHER input speed left by an earlier open would stick).
        t.c_cflag &= ~(tcflag_t(CSIZE | PARENB | PARODD | CSTOPB | CIBAUD) | CRTSCTS)
        t.c_cflag |= wanted.cflag | tcflag_t(CLOCAL | CREAD)
        withUnsafeMutableBytes(of: &t.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        let rate = configuration.baudRate.rawValue
        let standard = standardSpeedConstant(rate)
        let speed = standard ?? speed_t(B38400)  // placeholder until BOTHER below
        guard cfsetispeed(&t, speed) == 0, cfsetospeed(&t, speed) == 0 else { throw fail("baud rate \(rate)") }
        var result: CInt
        repeat { result = tcsetattr(raw, TCSANOW, &t) } while result != 0 && errno == EINTR
        guard result == 0 else { throw fail("termios (tcsetattr)") }
        if standard == nil {
            guard cpty_set_custom_speed(raw, UInt32(rate), UInt32(rate)) == 0 else {
                throw fail("baud rate \(rate) (termios2 BOTHER)")
            }
        }

        // Read back: tcsetattr succeeds if any change took effect.
        var check = termios()
        guard tcgetattr(raw, &check) == 0 else { throw fail("termios (tcgetattr)") }
        let mask = tcflag_t(CSIZE | PARENB | PARODD | CSTOPB) | CRTSCTS
        if check.c_cflag & mask != wanted.cflag & mask {
            throw .settingNotSupported(path: path, setting: configuration.lineSummary)
        }
        let actual = try currentBaudRate(fd, path: path)
        if !baudRateMatches(requested: rate, actual: actual) {
            throw .baudRateNotSupported(path: path, requested: rate, actual: actual)
        }

        for (line, action, bit) in [
            ("DTR", configuration.dtr, CInt(CPTY_MODEM_DTR)), ("RTS", configuration.rts, CInt(CPTY_MODEM_RTS)),
        ] {
            switch action {
            case .leave: continue
            case .assert: guard cpty_modem_set(raw, bit) == 0 else { throw fail("\(line) on") }
            case .deassert: guard cpty_modem_clear(raw, bit) == 0 else { throw fail("\(line) off") }
            }
        }
    }

    /// The rate the driver reports (termios2 `c_ospeed`, which Linux fills for standard rates too).
    public static func currentBaudRate(_ fd: FileDescriptor) throws(SerialTransportError) -> Int {
        try currentBaudRate(fd, path: "fd \(fd.rawValue)")
    }

    static func currentBaudRate(_ fd: FileDescriptor, path: String) throws(SerialTransportError) -> Int {
        var ispeed: UInt32 = 0
        var ospeed: UInt32 = 0
        var bother: CInt = 0
        guard cpty_get_speed(fd.rawValue, &ispeed, &ospeed, &bother) == 0 else {
            throw .configurationFailed(path: path, setting: "termios2 (TCGETS2)", errno: Errno(rawValue: errno))
        }
        return Int(ospeed)
    }

    /// True when a driver's rate is within 3 % of the request (USB adapters round to their divisors).
    public static func baudRateMatches(requested: Int, actual: Int) -> Bool {
        guard actual > 0 else { return false }
        return abs(actual - requested) * 100 <= requested * 3
    }

    /// The termios `Bnnn` constant for a standard rate, nil for rates that need `BOTHER`.
    public static func standardSpeedConstant(_ rate: Int) -> speed_t? {
        switch rate {
        case 50: return speed_t(B50)
        case 75: return speed_t(B75)
        case 110: return speed_t(B110)
        case 134: return speed_t(B134)
        case 150: return speed_t(B150)
        case 200: return speed_t(B200)
        case 300: return speed_t(B300)
        case 600: return speed_t(B600)
        case 1200: return speed_t(B1200)
        case 1800: return speed_t(B1800)
        case 2400: return speed_t(B2400)
        case 4800: return speed_t(B4800)
        case 9600: return speed_t(B9600)
        case 19200: return speed_t(B19200)
        case 38400: return speed_t(B38400)
        case 57600: return speed_t(B57600)
        case 115_200: return speed_t(B115200)
        case 230_400: return speed_t(B230400)
        case 460_800: return speed_t(B460800)
        case 500_000: return speed_t(B500000)
        case 576_000: return speed_t(B576000)
        case 921_600: return speed_t(B921600)
        case 1_000_000: return speed_t(B1000000)
        case 1_152_000: return speed_t(B1152000)
        case 1_500_000: return speed_t(B1500000)
        case 2_000_000: return speed_t(B2000000)
        case 2_500_000: return speed_t(B2500000)
        case 3_000_000: return speed_t(B3000000)
        case 3_500_000: return speed_t(B3500000)
        case 4_000_000: return speed_t(B4000000)
        default: return nil
        }
    }

    /// The `c_cflag` / `c_iflag` bits for data bits, parity, stop bits and flow control (pure; unit-tested).
    public static func termiosFlags(for configuration: SerialConfiguration) -> (cflag: tcflag_t, iflag: tcflag_t) {
        var cflag: tcflag_t
        switch configuration.dataBits {
        case .five: cflag = tcflag_t(CS5)
        case .six: cflag = tcflag_t(CS6)
        case .seven: cflag = tcflag_t(CS7)
        case .eight: cflag = tcflag_t(CS8)
        }
        var iflag: tcflag_t = 0
        switch configuration.parity {
        case .none: break
        case .even:
            cflag |= tcflag_t(PARENB)
            iflag |= tcflag_t(INPCK)
        case .odd:
            cflag |= tcflag_t(PARENB | PARODD)
            iflag |= tcflag_t(INPCK)
        }
        if configuration.stopBits == .two { cflag |= tcflag_t(CSTOPB) }
        if configuration.flowControl == .rtsCts { cflag |= CRTSCTS }
        return (cflag, iflag)
    }

    /// Whether the tty is in exclusive mode (`TIOCGEXCL`).
    public static func isExclusive(_ fd: FileDescriptor) -> Bool {
        var on: CInt = 0
        return cpty_get_exclusive(fd.rawValue, &on) == 0 && on != 0
    }
}
