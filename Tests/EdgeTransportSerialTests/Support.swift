// Test support: pseudo-terminal pairs, a null-modem bridge between two ptys, serial test nodes, waiting helpers.
import EdgeSync
import CPty
import EdgeNode
import EdgeRouting
import EdgeTransportSerial
import Foundation
import Logging
import Testing

#if canImport(Glibc)
    import Glibc
#endif

struct PtyError: Error, CustomStringConvertible {
    let description: String
    init(_ what: String) { description = "\(what): \(String(cString: strerror(errno)))" }
}

/// A pty pair opened through the CPty shim: the master is the "device" side, the slave the port the agent opens.
final class PtyPair: @unchecked Sendable {  // plain fds, closed once
    let master: Int32
    let slave: Int32
    let slavePath: String

    init(nonblockingMaster: Bool = true) throws {
        var master: Int32 = -1
        var slave: Int32 = -1
        var name = [CChar](repeating: 0, count: 128)
        guard cpty_openpty(&master, &slave, &name, name.count, nonblockingMaster ? 1 : 0) == 0 else {
            throw PtyError("openpty")
        }
        self.master = master
        self.slave = slave
        slavePath = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private let closed = EdgeMutex(false)

    func close() {
        let first = closed.withLock { done -> Bool in
            defer { done = true }
            return !done
        }
        if first {
            Glibc.close(master)
            Glibc.close(slave)
        }
    }

    deinit { close() }
}

/// A temporary directory removed at deinit.
final class TemporaryDirectory: @unchecked Sendable {
    let path: String
    init(_ prefix: String = "serial") throws {
        var template = Array("/tmp/ockam-edge-\(prefix)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw PtyError("mkdtemp") }
        path = String(cString: made)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }
}

/// Points `link` at `target` atomically (rename over the old link), as udev re-points a by-id name on replug.
func repoint(_ link: String, to target: String) throws {
    let temporary = link + ".new"
    unlink(temporary)
    guard symlink(target, temporary) == 0 else { throw PtyError("symlink \(temporary)") }
    guard rename(temporary, link) == 0 else { throw PtyError("rename \(link)") }
}

/// A null-modem cable between two pty pairs, with a hand on the line.
///
/// Node A opens `path(.a)` (a symlink to pty A's slave), node B opens `path(.b)`. A pump thread copies what A
/// writes (read from master A) to master B and vice versa. Tests can inject bytes toward either side, filter what
/// a side writes, slow down reading from a side (a slow line), and unplug/replug a side: unplugging closes that
/// pty (the agent sees a hang-up), replugging makes a new pty and re-points the symlink.
final class NullModem: @unchecked Sendable {  // state guarded by `lock`; fds touched only by the pump thread
    enum Side: Int, CaseIterable, Sendable {
        case a = 0
        case b = 1
        var other: Side { self == .a ? .b : .a }
    }

    let directory: TemporaryDirectory
    private let lock = NSLock()
    private var pairs: [PtyPair?] = [nil, nil]
    /// Bytes waiting to be written into side i's master (i.e. toward the agent on side i).
    private var pending: [[UInt8]] = [[], []]
    private var filters: [(@Sendable ([UInt8]) -> [UInt8])?] = [nil, nil]
    /// At most this many bytes are read from side i per millisecond (nil: as fast as possible).
    private var readRate: [Int?] = [nil, nil]
    private var commands: [() -> Void] = []
    private var stopped = false
    private var bytesCopied: [Int] = [0, 0]
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    init() throws {
        directory = try TemporaryDirectory("modem")
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw PtyError("pipe") }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        for side in Side.allCases {
            let pair = try PtyPair()
            pairs[side.rawValue] = pair
            try repoint(path(side), to: pair.slavePath)
        }
        let thread = Thread { [self] in pump() }
        thread.name = "null-modem"
        self.thread = thread
        thread.start()
    }

