// The ingest service: receives bridge envelopes, stores each new one once through a sink (JSON lines by default),
// acknowledges each once its sink has stored it.
import EdgeIdentity
import EdgeNode
import EdgeRouting
import EdgeSecureChannel
import EdgeSync
import EdgeWire
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// One reading as the ingest service hands it to a sink: the envelope and who sent it.
public struct IngestReading: Hashable, Sendable {
    /// The sending gateway's identifier (`I…`, authenticated by its secure channel), or `-` if it came out of none.
    public var gateway: String
    public var envelope: BridgeEnvelope

    public init(gateway: String, envelope: BridgeEnvelope) {
        self.gateway = gateway
        self.envelope = envelope
    }
}

/// What a sink did with a reading.
public enum IngestOutcome: Hashable, Sendable {
    case stored
    /// The sink already held it (its own durable de-duplication): acknowledged, counted as a duplicate.
    case alreadyStored
}

/// Where the ingest service stores what it accepted. The service calls one sink for one reading at a time, in the
/// order its mailbox delivers them, and acknowledges a reading to the gateway only after `store` returned.
public protocol IngestSink: Sendable {
    /// Stores `reading`, returning once it is stored as durably as the sink promises. Throwing leaves the reading
    /// unacknowledged: the gateway keeps it and sends it again.
    func store(_ reading: IngestReading) async throws -> IngestOutcome
    /// What the sink reports about itself in `status` and the metrics; nil for a sink with nothing to say.
    var health: IngestSinkHealth? { get }
}

extension IngestSink {
    public var health: IngestSinkHealth? { nil }
}

/// A sink's state for operators: whether it reaches its store, how fast it stores, and how far each gateway bridge got.
public struct IngestSinkHealth: Sendable, Equatable {
    /// The last reading stored (or found already stored) for one gateway bridge.
    public struct Stored: Sendable, Equatable {
        public var gateway: String
        public var bridge: String
        public var epoch: String?
        public var sequence: UInt64
        public init(gateway: String, bridge: String, epoch: String?, sequence: UInt64) {
            self.gateway = gateway
            self.bridge = bridge
            self.epoch = epoch
            self.sequence = sequence
        }
    }

    /// `jetstream`, …
    public var kind: String
    /// Connected to its store now (as far as the sink knows).
    public var connected: Bool
    /// Why the last store failed, if the last attempt did.
    public var lastError: String?
    /// Publishes acknowledged by the store.
    public var published: UInt64 = 0
    /// Publish-to-acknowledgement times of the most recent publishes.
    public var latency = LatencyWindow()
    /// By gateway bridge; sorted by gateway, then bridge.
    public var lastStored: [Stored] = []

    public init(kind: String, connected: Bool) {
        self.kind = kind
        self.connected = connected
    }
}

/// The most recent durations (up to ``capacity``) and their percentiles: a bounded view of latency, not a histogram.
public struct LatencyWindow: Sendable, Equatable {
    public static let capacity = 1024
    private var samples: [Duration] = []
    private var next = 0

    public init() {}

    public var count: Int { samples.count }

    public mutating func record(_ duration: Duration) {
        if samples.count < Self.capacity {
            samples.append(duration)
        } else {
            samples[next] = duration
            next = (next + 1) % Self.capacity
        }
    }

    /// The `fraction` quantile (0…1) of the window, by the nearest-rank method; nil when empty.
    public func quantile(_ fraction: Double) -> Duration? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }
}

/// Appends JSON lines (``IngestService/line(_:from:)``) to a file (created 0600) or to standard output (`-`), each
/// with one `write(2)`. It keeps no record of what it wrote: the ingest service's in-memory de-duplication is all
/// there is, so a reading redelivered after an ingest restart is written again (readers dedupe by gateway, bridge,
/// epoch and sequence).
public final class LineSink: IngestSink {
    private let fd: FileDescriptor
    private let owned: Bool
    private let sync: Bool
    private let lock = EdgeMutex(())

