// BLERigDriver: drives ockam-edge nodes (Node + BLE transport + default services) for the hardware rigs.
//
//   ble-rig-driver gateway <listen-spec> [--ready-file PATH] [--watch TEXT]… [--require BDADDR=LEVEL]…
//       Listens (e.g. `hci0,psm=0x81,mtu=672`), serves echo/uppercase, prints link events, runs until killed.
//       --require makes links from BDADDR need at least LEVEL (low/medium/high/fips), as a paired device's record
//       does in the agent: an accepted link below it is closed and counted (`links_refused_security`).
//       It also has a TCP transport, so it forwards device messages to `1#host:port` hops (to a cloud node).
//       With --watch, every message the gateway handles (delivered to its services or forwarded to a link) is
//       searched for TEXT, and `SEEN TEXT …` is printed when it appears in clear.
//   ble-rig-driver cloud <host:port> [--ready-file PATH]
//       A TCP node with echo and a secure-channel listener `api` (fresh identity). The ready file gets
//       `<host:port> <identifier>` once it listens.
//   ble-rig-driver sensor <connect-spec> [--timeout SECONDS] STEP…
//       Keeps a link to the gateway up (reconnecting) and runs the steps in order; prints `PASS`/`FAIL` per step
//       and exits 0 only if every step passed. Steps:
//         up                      wait for a link (first connect or reconnect)
//         expect-mtu=N            the link's MTUs are N both ways (our BT_RCVMTU and the peer's BT_SNDMTU)
//         expect-rx-mtu=N         our receive MTU is N (real boards, where the gateway's MTU is its own)
//         expect-security=LEVEL   the link's LE security (BT_SECURITY of the connected socket) is at least LEVEL
//         echo=S1,S2,…            send random payloads of these sizes to 4#gateway => echo; replies byte-exact
//         uppercase=TEXT          4#gateway => uppercase returns TEXT upper-cased
//         down                    wait for the link to go down (after the rig cut it)
//         mark=PATH               create PATH (tells the rig script a phase is done)
//         await=PATH              wait until PATH exists (the rig script did its part)
//         tcp-echo=HOST:PORT,TEXT plain echo of TEXT at the cloud node behind the gateway: 4#gateway => 1#HOST:PORT
//                                 => echo (the gateway sees TEXT in clear: a positive control for --watch)
//         secure-channel=HOST:PORT[,ID]  open a secure channel to the cloud's `api` listener through the gateway
//                                 (4#gateway => 1#HOST:PORT => api); the peer must prove identifier ID
//         secure-echo=TEXT:S1,S2,… through that channel to the cloud's echo: payloads of these sizes that start
//                                 with TEXT, then random bytes; replies byte-exact
//         counters                print the transport counters
//       The gateway's address is the connect spec's device; routes use its `4#…` hop, so the resolver's link
//       reuse is exercised too.
import EdgeIdentity
import EdgeNode
import EdgeRouting
import EdgeSecureChannel
import EdgeSync
import EdgeTransportBLE
import EdgeTransportTCP
import EdgeWire
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