    deinit {
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    /// The configured port path of a side (a symlink into /dev/pts).
    func path(_ side: Side) -> String { directory.file(side == .a ? "ttyA" : "ttyB") }

    /// The current pty slave of a side.
    func devicePath(_ side: Side) -> String? { lock.withLock { pairs[side.rawValue]?.slavePath } }

    /// Bytes copied from a side to the other so far.
    func copied(from side: Side) -> Int { lock.withLock { bytesCopied[side.rawValue] } }

    /// Writes bytes toward the agent on `side` (as if the far end or line noise sent them).
    func inject(_ bytes: [UInt8], toward side: Side) {
        lock.withLock { pending[side.rawValue] += bytes }
        wake()
    }

    /// Transforms what the agent on `side` writes before it reaches the other side.
    func setFilter(from side: Side, _ filter: (@Sendable ([UInt8]) -> [UInt8])?) {
        lock.withLock { filters[side.rawValue] = filter }
    }

    /// Reads at most `bytesPerMillisecond` from `side` (a slow line or slow reader); nil for full speed.
    func setReadRate(from side: Side, bytesPerMillisecond: Int?) {
        lock.withLock { readRate[side.rawValue] = bytesPerMillisecond }
        wake()
    }

    /// Closes a side's pty: the agent's port hangs up, the symlink dangles (like a USB unplug).
    func unplug(_ side: Side) {
        run {
            self.pairs[side.rawValue]?.close()
            self.pairs[side.rawValue] = nil
            self.pending[side.rawValue] = []
        }
    }

    /// A new pty for a side, and the side's symlink re-pointed at it (like a USB replug).
    func replug(_ side: Side) throws {
        let result = EdgeMutex<(any Error)?>(nil)
        run {
            do {
                let pair = try PtyPair()
                try repoint(self.path(side), to: pair.slavePath)
                self.pairs[side.rawValue] = pair
            } catch {
                result.withLock { $0 = error }
            }
        }
        if let error = result.withLock({ $0 }) { throw error }
    }

    func stop() {
        let already = lock.withLock { () -> Bool in
            defer { stopped = true }
            return stopped
        }
        guard !already else { return }
        wake()
        finished.wait()
        for pair in pairs { pair?.close() }
        thread = nil  // the thread's closure holds `self`: break the cycle so deinit removes the directory
    }

    /// Runs `body` on the pump thread (the only one touching fds) and waits for it.
    private func run(_ body: @escaping () -> Void) {
        let done = DispatchSemaphore(value: 0)
        lock.withLock {
            commands.append {
                body()
                done.signal()
            }
        }
        wake()
        done.wait()
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    private func pump() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let maxPending = 256 * 1024
        while true {
            let (commands, stop) = lock.withLock { () -> ([() -> Void], Bool) in
                defer { self.commands = [] }
                return (self.commands, stopped)
            }
            for command in commands { command() }
            if stop { break }
            var fds: [pollfd] = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            var sides: [Side] = []
            let throttled = lock.withLock { readRate.contains { $0 != nil } }
            lock.withLock {
                for side in Side.allCases {
                    guard let pair = pairs[side.rawValue] else { continue }
                    var events: Int16 = 0
                    if pending[side.other.rawValue].count < maxPending { events |= Int16(POLLIN) }
                    if !pending[side.rawValue].isEmpty { events |= Int16(POLLOUT) }
                    fds.append(pollfd(fd: pair.master, events: events, revents: 0))
                    sides.append(side)
                }
            }
            _ = poll(&fds, nfds_t(fds.count), throttled ? 1 : 50)
            if fds[0].revents & Int16(POLLIN) != 0 {
                var sink = [UInt8](repeating: 0, count: 64)
                while read(wakeRead, &sink, sink.count) > 0 {}
            }
            for (index, side) in sides.enumerated() {
                let entry = fds[index + 1]
                let (pair, limit, filter) = lock.withLock {
                    (pairs[side.rawValue], readRate[side.rawValue], filters[side.rawValue])
                }
                guard let pair else { continue }
                if entry.revents & Int16(POLLIN) != 0 {
                    let count = min(buffer.count, limit ?? buffer.count)
                    let n = read(pair.master, &buffer, count)
                    if n > 0 && limit != nil { usleep(1000) }  // a slow line: at most `limit` bytes per millisecond
                    if n > 0 {
                        var chunk = Array(buffer[0..<n])
                        if let filter { chunk = filter(chunk) }
                        lock.withLock {
                            pending[side.other.rawValue] += chunk
                            bytesCopied[side.rawValue] += n
                        }
                    }
                }
                let outgoing = lock.withLock { pending[side.rawValue] }
                if !outgoing.isEmpty {
                    let n = outgoing.withUnsafeBytes { write(pair.master, $0.baseAddress, $0.count) }
                    if n > 0 { lock.withLock { pending[side.rawValue].removeFirst(n) } }
                }
            }
        }
        finished.signal()
    }
}

/// A node with default services and a serial transport tuned for fast tests.
struct SerialTestNode {
    let node: Node
    let serial: SerialTransport
    let recorder: EventRecorder