    /// - Parameter sync: `fsync` after every line (the acknowledgement then means "on disk").
    public init(path: String, sync: Bool = false) throws {
        if path == "-" {
            fd = .standardOutput
            owned = false
        } else {
            fd = try FileDescriptor.open(
                FilePath(path), .writeOnly, options: [.append, .create, .closeOnExec], permissions: [.ownerReadWrite])
            owned = true
        }
        self.sync = sync && path != "-"
    }

    deinit { if owned { try? fd.close() } }

    public func store(_ reading: IngestReading) async throws -> IngestOutcome {
        try write(IngestService.line(reading.envelope, from: reading.gateway))
        return .stored
    }

    public func write(_ line: String) throws {
        try lock.withLock { _ in
            _ = try fd.writeAll(Array((line + "\n").utf8))
            if sync && fsync(fd.rawValue) != 0 { throw Errno(rawValue: errno) }
        }
    }
}

/// Acknowledges envelopes and passes each new one to the sink once (per sender identity, bridge and queue epoch, for
/// the life of this process): a redelivered envelope (its acknowledgement was lost) is acknowledged again, not
/// stored again. A pipelined envelope (``BridgeEnvelope/after``) is stored only if the one sent before it was: one the
/// sink refused, or that never arrived, is never overtaken by those behind it (they are dropped unacknowledged, and
/// the gateway sends them all again from its oldest unacknowledged). Acknowledgements advertise ``window``. A sink with durable de-duplication (JetStream) also catches what this memory cannot: redeliveries
/// after a restart, or to another ingest node. Gaps in the sequence (messages the gateway had to drop, or numbers a
/// crashed gateway never used) are counted. A new epoch (the gateway's queue was wiped or replaced) starts afresh.
public final class IngestService: Worker {
    public struct Counters: Sendable, Equatable {
        public var accepted: UInt64 = 0
        public var duplicates: UInt64 = 0
        /// Sequence numbers skipped between two accepted ones: messages the gateway dropped because its queue was
        /// full, or numbers a gateway that crashed never used (its `dropped_oldest` counter tells which).
        public var skipped: UInt64 = 0
        public var malformed: UInt64 = 0
        public var sinkFailures: UInt64 = 0
        /// Pipelined envelopes dropped unacknowledged because the one sent before them was not stored.
        public var outOfOrder: UInt64 = 0
    }

    /// How many pipelined envelopes per gateway bridge this service takes in flight (a gateway uses the smaller of this
    /// and its own window). Their memory is bounded by the service's mailbox, which slows the channels when full.
    public let window: Int

    let sink: any IngestSink
    let logger: Logger
    private let state = EdgeMutex(State())
    /// A gateway decides how often its pipelined envelopes arrive out of order (or claim nonsense predecessors).
    private let outOfOrderLog = LogRateLimiter()

    struct State {
        var last: [String: UInt64] = [:]
        var counters = Counters()
    }

    public init(sink: any IngestSink, logger: Logger, window: Int = 1024) {
        self.sink = sink
        self.logger = logger
        self.window = max(1, window)
    }

    public var counters: Counters { state.withLock { $0.counters } }
    public var sinkHealth: IngestSinkHealth? { sink.health }