@main
struct BLERigDriver {
    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = getenv("BLE_RIG_LOG").flatMap { Logger.Level(rawValue: String(cString: $0)) } ?? .info
            return handler
        }
        guard arguments.count >= 2 else { usage() }
        let mode = arguments.removeFirst()
        let spec = arguments.removeFirst()
        do {
            switch mode {
            case "gateway": try await gateway(spec: spec, arguments: arguments)
            case "sensor": exit(try await sensor(spec: spec, arguments: arguments) ? 0 : 1)
            case "cloud": try await cloud(listen: spec, arguments: arguments)
            default: usage()
            }
        } catch {
            say("ERROR \(error)")
            exit(2)
        }
    }

    static func usage() -> Never {
        say(
            "usage: ble-rig-driver gateway <listen-spec> [--ready-file PATH] [--watch TEXT]… [--require BDADDR=LEVEL]… | "
                + "sensor <connect-spec> [--timeout S] STEP… | cloud <host:port> [--ready-file PATH]")
        exit(2)
    }

    static func values(of option: String, in arguments: [String]) -> [String] {
        arguments.indices.filter { arguments[$0] == option && $0 + 1 < arguments.count }.map { arguments[$0 + 1] }
    }

    static func writeReadyFile(_ arguments: [String], contents: String = "") {
        guard let path = values(of: "--ready-file", in: arguments).first else { return }
        let tmp = path + ".tmp"
        let fd = open(tmp, O_CREAT | O_WRONLY | O_TRUNC, 0o644)
        guard fd >= 0 else { return }
        let bytes = Array(contents.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        rename(tmp, path)
    }

    static func gateway(spec: String, arguments: [String]) async throws {
        let config = try BLEListenConfiguration(parsing: spec)
        let watched = values(of: "--watch", in: arguments).map { Array($0.utf8) }.filter { !$0.isEmpty }
        var observer: (@Sendable (LocalMessage) -> Void)?
        if !watched.isEmpty {
            observer = { @Sendable (message: LocalMessage) -> Void in
                for text in watched where message.payload.contains(subsequence: text) {
                    say("SEEN \(String(decoding: text, as: UTF8.self)) in a message to \(message.onwardRoute)")
                }
            }
        }
        // Device messages may be forwarded to this VM's own TCP nodes (the cases' clouds listen on 127.0.0.1).
        let uplinks = TCPForwardAllowList([try TCPForwardRule(parsing: "127.0.0.0/8:*")])
        let node = Node(
            logger: Logger(label: "gateway"), options: Node.Options(forwarding: .tcp(uplinks), observer: observer))
        try node.startDefaultServices()
        let transport = BLETransport(node: node)
        for requirement in values(of: "--require", in: arguments) {
            let parts = requirement.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let level = BLESecurityLevel(rawValue: parts[1]) else { usage() }
            let device = try BluetoothDeviceAddress(parsing: parts[0])
            transport.requireSecurity(level, of: device)
            say("REQUIRE \(device) security \(level)")
        }
        _ = TCPTransport(node: node)  // registers itself: device messages to allowed `1#host:port` hops are forwarded
        let events = transport.events()
        Task {
            for await event in events { say("EVENT \(event)") }
        }
        let psm = try await transport.listen(config)
        say("LISTENING \(config) psm=\(psm)")
        writeReadyFile(arguments)
        while true { try await Task.sleep(for: .seconds(3600)) }
    }

    static func cloud(listen: String, arguments: [String]) async throws {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            usage()
        }
        let host = String(listen[..<colon])
        let node = Node(logger: Logger(label: "cloud"))
        try node.startDefaultServices()
        let tcp = TCPTransport(node: node)
        let channels = SecureChannels(node: node, local: try SecureChannelCredentials.ephemeral())
        try channels.startListener(name: "api")
        let bound = try await tcp.listen(host: host, port: port)
        let address = "\(host):\(bound.port ?? port)"
        let identifier = channels.local.identity.identifier
        say("LISTENING \(address) identifier=\(identifier)")
        writeReadyFile(arguments, contents: "\(address) \(identifier)\n")
        var reported = Set<Address>()
        while true {  // report channels as they are established (the rig reads this log)
            for channel in channels.channels where !reported.contains(channel.encryptor) {
                reported.insert(channel.encryptor)
                say("CHANNEL \(channel.role.rawValue) peer=\(channel.peer) suite=\(channel.suite)")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    static func sensor(spec: String, arguments: [String]) async throws -> Bool {
        var steps = arguments
        var timeout = Duration.seconds(60)
        if let i = steps.firstIndex(of: "--timeout"), i + 1 < steps.count, let s = Int(steps[i + 1]) {
            timeout = .seconds(s)
            steps.removeSubrange(i...(i + 1))
        }
        let config = try BLEConnectConfiguration(parsing: spec)
        let node = Node(logger: Logger(label: "sensor"))
        try node.startDefaultServices()
        let transport = BLETransport(node: node)
        let secure = SecureContext(channels: SecureChannels(node: node, local: try SecureChannelCredentials.ephemeral()))
        say("IDENTITY \(secure.channels.local.identity.identifier)")
        let log = EventLog()
        let events = transport.events()
        Task {
            for await event in events {
                say("EVENT \(event)")
                log.append(event)
            }
        }
        transport.maintain(config)
        let gateway = config.peer.address
        var failed = 0
        var cursor = 0
        for step in steps {
            let started = ContinuousClock.now
            do {
                let detail = try await run(step, transport: transport, node: node, gateway: gateway, log: log,
                                           cursor: &cursor, timeout: timeout, secure: secure)
                say("PASS \(step)\(detail.isEmpty ? "" : " (\(detail))") [\(ContinuousClock.now - started)]")
            } catch {
                failed += 1
                say("FAIL \(step): \(error) [\(ContinuousClock.now - started)]")
            }
        }
        await transport.shutdown()
        return failed == 0
    }

    struct StepError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    static func run(
        _ step: String, transport: BLETransport, node: Node, gateway: Address, log: EventLog, cursor: inout Int,
        timeout: Duration, secure: SecureContext
    ) async throws -> String {
        let parts = step.split(separator: "=", maxSplits: 1).map(String.init)
        let value = parts.count == 2 ? parts[1] : ""
        switch parts[0] {
        case "up":
            let (event, next) = try await log.wait(after: cursor, timeout: timeout) {
                if case .linkUp = $0 { return true } else { return false }
            }
            cursor = next
            return "\(event)"
        case "down":
            let (event, next) = try await log.wait(after: cursor, timeout: timeout) {
                if case .linkDown = $0 { return true } else { return false }
            }
            cursor = next
            return "\(event)"
        case "expect-mtu":
            guard let mtu = Int(value) else { throw StepError("bad MTU \(value)") }
            guard let link = transport.links.first(where: \.outgoing) else { throw StepError("no link") }
            guard link.sendMTU == mtu && link.receiveMTU == mtu else {
                throw StepError("link MTUs are \(link.sendMTU)/\(link.receiveMTU), expected \(mtu)/\(mtu)")
            }
            return "send=\(link.sendMTU) receive=\(link.receiveMTU) sdu=\(link.sduLimit)"
        case "expect-security":
            // The outgoing link's LE security as the kernel reports it (medium and above: paired and encrypted).
            guard let wanted = BLESecurityLevel(rawValue: value) else { throw StepError("bad security level \(value)") }
            guard let link = transport.links.first(where: \.outgoing) else { throw StepError("no link") }
            guard let level = link.security, level >= wanted else {
                throw StepError("link security is \(link.security.map { "\($0)" } ?? "unknown"), expected at least \(wanted)")
            }
            return "security=\(level)"
        case "expect-rx-mtu":
            guard let mtu = Int(value) else { throw StepError("bad MTU \(value)") }
            guard let link = transport.links.first(where: \.outgoing) else { throw StepError("no link") }
            guard link.receiveMTU == mtu else { throw StepError("our receive MTU is \(link.receiveMTU), expected \(mtu)") }
            return "send=\(link.sendMTU) receive=\(link.receiveMTU) sdu=\(link.sduLimit)"
        case "echo":
            var generator = SystemRandomNumberGenerator()
            var total = 0
            let started = ContinuousClock.now
            for sizeText in value.split(separator: ",") {
                guard let size = Int(sizeText) else { throw StepError("bad size \(sizeText)") }
                let payload = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
                let reply = try await node.request(
                    to: [gateway, EchoService.defaultAddress], payload: payload, timeout: timeout)
                guard reply.payload == payload else {
                    let at = (0..<min(reply.payload.count, size)).first { reply.payload[$0] != payload[$0] } ?? min(reply.payload.count, size)
                    throw StepError("echo of \(size) bytes came back as \(reply.payload.count) bytes, first difference at \(at)")
                }
                total += 2 * size
            }
            let seconds = BackoffSeconds.of(ContinuousClock.now - started)
            return "\(total) bytes checked, \(Int(Double(total) / 1024 / max(seconds, 0.001))) KiB/s"
        case "uppercase":
            let reply = try await node.request(
                to: [gateway, UppercaseService.defaultAddress], payload: BARE.encodeString(value), timeout: timeout)
            let text = try BARE.decodeString(reply.payload, limit: 1 << 16)
            guard text == value.uppercased() else { throw StepError("got \"\(text)\"") }
            return text
        case "tcp-echo":
            let fields = value.split(separator: ",", maxSplits: 1).map(String.init)
            guard fields.count == 2 else { throw StepError("expected HOST:PORT,TEXT") }
            let payload = Array(fields[1].utf8)
            let reply = try await node.request(
                to: [gateway, .tcp(fields[0]), EchoService.defaultAddress], payload: payload, timeout: timeout)
            guard reply.payload == payload else { throw StepError("echo came back as \(reply.payload.count) other bytes") }
            return "\(payload.count) bytes via the gateway to \(fields[0])"
        case "secure-channel":
            let fields = value.split(separator: ",").map(String.init)
            guard fields.count == 1 || fields.count == 2 else { throw StepError("expected HOST:PORT[,ID]") }
            let started = ContinuousClock.now
            let info = try await secure.channels.createChannel(
                to: [gateway, .tcp(fields[0]), .local("api")],
                options: SecureChannelOptions(handshakeTimeout: timeout))
            let took = ContinuousClock.now - started
            if fields.count == 2 && "\(info.peer)" != fields[1] {
                throw StepError("the channel's peer is \(info.peer), expected \(fields[1])")
            }
            secure.encryptor.withLock { $0 = info.encryptor }
            return "peer \(info.peer) suite \(info.suite) handshake \(took)"
        case "secure-echo":
            guard let encryptor = secure.encryptor.withLock({ $0 }) else { throw StepError("no secure channel yet") }
            guard let colon = value.lastIndex(of: ":") else { throw StepError("expected TEXT:S1,S2,…") }
            let prefix = Array(value[..<colon].utf8)
            var generator = SystemRandomNumberGenerator()
            var total = 0
            let started = ContinuousClock.now
            for sizeText in value[value.index(after: colon)...].split(separator: ",") {
                guard let size = Int(sizeText), size >= prefix.count else { throw StepError("bad size \(sizeText)") }
                let payload = prefix + (prefix.count..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
                let reply = try await node.request(
                    to: [encryptor, EchoService.defaultAddress], payload: payload, timeout: timeout)
                guard reply.payload == payload else {
                    throw StepError("secure echo of \(size) bytes came back as \(reply.payload.count) other bytes")
                }
                total += 2 * size
            }
            let seconds = BackoffSeconds.of(ContinuousClock.now - started)
            return "\(total) bytes checked end to end, \(Int(Double(total) / 1024 / max(seconds, 0.001))) KiB/s"
        case "mark":
            let fd = open(value, O_CREAT | O_WRONLY | O_TRUNC, 0o644)
            guard fd >= 0 else { throw StepError("cannot create \(value)") }
            close(fd)
            return ""
        case "await":
            let deadline = ContinuousClock.now + timeout
            while access(value, F_OK) != 0 {
                guard ContinuousClock.now < deadline else { throw StepError("\(value) did not appear") }
                try await Task.sleep(for: .milliseconds(50))
            }
            return ""
        case "counters":
            let c = transport.counters
            return "sdus in/out \(c.sdusIn)/\(c.sdusOut) bytes \(c.bytesIn)/\(c.bytesOut) messages \(c.messagesIn)/\(c.messagesOut) "
                + "ups/downs \(c.linkUps)/\(c.linkDowns) reconnects \(c.reconnectAttempts) connect-failures \(c.connectFailures) "
                + "drops \(c.drops.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ","))"
        default:
            throw StepError("unknown step")
        }
    }
}

/// The sensor's secure channels and the channel the `secure-channel` step opened.
final class SecureContext: Sendable {
    let channels: SecureChannels
    let encryptor = EdgeMutex<Address?>(nil)
    init(channels: SecureChannels) { self.channels = channels }
}

extension Array where Element == UInt8 {
    func contains(subsequence needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return needle.isEmpty }
        return (0...(count - needle.count)).contains { i in self[i..<(i + needle.count)].elementsEqual(needle) }
    }
}

/// One unbuffered line on stdout (the rig reads the logs of processes it kills).
func say(_ text: String) {
    let line = Array((text + "\n").utf8)
    var offset = 0
    while offset < line.count {
        let n = line[offset...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        if n <= 0 { return }
        offset += n
    }
}

enum BackoffSeconds {
    static func of(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
}

/// Events seen so far; steps wait for the first matching event after their cursor (polled: a rig driver).
final class EventLog: Sendable {
    private let events = EdgeMutex<[BLELinkEvent]>([])

    func append(_ event: BLELinkEvent) { events.withLock { $0.append(event) } }

    func wait(
        after cursor: Int, timeout: Duration, _ matches: (BLELinkEvent) -> Bool
    ) async throws -> (BLELinkEvent, Int) {
        let deadline = ContinuousClock.now + timeout
        while true {
            let snapshot = events.withLock { $0 }
            if cursor < snapshot.count, let i = snapshot[cursor...].firstIndex(where: matches) {
                return (snapshot[i], i + 1)
            }
            guard ContinuousClock.now < deadline else {
                throw BLERigDriver.StepError("no matching event within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
