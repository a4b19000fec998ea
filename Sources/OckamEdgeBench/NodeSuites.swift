// Suites through the real runtime: a node with the TCP transport and secure channels on each side.
//
//   serve            the receiving node: TCP listener, secure channel listener `api`, worker `sink`
//   send             bulk throughput: N-byte messages initiator → responder (secure channel or plain routing)
//   latency          paced small messages with timestamps; the sink reports one-way latency percentiles
//   channels-open    opens N secure channels from one process against a node, reading the node's RSS as it goes
import EdgeCrypto
import EdgeIdentity
import EdgeNode
import EdgeRouting
import EdgeSecureChannel
import EdgeSync
import EdgeTransportBLE
import EdgeTransportSerial
import EdgeTransportTCP
import EdgeWire
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// First byte of every payload sent to the sink.
enum SinkKind: UInt8 {
    /// Counted, nothing else.
    case data = 0
    /// Resets the counters and latency samples; answered with `{}`.
    case reset = 1
    /// Answered with the counters (and latency percentiles) since the last reset.
    case end = 2
    /// `[3, intended send time (u64 BE ns), actual send time (u64 BE ns), …]`: counted and timed.
    case timed = 3
}

/// The receiving end of every node suite: counts messages and bytes, records one-way latencies.
final class SinkWorker: Worker {
    struct State: ~Copyable {
        var messages: UInt64 = 0
        var bytes: UInt64 = 0
        var fromIntended: [UInt64] = []
        var fromActual: [UInt64] = []
        var first: UInt64 = 0
        var last: UInt64 = 0
    }

    private let state = EdgeMutex(State())

    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        guard let first = message.payload.first, let kind = SinkKind(rawValue: first) else { return }
        switch kind {
        case .data:
            let now = monotonicNanos()
            state.withLock {
                if $0.messages == 0 { $0.first = now }
                $0.messages += 1
                $0.bytes += UInt64(message.payload.count)
                $0.last = now
            }
        case .timed:
            let now = monotonicNanos()
            guard message.payload.count >= 17 else { return }
            let intended = readUInt64(message.payload, at: 1)
            let actual = readUInt64(message.payload, at: 9)
            state.withLock {
                if $0.messages == 0 { $0.first = now }
                $0.messages += 1
                $0.bytes += UInt64(message.payload.count)
                $0.last = now
                $0.fromIntended.append(now &- intended)
                $0.fromActual.append(now &- actual)
            }
        case .reset:
            state.withLock { $0 = State() }
            try await context.send(to: message.returnRoute, payload: Array("{}".utf8))
        case .end:
            let summary: JSON = state.withLock { s in
                .object([
                    ("messages", .int(Int64(Int(s.messages)))), ("bytes", .int(Int64(Int(s.bytes)))),
                    ("receive_span_s", .double(Double(s.last &- s.first) / 1e9)),
                    ("latency_from_send", latencySummary(s.fromActual)),
                    ("latency_from_schedule", latencySummary(s.fromIntended)),
                ])
            }
            try await context.send(to: message.returnRoute, payload: Array(summary.serialized(pretty: false).utf8))
        }
    }
}

/// A node with a TCP transport and secure channels, as both ends of the node suites build it.
struct BenchNode {
    let group: MultiThreadedEventLoopGroup
    let node: Node
    let tcp: TCPTransport
    let channels: SecureChannels
    /// With `--serial SPEC` (suites 3 and 6): the serial transport, on the same event loop, with that one port open.
    let serial: SerialTransport?
    let serialPort: String?
    /// With `--ble-listen SPEC` or `--ble-connect SPEC` (suite 7, in the virtual BLE rig): the BLE transport, on the
    /// same event loop.
    let ble: BLETransport?
    let bleListen: BLEListenConfiguration?
    let bleConnect: BLEConnectConfiguration?