    public func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        let envelope: BridgeEnvelope
        do {
            envelope = try BridgeEnvelope(decoding: message.payload)
        } catch {
            state.withLock { $0.counters.malformed += 1 }
            logger.warning("ingest: dropping a message from \(message.returnRoute): \(error)")
            return
        }
        let sender = SecureChannelLocalInfo.identifier(of: message)?.description ?? "-"
        // The bridge name is the sender's text: length-prefixed, so no name can make two keys collide.
        let epoch = QueueEpoch.text(envelope.epoch) ?? "-"
        let key = "\(sender)/\(envelope.bridge.utf8.count):\(envelope.bridge)/\(epoch)"
        let label = "\(sender)/\(envelope.bridge) (epoch \(epoch))"  // for the log
        let last = state.withLock { $0.last[key] }
        if let after = envelope.after {
            guard after < envelope.sequence else {
                state.withLock { $0.counters.malformed += 1 }
                outOfOrderLog.log(
                    "ingest: dropping message \(envelope.sequence) from \(label): it claims to follow \(after)", to: logger)
                return
            }
            if last.map({ $0 < after }) ?? true {
                // The envelope sent before this one was not stored (the sink refused it, or it was lost): storing this
                // one would put it first. The gateway sends again from its oldest unacknowledged.
                state.withLock { $0.counters.outOfOrder += 1 }
                outOfOrderLog.log(
                    "ingest: \(label): dropped message \(envelope.sequence) unacknowledged: it follows \(after), which is not stored (last stored \(last.map { "\($0)" } ?? "none"))",
                    to: logger)
                return
            }
        }
        if let last, envelope.sequence <= last {
            state.withLock { $0.counters.duplicates += 1 }
        } else {
            if let last, envelope.sequence > last + 1 {
                let gap = envelope.sequence - last - 1
                state.withLock {
                    // Sequence numbers are the sender's: gaps of several bridges may add up past UInt64.max.
                    let (sum, overflow) = $0.counters.skipped.addingReportingOverflow(gap)
                    $0.counters.skipped = overflow ? .max : sum
                }
                logger.notice(
                    "ingest: \(label) skipped \(gap) sequence number(s) before \(envelope.sequence): dropped at the gateway (queue full) or unused after a gateway crash")
            }
            let outcome: IngestOutcome
            do {
                outcome = try await sink.store(IngestReading(gateway: sender, envelope: envelope))
            } catch {
                state.withLock { $0.counters.sinkFailures += 1 }
                logger.error("ingest: cannot store message \(envelope.sequence) from \(label): \(error); not acknowledged")
                // Say so at once: the gateway sends it again (to another ingest node, when it has several) instead of
                // waiting out its acknowledgement timeout.
                try? await context.reply(
                    to: message.returnRoute, payload: BridgeRefusal(sequence: envelope.sequence).encoded())
                return
            }
            state.withLock {
                $0.last[key] = envelope.sequence
                switch outcome {
                case .stored: $0.counters.accepted += 1
                case .alreadyStored: $0.counters.duplicates += 1
                }
            }
        }
        // Shared by every gateway: a gateway whose channel does not take the ack loses it (counted) and resends the
        // envelope, which is then acknowledged as a duplicate; the other gateways are not held up.
        try await context.reply(
            to: message.returnRoute, payload: BridgeAck(sequence: envelope.sequence, window: UInt64(window)).encoded())
    }

    /// `{"from":…,"bridge":…,"device":…,"sequence":…,"received_at_ms":…,"epoch":…,"text":…,"hex":…}` — `epoch` (hex)
    /// only when the envelope has one, `text` only when the payload is UTF-8 (or a BARE string, as `ockam-edge
    /// message send` sends), `hex` always.
    static func line(_ envelope: BridgeEnvelope, from sender: String) -> String {
        let payload = envelope.record.payload
        var text: String?
        if let decoded = try? BARE.decodeString(payload) {
            text = decoded
        } else if let utf8 = String(validating: payload, as: UTF8.self) {
            text = utf8
        }
        var fields: [(String, JSON)] = [
            ("from", .string(sender)), ("bridge", .string(envelope.bridge)), ("device", .string(envelope.record.device)),
            ("sequence", .uint(envelope.sequence)), ("received_at_ms", .uint(envelope.record.receivedAt)),
        ]
        if let epoch = QueueEpoch.text(envelope.epoch) { fields.append(("epoch", .string(epoch))) }
        if let text { fields.append(("text", .string(text))) }
        fields.append(("hex", .string(Hex.encode(payload))))
        return JSON.object(fields).serialized(pretty: false)
    }
}
