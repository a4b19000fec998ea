// Discovering candidate serial ports and their stable names (/dev/serial/by-id, by-path, /dev/ockam-edge, sysfs).
import EdgePOSIX
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// USB details of a serial port, from sysfs (`idVendor`, `idProduct`, `manufacturer`, `product`, `serial`).
public struct USBDeviceInfo: Hashable, Sendable {
    public var vendorID: UInt16
    public var productID: UInt16
    public var manufacturer: String?
    public var product: String?
    public var serialNumber: String?

    public init(
        vendorID: UInt16, productID: UInt16, manufacturer: String? = nil, product: String? = nil,
        serialNumber: String? = nil
    ) {
        self.vendorID = vendorID
        self.productID = productID
        self.manufacturer = manufacturer
        self.product = product
        self.serialNumber = serialNumber
    }

    /// `0403:6001`.
    public var ids: String { Self.hex4(vendorID) + ":" + Self.hex4(productID) }

    static func hex4(_ value: UInt16) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 4 - digits.count) + digits
    }
}

/// One candidate serial port, as `ockam-edge serial list` shows it.
public struct SerialPortInfo: Hashable, Sendable {
    /// The device node (`/dev/ttyUSB0`).
    public var path: FilePath
    /// Stable symlinks to it, best first: `/dev/ockam-edge/...`, then `/dev/serial/by-id/...`, then `by-path`.
    public var aliases: [FilePath]
    /// Kernel driver (`ftdi_sio`, `cp210x`, `ch341`, `pl2303`, `cdc_acm`, `serial8250`), if sysfs names one.
    public var driver: String?
    /// USB identity, when the port sits on a USB device.
    public var usb: USBDeviceInfo?

    public init(path: FilePath, aliases: [FilePath] = [], driver: String? = nil, usb: USBDeviceInfo? = nil) {
        self.path = path
        self.aliases = aliases
        self.driver = driver
        self.usb = usb
    }

    /// The name to put in a spec string: the best alias, else the device path.
    public var preferredPath: FilePath { aliases.first ?? path }
}

/// Scans for serial ports. Roots are injectable so tests run on fixture trees.
public enum SerialPorts {
    /// Symlink directories scanned for stable names, best first (relative to the dev root).
    public static let aliasDirectories = ["ockam-edge", "serial/by-id", "serial/by-path"]
    /// Device-node name prefixes scanned in the dev root. `ttyS*` is listed only if sysfs shows a device behind it.
    public static let devicePrefixes = ["ttyUSB", "ttyACM", "ttyS"]

    /// Candidate ports, sorted by device path (natural order: ttyUSB2 before ttyUSB10).
    ///
    /// - Parameters:
    ///   - devRoot: where device nodes live (`/dev`).
    ///   - sysRoot: sysfs (`/sys`); `<sysRoot>/class/tty/<name>/device` leads to the driver and USB attributes.
    public static func list(devRoot: FilePath = "/dev", sysRoot: FilePath = "/sys") -> [SerialPortInfo] {
        var names = Set<String>()
        for entry in FileSystem.directoryEntries(devRoot) where Self.isCandidateName(entry) {
            if entry.hasPrefix("ttyS") && !FileSystem.exists(sysRoot.appending("class/tty/\(entry)/device")) {
                continue
            }
            names.insert(entry)
        }
        var links: [(link: FilePath, target: FilePath)] = []
        for directory in aliasDirectories {
            let dir = devRoot.appending(directory)
            for entry in FileSystem.directoryEntries(dir) {
                let link = dir.appending(entry)
                guard let target = FileSystem.readLink(link) else { continue }
                let resolved = resolve(target, relativeTo: dir)
                guard FileSystem.exists(resolved) else { continue }
                links.append((link, resolved))
            }
        }
        var devices: [String: FilePath] = [:]
        for name in names { devices[devRoot.appending(name).string] = devRoot.appending(name) }
        for (_, target) in links where devices[target.string] == nil { devices[target.string] = target }

        var ports: [SerialPortInfo] = []
        for (_, device) in devices {
            guard let name = device.lastComponent?.string else { continue }
            let sysfs = sysfsInfo(name: name, sysRoot: sysRoot)
            let aliases = links.filter { $0.target == device }.map(\.link)
            ports.append(
                SerialPortInfo(
                    path: device, aliases: sortAliases(aliases, devRoot: devRoot), driver: sysfs.driver, usb: sysfs.usb)
            )
        }
        return ports.sorted { naturalLess($0.path.string, $1.path.string) }
    }

    // MARK: Pure helpers

