// BLERigDriver: drives ockam-edge nodes (Node + BLE transport + default services) for the hardware rigs.
//
//   ble-rig-driver gateway <listen-spec> [--ready-file PATH]
//       Listens (e.g. `hci0,psm=0x81,mtu=672`), serves echo/uppercase, prints link events, runs until killed.
//   ble-rig-driver sensor <connect-spec> [--timeout SECONDS] STEP…
//       Keeps a link to the gateway up (reconnecting) and runs the steps in order; prints `PASS`/`FAIL` per step
//       and exits 0 only if every step passed. Steps:
//         up                      wait for a link (first connect or reconnect)
//         expect-mtu=N            the link's MTUs are N both ways (our BT_RCVMTU and the peer's BT_SNDMTU)
//         expect-rx-mtu=N         our receive MTU is N (real boards, where the gateway's MTU is its own)
//         echo=S1,S2,…            send random payloads of these sizes to 4#gateway => echo; replies byte-exact
//         uppercase=TEXT          4#gateway => uppercase returns TEXT upper-cased
//         down                    wait for the link to go down (after the rig cut it)
//         mark=PATH               create PATH (tells the rig script a phase is done)
//         await=PATH              wait until PATH exists (the rig script did its part)
//         counters                print the transport counters
//       The gateway's address is the connect spec's device; routes use its `4#…` hop, so the resolver's link
//       reuse is exercised too.
import EdgeNode
import EdgeRouting
import EdgeTransportBLE
import EdgeWire
import Logging
import Synchronization

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
            default: usage()
            }
        } catch {
            say("ERROR \(error)")
            exit(2)
        }
    }

    static func usage() -> Never {
        say("usage: ble-rig-driver gateway <listen-spec> [--ready-file PATH] | sensor <connect-spec> [--timeout S] STEP…")
        exit(2)
    }

    static func gateway(spec: String, arguments: [String]) async throws {
        let config = try BLEListenConfiguration(parsing: spec)
        let node = Node(logger: Logger(label: "gateway"))
        try node.startDefaultServices()
        let transport = BLETransport(node: node)
        let events = transport.events()
        Task {
            for await event in events { say("EVENT \(event)") }
        }
        let psm = try await transport.listen(config)
        say("LISTENING \(config) psm=\(psm)")
        if let i = arguments.firstIndex(of: "--ready-file"), i + 1 < arguments.count {
            let fd = open(arguments[i + 1], O_CREAT | O_WRONLY | O_TRUNC, 0o644)
            if fd >= 0 { close(fd) }
        }
        while true { try await Task.sleep(for: .seconds(3600)) }
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
                                           cursor: &cursor, timeout: timeout)
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
        timeout: Duration
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
            let seconds = BLEBackoffSeconds.of(ContinuousClock.now - started)
            return "\(total) bytes checked, \(Int(Double(total) / 1024 / max(seconds, 0.001))) KiB/s"
        case "uppercase":
            let reply = try await node.request(
                to: [gateway, UppercaseService.defaultAddress], payload: BARE.encodeString(value), timeout: timeout)
            let text = try BARE.decodeString(reply.payload, limit: 1 << 16)
            guard text == value.uppercased() else { throw StepError("got \"\(text)\"") }
            return text
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

enum BLEBackoffSeconds {
    static func of(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
}

/// Events seen so far; steps wait for the first matching event after their cursor (polled: a rig driver).
final class EventLog: Sendable {
    private let events = Mutex<[BLELinkEvent]>([])

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