    static func fastOptions() -> SerialTransportOptions {
        var options = SerialTransportOptions()
        options.helloInterval = .milliseconds(20)
        options.helloIntervalMax = .milliseconds(200)
        options.keepaliveInterval = nil
        options.reopenDelay = .milliseconds(5)
        options.reopenDelayMax = .milliseconds(40)
        options.resolveTimeout = .seconds(5)
        return options
    }

    static func start(_ name: String, options: SerialTransportOptions = fastOptions()) throws -> SerialTestNode {
        var logger = Logger(label: "test.\(name)")
        logger.logLevel = ProcessInfo.processInfo.environment["OCKAM_EDGE_TEST_LOG"] == nil ? .critical : .debug
        let node = Node(logger: logger)
        try node.startDefaultServices()
        let serial = SerialTransport(node: node, options: options, logger: logger)
        return SerialTestNode(node: node, serial: serial, recorder: EventRecorder(serial.events()))
    }

    func stop() async {
        await serial.shutdown()
        await node.shutdown()
        recorder.stop()
    }
}

/// Collects link events in the background.
final class EventRecorder: Sendable {
    private let box = EventBox()
    private let task: Task<Void, Never>

    init(_ stream: AsyncStream<SerialLinkEvent>) {
        let box = self.box
        task = Task {
            for await event in stream { box.append(event) }
        }
    }

    var all: [SerialLinkEvent] { box.all }
    func ups(_ port: String) -> Int { all.filter { $0.port == port && $0.isUp }.count }
    func downs(_ port: String) -> Int { all.filter { $0.port == port && !$0.isUp }.count }
    func stop() { task.cancel() }
}

final class EventBox: Sendable {
    private let storage = EdgeMutex<[SerialLinkEvent]>([])
    func append(_ event: SerialLinkEvent) { storage.withLock { $0.append(event) } }
    var all: [SerialLinkEvent] { storage.withLock { $0 } }
}

/// A worker that records every message it gets.
final class Collector: Worker {
    private let storage = EdgeMutex<[LocalMessage]>([])
    var messages: [LocalMessage] { storage.withLock { $0 } }
    var count: Int { storage.withLock { $0.count } }
    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        storage.withLock { $0.append(message) }
    }
}

/// Reads from a non-blocking fd until `count` bytes arrived or `timeout` passed.
func readBytes(_ fd: Int32, count: Int, timeout: Duration = .seconds(5)) -> [UInt8] {
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    let deadline = ContinuousClock.now + timeout
    while out.count < count && ContinuousClock.now < deadline {
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
        _ = poll(&fds, 1, 10)
        let n = read(fd, &buffer, min(buffer.count, count - out.count))
        if n > 0 { out += buffer[0..<n] }
    }
    return out
}

/// Writes all bytes to a (possibly non-blocking) fd.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n > 0 {
            offset += n
        } else {
            var fds = [pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)]
            _ = poll(&fds, 1, 10)
        }
    }
}