    /// One event-loop thread, as the agent (`ockam-edge node run`) uses. Device links come from `--serial`,
    /// `--ble-listen` and `--ble-connect`.
    init(_ arguments: Arguments? = nil) throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        node = Node(logger: Logger(label: "ockam-edge-bench"))
        tcp = TCPTransport(node: node, group: group)
        channels = SecureChannels(node: node, local: try SecureChannelCredentials.ephemeral())
        if let serialSpec = arguments?.string("serial") {
            let configuration = try SerialConfiguration(parsing: serialSpec)
            let transport = SerialTransport(node: node, group: group)
            try transport.open(configuration, requireDevice: true)
            serial = transport
            serialPort = configuration.name
        } else {
            serial = nil
            serialPort = nil
        }
        bleListen = try arguments?.string("ble-listen").map { try BLEListenConfiguration(parsing: $0) }
        bleConnect = try arguments?.string("ble-connect").map {
            var configuration = try BLEConnectConfiguration(parsing: $0)
            configuration.reconnect = false  // a run that loses its link fails instead of measuring reconnects
            return configuration
        }
        ble = bleListen != nil || bleConnect != nil ? BLETransport(node: node, group: group) : nil
    }

    /// What the device link (serial port or BLE link) has written so far: routing messages, bytes, and frames
    /// (serial) or SDUs (BLE). Nil without a device link.
    var linkCounters: LinkCounters? {
        if let ble {
            let c = ble.counters
            return LinkCounters(messagesOut: c.messagesOut, messagesIn: c.messagesIn, bytesOut: c.bytesOut,
                                bytesIn: c.bytesIn, unitsOut: c.sdusOut, unitsIn: c.sdusIn, unit: "sdus")
        }
        guard let serial, let serialPort, let c = serial.status(port: serialPort)?.counters else { return nil }
        return LinkCounters(messagesOut: c.messagesOut, messagesIn: c.messagesIn, bytesOut: c.bytesOut,
                            bytesIn: c.bytesIn, unitsOut: c.framesOut, unitsIn: c.framesIn, unit: "frames")
    }

    /// Waits (bounded) until the device link has written `messages` more routing messages than `since`, and
    /// returns its counters then: the exact bytes those messages took on the link.
    func linkCounters(after messages: UInt64, since: LinkCounters) async throws -> LinkCounters {
        var now = linkCounters ?? since
        let deadline = monotonicNanos() + 30_000_000_000
        while now.messagesOut - since.messagesOut < messages, monotonicNanos() < deadline {
            try await Task.sleep(for: .microseconds(200))
            now = linkCounters ?? now
        }
        return now
    }

    static func options(_ arguments: Arguments) -> SecureChannelOptions {
        let suite: ChannelSuite = arguments.string("cipher", default: "aes-gcm") == "chacha20-poly1305" ? .chaCha20Poly1305 : .aes256GCM
        return SecureChannelOptions(suite: suite, handshakeTimeout: .seconds(60))
    }

    /// The route to the sink: over the device link when there is one (`64#<port>` or `4#<peer>`), then through
    /// `via` gateways and `connect` over TCP when given (the device → gateway → TCP → cloud path of suite 3), through
    /// a new secure channel unless `plain`. Returns the route, the time the handshake took, and what the handshake
    /// cost on the device link (its messages, SDUs or frames, and bytes each way).
    func sinkRoute(_ arguments: Arguments) async throws -> (Route, Double?, [(String, JSON)]) {
        var hops: Route = []
        if let serial, let serialPort {
            // The peer is the node on the other end of the serial link (`64#<port>`).
            _ = try await serial.waitForLink(port: serialPort, timeout: .seconds(30))
            hops.append(.serial(serialPort))
        } else if let ble, let bleConnect {
            _ = try await ble.connect(bleConnect)
            hops.append(bleConnect.peer.address)
        }
        if let via = arguments.string("via") {
            for gateway in via.split(separator: ",") { hops.append(.tcp(String(gateway))) }
        }
        if let connect = arguments.string("connect") {
            hops.append(.tcp(connect))
        } else if hops.isEmpty {
            throw BenchFailure("missing --connect host:port")
        }
        if arguments.flag("plain") {
            hops.append(.local("sink"))
            return (hops, nil, [])
        }
        hops.append(.local("api"))
        let before = linkCounters
        let start = monotonicNanos()
        let channel = try await channels.createChannel(to: hops, options: Self.options(arguments))
        let seconds = Double(monotonicNanos() - start) / 1e9
        var cost: [(String, JSON)] = []
        if let before {
            // Noise XX: the initiator writes messages 1 and 3 and reads message 2. The channel is complete here, but
            // message 3 may still be in the link's writer.
            let after = try await linkCounters(after: 2, since: before)
            cost = after.delta(from: before).json(prefix: "handshake_link_")
        }
        return ([channel.encryptor, .local("sink")], seconds, cost)
    }

    func request(_ route: Route, _ kind: SinkKind, timeout: Duration = .seconds(120)) async throws -> String {
        let reply = try await node.request(to: route, payload: [kind.rawValue], timeout: timeout)
        return String(decoding: reply.payload, as: UTF8.self)
    }
}