    /// `ttyUSB0`, `ttyACM12`, `ttyS3`: a prefix from ``devicePrefixes`` followed by digits only.
    public static func isCandidateName(_ name: String) -> Bool {
        for prefix in devicePrefixes where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            return !rest.isEmpty && rest.allSatisfy { $0.isASCII && $0.isNumber }
        }
        return false
    }

    /// Resolves a symlink target (`../../ttyUSB0`) against the link's directory, lexically.
    public static func resolve(_ target: FilePath, relativeTo directory: FilePath) -> FilePath {
        let joined = target.isAbsolute ? target : directory.pushing(target)
        return joined.lexicallyNormalized()
    }

    /// Orders aliases by ``aliasDirectories`` rank, then by name.
    static func sortAliases(_ aliases: [FilePath], devRoot: FilePath) -> [FilePath] {
        func rank(_ path: FilePath) -> Int {
            for (index, directory) in aliasDirectories.enumerated()
            where path.starts(with: devRoot.appending(directory)) {
                return index
            }
            return aliasDirectories.count
        }
        return aliases.sorted { (rank($0), $0.string) < (rank($1), $1.string) }
    }

    /// Parses the text of sysfs USB attribute files (`idVendor` → "0403\n", ...). Nil without valid ids.
    public static func parseUSBAttributes(_ attributes: [String: String]) -> USBDeviceInfo? {
        func text(_ key: String) -> String? {
            guard let raw = attributes[key] else { return nil }
            let trimmed = trim(raw)
            return trimmed.isEmpty ? nil : trimmed
        }
        guard let vendor = text("idVendor").flatMap({ UInt16($0, radix: 16) }),
            let product = text("idProduct").flatMap({ UInt16($0, radix: 16) })
        else { return nil }
        return USBDeviceInfo(
            vendorID: vendor, productID: product, manufacturer: text("manufacturer"), product: text("product"),
            serialNumber: text("serial"))
    }

    static func trim(_ text: String) -> String {
        var scalars = Substring(text)
        while let c = scalars.first, c.isWhitespace || c == "\0" { scalars = scalars.dropFirst() }
        while let c = scalars.last, c.isWhitespace || c == "\0" { scalars = scalars.dropLast() }
        return String(scalars)
    }

    /// `a2 < a10`: compares runs of digits by value.
    public static func naturalLess(_ a: String, _ b: String) -> Bool {
        var i = a.unicodeScalars.makeIterator()
        var j = b.unicodeScalars.makeIterator()
        var x = i.next()
        var y = j.next()
        while let cx = x, let cy = y {
            if cx.properties.numericType != nil && cx.isASCII && cy.properties.numericType != nil && cy.isASCII {
                var nx = 0
                var ny = 0
                var dx = 0
                var dy = 0
                while let c = x, c.isASCII, let v = c.properties.numericValue {
                    nx = nx &* 10 &+ Int(v)
                    dx += 1
                    x = i.next()
                }
                while let c = y, c.isASCII, let v = c.properties.numericValue {
                    ny = ny &* 10 &+ Int(v)
                    dy += 1
                    y = j.next()
                }
                if nx != ny { return nx < ny }
                if dx != dy { return dx < dy }
                continue
            }
            if cx != cy { return cx.value < cy.value }
            x = i.next()
            y = j.next()
        }
        return x == nil && y != nil
    }

    // MARK: sysfs

    /// Driver and USB identity of tty `name`: follows `<sysRoot>/class/tty/<name>/device`, reads `driver`, then walks
    /// up (at most 6 levels, never above `sysRoot`) to the first directory with `idVendor`.
    static func sysfsInfo(name: String, sysRoot: FilePath) -> (driver: String?, usb: USBDeviceInfo?) {
        let deviceLink = sysRoot.appending("class/tty/\(name)/device")
        guard let device = FileSystem.realPath(deviceLink) else { return (nil, nil) }
        let driver = FileSystem.realPath(device.appending("driver"))?.lastComponent?.string
        guard let root = FileSystem.realPath(sysRoot) else { return (driver, nil) }
        var directory = device
        for _ in 0..<6 {
            if FileSystem.exists(directory.appending("idVendor")) {
                var attributes: [String: String] = [:]
                for key in ["idVendor", "idProduct", "manufacturer", "product", "serial"] {
                    if let text = FileSystem.readSmallFile(directory.appending(key)) { attributes[key] = text }
                }
                return (driver, parseUSBAttributes(attributes))
            }
            guard directory.removingLastComponent() != directory else { break }
            directory = directory.removingLastComponent()
            guard directory.starts(with: root), directory != root else { break }
        }
        return (driver, nil)
    }
}

// MARK: - Minimal file-system access (no Foundation)

enum FileSystem {
    static func exists(_ path: FilePath) -> Bool {
        var info = stat()
        return stat(path.string, &info) == 0
    }

    /// Entry names of a directory (without `.` and `..`); empty if it cannot be read. At most 4096 entries.
    static func directoryEntries(_ path: FilePath) -> [String] {
        guard let dir = opendir(path.string) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while names.count < 4096, let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw -> String in
                let bytes = raw.prefix { $0 != 0 }
                return String(decoding: bytes, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func readLink(_ path: FilePath) -> FilePath? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink(path.string, &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return FilePath(String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    static func realPath(_ path: FilePath) -> FilePath? {
        guard let resolved = realpath(path.string, nil) else { return nil }
        defer { free(resolved) }
        return FilePath(String(cString: resolved))
    }

    /// Reads up to 4 KiB of a (sysfs) text file.
    static func readSmallFile(_ path: FilePath) -> String? {
        let fd = open(path.string, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var total = 0
        while total < buffer.count {
            let n = retryingOnInterrupt { buffer[total...].withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) } }
            guard n > 0 else { break }
            total += n
        }
        return String(decoding: buffer[0..<total], as: UTF8.self)
    }
}
