// Plain-socket peers: a blocking source and sink with a 4-byte length prefix per message. They carry the same
// messages as the node suites, directly (raw TCP), through socat, or through stunnel (TLS 1.3).
//
// Stream: `u32 BE length ‖ bytes` per message; length 0 ends a run, and the sink answers with 8 bytes: the number
// of payload bytes it received (u64 BE). The sink serves connections one after another until killed.
//
// With `--tty PATH` (suite 6) both carry the same stream over a serial port (a pty of the null modem) in raw mode
// instead of a socket: the limit the serial link's framing and the node are compared with.

#if canImport(Glibc)
import EdgeTransportTCP
import EdgeWire
import Glibc
#endif

enum RawTCP {
    /// `raw-sink --listen 127.0.0.1:0`: prints `listening host:port`, then serves connections one at a time.
    static func sink(_ arguments: Arguments) throws {
        if let tty = arguments.string("tty") {
            let fd = try openRawTTY(tty)
            print("listening tty:\(tty)")
            fflush(nil)
            let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 1 << 18)
            while true { serveConnection(fd, buffer: buffer, capacity: 1 << 18) }
        }
        let (host, port) = try splitHostPort(arguments.string("listen", default: "127.0.0.1:0"))
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw BenchFailure("socket: \(errno)") }
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let address = try makeAddress(host, port)
        let bound = address.withUnsafeBytes {
            bind(listener, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count))
        }
        guard bound == 0, listen(listener, 16) == 0 else { throw BenchFailure("bind/listen \(host):\(port): errno \(errno)") }
        var actual = [UInt8](repeating: 0, count: 16)
        var length = socklen_t(16)
        _ = actual.withUnsafeMutableBytes {
            getsockname(listener, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length)
        }
        print("listening \(host):\(Int(actual[2]) << 8 | Int(actual[3]))")
        fflush(nil)
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 1 << 18)
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 { if errno == EINTR { continue }; throw BenchFailure("accept: errno \(errno)") }
            serveConnection(connection, buffer: buffer, capacity: 1 << 18)
            close(connection)
        }
    }

    /// Reads frames until the connection closes; answers every end marker with the byte count since the last one.
    /// (On a packet socket each read is one SDU, and the frames may span SDUs: the stream is the same.)
    static func serveConnection(_ fd: Int32, buffer: UnsafeMutablePointer<UInt8>, capacity: Int) {
        var received: UInt64 = 0
        var header = [UInt8]()
        var remaining = 0  // bytes left in the current frame body
        while true {
            let n = read(fd, buffer, capacity)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            var offset = 0
            while offset < n {
                if remaining > 0 {
                    let take = min(remaining, n - offset)
                    remaining -= take
                    received += UInt64(take)
                    offset += take
                    continue
                }
                header.append(buffer[offset])
                offset += 1
                if header.count == 4 {
                    let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
                    header.removeAll(keepingCapacity: true)
                    if length == 0 {
                        var reply = [UInt8](repeating: 0, count: 8)
                        writeUInt64(received, into: &reply, at: 0)
                        writeAll(fd, reply)
                        received = 0
                    } else {
                        remaining = length
                    }
                }
            }
        }
    }

    /// `raw-source --connect host:port --size N (--seconds S | --count N)`: one connection, N-byte messages.
    static func source(_ arguments: Arguments) throws {
        let fd: Int32
        if let tty = arguments.string("tty") {
            fd = try openRawTTY(tty)
        } else {
            fd = try connectTCP(arguments.string("connect", default: ""))
        }
        try stream(arguments, fd: fd) { writeAll(fd, $0) }
        close(fd)
    }

    /// The measured stream on a connected descriptor: warm-up, then N-byte messages for `--seconds` or `--count`,
    /// then the sink's byte count; prints the result line (plus `extra`). `write` puts one frame on the link.
    static func stream(
        _ arguments: Arguments, fd: Int32, extra: [(String, JSON)] = [], write: ([UInt8]) throws -> Void
    ) throws {
        let size = try arguments.int("size", default: 16384)
        let seconds = try arguments.double("seconds", default: 2)
        let count = try arguments.int("count", default: 0)
        let warmup = try arguments.int("warmup", default: 200)
        var frame = fillerBytes(count: size + 4)
        frame[0] = UInt8(truncatingIfNeeded: size >> 24)
        frame[1] = UInt8(truncatingIfNeeded: size >> 16)
        frame[2] = UInt8(truncatingIfNeeded: size >> 8)
        frame[3] = UInt8(truncatingIfNeeded: size)
        let end: [UInt8] = [0, 0, 0, 0]

        func finish() throws -> UInt64 {
            try write(end)
            var reply = [UInt8](repeating: 0, count: 8)
            var got = 0
            while got < 8 {
                let n = reply.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, 8 - got) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw BenchFailure("sink closed the connection") }
                got += n
            }
            return readUInt64(reply, at: 0)
        }

        for _ in 0..<warmup { try write(frame) }
        _ = try finish()
        let cpu0 = processCPUSeconds()
        let start = monotonicNanos()
        var sent = 0
        if count > 0 {
            for _ in 0..<count { try write(frame) }
            sent = count
        } else {
            let budget = UInt64(seconds * 1e9)
            while monotonicNanos() - start < budget {
                for _ in 0..<16 { try write(frame) }
                sent += 16
            }
        }
        let bytes = try finish()
        let elapsed = Double(monotonicNanos() - start) / 1e9
        let cpu1 = processCPUSeconds()
        let messages = Int(bytes) / size
        emit([
            ("suite", .string("throughput")), ("system", .string(arguments.string("system", default: "raw-tcp"))),
            ("size", .int(Int64(size))), ("sent", .int(Int64(sent))), ("messages", .int(Int64(messages))), ("lost", .int(Int64(sent - messages))),
            ("seconds", .double(elapsed)), ("msgs_per_s", .double(Double(messages) / elapsed)),
            ("bytes_per_s", .double(Double(bytes) / elapsed)),
            ("client_cpu_user_s", .double(cpu1.user - cpu0.user)), ("client_cpu_sys_s", .double(cpu1.system - cpu0.system)),
        ] + extra)
    }

    /// A blocking TCP connection with TCP_NODELAY (retries for 5 s: stunnel/socat may still be starting).
    static func connectTCP(_ text: String) throws -> Int32 {
        let (host, port) = try splitHostPort(text)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchFailure("socket: errno \(errno)") }
        let address = try makeAddress(host, port)
        var connected: Int32 = -1
        for _ in 0..<50 {  // stunnel/socat may still be starting
            connected = address.withUnsafeBytes {
                connect(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count))
            }
            if connected == 0 { break }
            usleep(100_000)
        }
        guard connected == 0 else { throw BenchFailure("connect \(host):\(port): errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    /// Opens a tty (a pty of the null modem, or a real UART) blocking, in raw mode (`cfmakeraw`: 8 bits, no
    /// echo, no translation, no flow control; `VMIN 1`), with stale input discarded (after 200 ms).
    static func openRawTTY(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { throw BenchFailure("open \(path): errno \(errno)") }
        var t = termios()
        guard tcgetattr(fd, &t) == 0 else { throw BenchFailure("tcgetattr \(path): errno \(errno)") }
        cfmakeraw(&t)
        t.c_cflag |= tcflag_t(CLOCAL | CREAD)
        guard tcsetattr(fd, TCSANOW, &t) == 0 else { throw BenchFailure("tcsetattr \(path): errno \(errno)") }
        // Bytes still in flight from the previous user of the pty pair (a node's hellos) arrive within a few ms.
        usleep(200_000)
        _ = tcflush(fd, TCIFLUSH)
        return fd
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
    }

    static func splitHostPort(_ text: String) throws -> (String, Int) {
        do {
            return try TCPTransport.splitHostPort(text, allowingPortZero: true)
        } catch {
            throw BenchFailure("invalid address '\(text)' (host:port)")
        }
    }

    /// A `struct sockaddr_in` as its 16 bytes (family in host order, port and address in network order), built
    /// byte by byte so that no Glibc struct member is needed.
    static func makeAddress(_ host: String, _ port: Int) throws -> [UInt8] {
        var address = [UInt8](repeating: 0, count: 16)
        let family = UInt16(AF_INET)
        address[0] = UInt8(truncatingIfNeeded: family)
        address[1] = UInt8(truncatingIfNeeded: family >> 8)
        address[2] = UInt8(truncatingIfNeeded: port >> 8)
        address[3] = UInt8(truncatingIfNeeded: port)
        let octets = host.split(separator: ".").compactMap { UInt8($0) }
        guard octets.count == 4 else { throw BenchFailure("not an IPv4 address: \(host)") }
        for index in 0..<4 { address[4 + index] = octets[index] }
        return address
    }
}