enum NodeSuites {
    /// `serve --listen 127.0.0.1:0`: prints `listening host:port`, then serves until killed (or --max-seconds).
    static func serve(_ arguments: Arguments) async throws {
        let listen = arguments.string("listen", default: "127.0.0.1:0")
        let (host, port) = try TCPTransport.splitHostPort(listen, allowingPortZero: true)
        let bench = try BenchNode(arguments)
        try bench.channels.startListener(name: "api", options: BenchNode.options(arguments))
        // Reachable from links too: the --plain suites route to it without a secure channel.
        try bench.node.startWorker(SinkWorker(), at: .local("sink"), options: WorkerOptions(reach: .links))
        try bench.node.startDefaultServices()
        if let port = bench.serialPort {
            // Suites 3 and 6: serves over the serial port only (the peer connects; `64#<port>` is its link).
            print("listening serial:\(port)")
        } else if let ble = bench.ble, let listen = bench.bleListen {
            // Suite 7: serves over BLE only (the peer connects from the other controller).
            print("listening ble:\(try await ble.listen(listen))")
        } else {
            let bound = try await bench.tcp.listen(host: host, port: port)
            print("listening \(host):\(bound.port ?? port)")
        }
        fflush(nil)
        while true { try await Task.sleep(for: .seconds(3600)) }
    }

    /// `send --connect host:port [--via gw] [--plain] --size N (--seconds S | --count N)`: bulk messages to the sink.
    static func send(_ arguments: Arguments) async throws {
        let size = try arguments.int("size", default: 16384)
        let seconds = try arguments.double("seconds", default: 2)
        let count = try arguments.int("count", default: 0)
        let warmup = try arguments.int("warmup", default: 200)
        guard size >= 1 else { throw BenchFailure("--size must be at least 1") }
        let bench = try BenchNode(arguments)
        let (route, handshake, handshakeLink) = try await bench.sinkRoute(arguments)
        var payload = fillerBytes(count: size)
        payload[0] = SinkKind.data.rawValue

        func message() -> LocalMessage { LocalMessage(onwardRoute: route, returnRoute: [], payload: payload) }
        for _ in 0..<warmup { try await bench.node.send(message()) }
        _ = try await bench.request(route, .end)
        _ = try await bench.request(route, .reset)
        // Device links: what one `.end` request costs on the link, measured while the link is idle. The measured run
        // reads the link's counters only after its own `.end` and subtracts this, so nothing polls them while the run
        // is timed (a 200 µs polling loop there took a third of the BLE sender's CPU under emulation).
        var endCost: LinkCounters?
        if let idle = bench.linkCounters {
            _ = try await bench.request(route, .end)
            endCost = try await bench.linkCounters(after: 1, since: idle).delta(from: idle)
            _ = try await bench.request(route, .reset)
        }

        let wire0 = bench.linkCounters
        let cpu0 = processCPUSeconds()
        let start = monotonicNanos()
        var sent = 0
        if count > 0 {
            for _ in 0..<count { try await bench.node.send(message()) }
            sent = count
        } else {
            let budget = UInt64(seconds * 1e9)
            while monotonicNanos() - start < budget {
                for _ in 0..<16 { try await bench.node.send(message()) }
                sent += 16
            }
        }
        let sendDone = monotonicNanos()
        let reply = try await bench.request(route, .end)
        let end = monotonicNanos()
        let cpu1 = processCPUSeconds()
        // Device links: the bytes the measured messages took on the link, exactly: everything written since the run
        // began (the measured messages, then the `.end` request; read once the link's sender has completed all those
        // writes) less the `.end` request's own cost. Each message is one routing message.
        var wire: [(String, JSON)] = []
        if let wire0, let endCost {
            let total = try await bench.linkCounters(after: UInt64(sent) + 1, since: wire0).delta(from: wire0)
            let used = total.delta(from: endCost)
            guard used.messagesOut == UInt64(sent) else {
                throw BenchFailure("the link wrote \(total.messagesOut) messages, expected \(sent) and the end request")
            }
            wire = [
                ("wire_messages_out", .int(Int64(Int(used.messagesOut)))), ("wire_bytes_out", .int(Int64(Int(used.bytesOut)))),
                ("wire_bytes_per_msg", .double(used.messagesOut > 0 ? Double(used.bytesOut) / Double(used.messagesOut) : 0)),
                ("wire_\(used.unit)_out", .int(Int64(Int(used.unitsOut)))),
                ("wire_\(used.unit)_per_msg", .double(used.messagesOut > 0 ? Double(used.unitsOut) / Double(used.messagesOut) : 0)),
            ]
        }
        let received = JSONScan.int("messages", in: reply) ?? -1
        let elapsed = Double(end - start) / 1e9
        var fields: [(String, JSON)] = [
            ("suite", .string("throughput")), ("system", .string(arguments.string("system", default: "ockam-edge"))),
            ("size", .int(Int64(size))), ("sent", .int(Int64(sent))), ("messages", .int(Int64(received))), ("lost", .int(Int64(sent - received))),
            ("seconds", .double(elapsed)), ("send_seconds", .double(Double(sendDone - start) / 1e9)),
            ("msgs_per_s", .double(Double(received) / elapsed)), ("bytes_per_s", .double(Double(received * size) / elapsed)),
            ("handshake_s", handshake.map { .double($0) } ?? .null),
            ("client_cpu_user_s", .double(cpu1.user - cpu0.user)), ("client_cpu_sys_s", .double(cpu1.system - cpu0.system)),
            ("aes_backend", .string(AES256GCM.activeBackend.rawValue)),
        ]
        fields += wire + handshakeLink + bench.linkMTUFields
        emit(fields)
    }

    /// `latency --connect host:port [--via gw] --rate R --seconds S --size 64`: open-loop paced sends, each carrying
    /// its scheduled and its actual send time; the sink reports one-way latency percentiles for both.
    static func latency(_ arguments: Arguments) async throws {
        let size = max(17, try arguments.int("size", default: 64))
        let rate = try arguments.double("rate", default: 1000)
        let seconds = try arguments.double("seconds", default: 2)
        guard rate > 0 else { throw BenchFailure("--rate must be positive") }
        tightenTimerSlack()
        let bench = try BenchNode(arguments)
        let (route, handshake, _) = try await bench.sinkRoute(arguments)
        var payload = fillerBytes(count: size)
        payload[0] = SinkKind.timed.rawValue
        // Warm-up at the same rate for a short while, then reset.
        try await paced(bench, route, &payload, rate: rate, seconds: min(0.5, seconds / 4))
        _ = try await bench.request(route, .end)
        _ = try await bench.request(route, .reset)
        let cpu0 = processCPUSeconds()
        let sent = try await paced(bench, route, &payload, rate: rate, seconds: seconds)
        let reply = try await bench.request(route, .end)
        let cpu1 = processCPUSeconds()
        emit([
            ("suite", .string("latency")), ("system", .string(arguments.string("system", default: "ockam-edge"))),
            ("size", .int(Int64(size))), ("rate", .double(rate)), ("seconds", .double(seconds)), ("sent", .int(Int64(sent))),
            ("achieved_rate", .double(Double(sent) / seconds)), ("handshake_s", handshake.map { .double($0) } ?? .null),
            ("client_cpu_s", .double(cpu1.user + cpu1.system - cpu0.user - cpu0.system)),
            ("sink", .string(reply)),
        ])
    }

    /// Sends at `rate` for `seconds`, each message stamped with its scheduled time (the open-loop schedule, so a
    /// stall shows up as latency instead of silently lowering the rate) and its actual send time.
    @discardableResult
    static func paced(_ bench: BenchNode, _ route: Route, _ payload: inout [UInt8], rate: Double, seconds: Double) async throws -> Int {
        let interval = 1e9 / rate
        let start = monotonicNanos() + 1_000_000
        let total = Int(rate * seconds)
        var index = 0
        while index < total {
            let due = start + UInt64(Double(index) * interval)
            let now = monotonicNanos()
            if now < due {
                try await Task.sleep(for: .nanoseconds(Int64(due - now)))
                continue
            }
            // Everything due by now goes out back to back.
            while index < total {
                let scheduled = start + UInt64(Double(index) * interval)
                let actual = monotonicNanos()
                if scheduled > actual { break }
                writeUInt64(scheduled, into: &payload, at: 1)
                writeUInt64(actual, into: &payload, at: 9)
                try await bench.node.send(LocalMessage(onwardRoute: route, returnRoute: [], payload: payload))
                index += 1
            }
        }
        return total
    }

    /// `channels-open --connect host:port --counts 1,100,1000 --node-pid PID [--concurrency 8]`: opens secure channels
    /// from this process over one TCP connection; after each count, waits for the node to settle and reports its
    /// RSS and threads (and this process's).
    static func channelsOpen(_ arguments: Arguments) async throws {
        guard let connect = arguments.string("connect") else { throw BenchFailure("missing --connect host:port") }
        let counts = try arguments.ints("counts", default: [1, 100, 1000])
        let pid = Int32(try arguments.int("node-pid", default: 0))
        let concurrency = max(1, try arguments.int("concurrency", default: 8))
        let settle = try arguments.double("settle", default: 1)
        let bench = try BenchNode()
        let route: Route = [.tcp(connect), .local("api")]
        let options = BenchNode.options(arguments)
        var opened = 0
        for target in counts {
            let start = monotonicNanos()
            let before = opened
            while opened < target {
                let batch = min(concurrency, target - opened)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<batch {
                        group.addTask { _ = try await bench.channels.createChannel(to: route, options: options) }
                    }
                    try await group.waitForAll()
                }
                opened += batch
            }
            let elapsed = Double(monotonicNanos() - start) / 1e9
            try await Task.sleep(for: .milliseconds(Int64(settle * 1000)))
            emit([
                ("suite", .string("channels-open")), ("channels", .int(Int64(opened))),
                ("opened_now", .int(Int64(opened - before))), ("seconds", .double(elapsed)),
                ("handshakes_per_s", .double(Double(opened - before) / max(elapsed, 1e-9))),
                ("node", pid > 0 ? (ProcessStatus(pid: pid)?.json ?? .null) : .null),
                ("client", ProcessStatus(pid: 0)?.json ?? .null),
                ("client_channels", .int(Int64(bench.channels.channels.count))),
            ])
        }
    }
}

/// A device link's counters (serial port or BLE transport), in one shape.
struct LinkCounters {
    var messagesOut: UInt64
    var messagesIn: UInt64
    var bytesOut: UInt64
    var bytesIn: UInt64
    /// Frames (serial) or SDUs (BLE).
    var unitsOut: UInt64
    var unitsIn: UInt64
    var unit: String

    func delta(from start: LinkCounters) -> LinkCounters {
        LinkCounters(messagesOut: messagesOut - start.messagesOut, messagesIn: messagesIn - start.messagesIn,
                     bytesOut: bytesOut - start.bytesOut, bytesIn: bytesIn - start.bytesIn,
                     unitsOut: unitsOut - start.unitsOut, unitsIn: unitsIn - start.unitsIn, unit: unit)
    }

    func json(prefix: String) -> [(String, JSON)] {
        [
            (prefix + "messages_out", .int(Int64(Int(messagesOut)))), (prefix + "messages_in", .int(Int64(Int(messagesIn)))),
            (prefix + "\(unit)_out", .int(Int64(Int(unitsOut)))), (prefix + "\(unit)_in", .int(Int64(Int(unitsIn)))),
            (prefix + "bytes_out", .int(Int64(Int(bytesOut)))), (prefix + "bytes_in", .int(Int64(Int(bytesIn)))),
        ]
    }
}

extension BenchNode {
    /// The BLE link's MTUs and SDU limit (suite 7), for the result line.
    var linkMTUFields: [(String, JSON)] {
        guard let link = ble?.links.first(where: \.outgoing) else { return [] }
        return [("send_mtu", .int(Int64(link.sendMTU))), ("receive_mtu", .int(Int64(link.receiveMTU))), ("sdu_limit", .int(Int64(link.sduLimit)))]
    }
}

/// Pulls integers out of the sink's one-line JSON replies.
enum JSONScan {
    static func int(_ key: String, in json: String) -> Int? {
        guard let range = json.firstRange(of: "\"\(key)\":") else { return nil }
        var digits = ""
        for c in json[range.upperBound...] {
            if c.isNumber || c == "-" { digits.append(c) } else if !digits.isEmpty || c != " " { break }
        }
        return Int(digits)
    }
}
