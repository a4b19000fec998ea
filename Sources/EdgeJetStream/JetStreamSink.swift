// The JetStream sink's settings (always built) and the sink over libnats (only with trait JetStream).
import EdgeBridge
import Logging

/// Where and how the JetStream sink publishes (from an `ingest[].sink` section, docs/configuration.md).
public struct JetStreamSettings: Sendable, Equatable {
    /// How the sink authenticates to NATS. The secrets are read from files by the caller, never from the command line.
    public enum Credentials: Sendable, Equatable {
        case none
        case userPassword(user: String, password: String)
        case token(String)
        /// A NATS `.creds` file (user JWT and nkey seed): libnats reads it, at every (re)connect.
        case credsFile(String)
    }

    /// `nats://host:port` or `tls://host:port` URLs.
    public var servers: [String]
    public var stream: String
    public var subjectPrefix: String
    /// Replicas of the stream when the sink creates it (an existing stream is used as it is).
    public var replicas: Int
    public var credentials: Credentials
    /// CA certificates (PEM) to verify the servers with; setting it requires TLS.
    public var tlsCAFile: String?
    /// How long to wait for a publish acknowledgement or a stream lookup.
    public var timeout: Duration
    /// Limits of a stream the sink creates: age and size (nil: none) and the `Nats-Msg-Id` duplicate window.
    public var maxAge: Duration?
    public var maxBytes: Int?
    public var duplicateWindow: Duration

    public init(
        servers: [String], stream: String, subjectPrefix: String, replicas: Int = 1, credentials: Credentials = .none,
        tlsCAFile: String? = nil, timeout: Duration = .seconds(5), maxAge: Duration? = nil, maxBytes: Int? = nil,
        duplicateWindow: Duration = .seconds(120)
    ) {
        self.maxAge = maxAge
        self.maxBytes = maxBytes
        self.duplicateWindow = duplicateWindow
        self.servers = servers
        self.stream = stream
        self.subjectPrefix = subjectPrefix
        self.replicas = replicas
        self.credentials = credentials
        self.tlsCAFile = tlsCAFile
        self.timeout = timeout
    }
}

/// A failure of the JetStream sink: libnats' status and, for JetStream API errors, its error code.
public struct JetStreamError: Error, Sendable, CustomStringConvertible {
    public let operation: String
    public let status: Int32
    public let errorCode: UInt32
    public let text: String

    public var description: String {
        var details: [String] = []
        if status != 0 { details.append("libnats status \(status)") }
        if errorCode != 0 { details.append("JetStream error \(errorCode)") }
        return "\(operation): \(text)" + (details.isEmpty ? "" : " (\(details.joined(separator: ", ")))")
    }
}

#if JetStream
import CNATS
import Dispatch
import EdgeSync

#if canImport(Glibc)
import Glibc
#endif

/// Publishes each reading to `<prefix>.<gateway>.<bridge>` (``JetStreamNaming``) and reports it stored only after
/// JetStream's publish acknowledgement, which the stream gives once the message is stored on a quorum of replicas.
///
/// Exactly once, in order, per gateway bridge, whatever the retries: the sink knows the last reading stored on each
/// subject (its `Ockam-Epoch` and `Ockam-Sequence` headers and its stream sequence, read with `js_GetLastMsg` the first
/// time and kept up to date by its own acknowledgements) and
/// - acknowledges without publishing a reading of the same epoch at or below the stored sequence;
/// - publishes anything else expecting that stream sequence as the subject's last (`ExpectLastSubjectSeq`, or the
///   header with 0 for an empty subject), so if another ingest node stored something on the subject meanwhile the
///   publish is refused, the sink reads the subject's last message again and decides again;
/// - sets `Nats-Msg-Id` (gateway, bridge, epoch, sequence), so a retry of its own publish within the stream's
///   duplicate window is acknowledged as a duplicate, not stored twice.
///
/// libnats calls block (network round trips): they all run on the sink's own dispatch queue, one at a time, never
/// on an event loop thread or the caller's task.
public final class JetStreamSink: IngestSink, @unchecked Sendable {
    // @unchecked: everything below `queue` is touched only on `queue`.
    public let settings: JetStreamSettings
    let logger: Logger
    private let queue = DispatchQueue(label: "ockam-edge.jetstream")
    private var connection: OpaquePointer?
    private var context: OpaquePointer?
    private var streamReady = false
    private var last: [String: Last] = [:]  // by subject
    /// What ``health`` reports: written on `queue`, read from anywhere.
    private let report = EdgeMutex(Report())

    struct Report {
        var connected = false
        var lastError: String?
        var published: UInt64 = 0
        var latency = LatencyWindow()
        var stored: [String: IngestSinkHealth.Stored] = [:]  // by subject
    }

    /// The last reading stored on a subject.
    struct Last {
        /// Its stream sequence; 0 for an empty subject.
        var streamSequence: UInt64
        var epoch: String?
        /// Nil when the last message is not a reading (no `Ockam-Sequence` header).
        var sequence: UInt64?
    }

    /// Connects lazily: the first ``store(_:)`` (and the first after a failure) connects and makes sure the stream
    /// exists, so an ingest node starts while NATS is down and its gateways keep their readings until it is back.
    public init(settings: JetStreamSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    deinit {
        if let context { jsCtx_Destroy(context) }
        if let connection {
            natsConnection_Close(connection)
            natsConnection_Destroy(connection)
        }
    }

    /// Closes the connection; a later ``store(_:)`` connects again.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                self.disconnect()
                continuation.resume()
            }
        }
    }

    public func store(_ reading: IngestReading) async throws -> IngestOutcome {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                let subject = JetStreamNaming.subject(
                    prefix: self.settings.subjectPrefix, gateway: reading.gateway, bridge: reading.envelope.bridge)
                let result = Result { try self.storeOnQueue(reading, subject: subject) }
                let connected = self.connection.map { natsConnection_Status($0) == NATS_CONN_STATUS_CONNECTED } ?? false
                self.report.withLock { report in
                    report.connected = connected
                    switch result {
                    case .success:
                        report.lastError = nil
                        let stored = IngestSinkHealth.Stored(
                            gateway: reading.gateway, bridge: reading.envelope.bridge,
                            epoch: QueueEpoch.text(reading.envelope.epoch), sequence: reading.envelope.sequence)
                        // A repeat of an older reading does not move the mark back.
                        if let known = report.stored[subject], known.epoch == stored.epoch, known.sequence >= stored.sequence {
                            break
                        }
                        report.stored[subject] = stored
                    case .failure(let error):
                        report.lastError = "\(error)"
                    }
                }
                continuation.resume(with: result)
            }
        }
    }

    public var health: IngestSinkHealth? {
        report.withLock { report in
            var health = IngestSinkHealth(kind: "jetstream", connected: report.connected)
            health.lastError = report.lastError
            health.published = report.published
            health.latency = report.latency
            health.lastStored = report.stored.values.sorted { ($0.gateway, $0.bridge) < ($1.gateway, $1.bridge) }
            return health
        }
    }

    // MARK: On the queue

    private func storeOnQueue(_ reading: IngestReading, subject: String) throws -> IngestOutcome {
        let context = try ready()
        let epoch = QueueEpoch.text(reading.envelope.epoch)
        // Each refusal means another publisher stored something on the subject since it was read: bounded retries.
        for _ in 0..<8 {
            let stored = try last[subject] ?? lastMessage(context, subject)
            last[subject] = stored
            if stored.epoch == epoch, let sequence = stored.sequence, reading.envelope.sequence <= sequence {
                return .alreadyStored
            }
            let published: Published
            do {
                let started = ContinuousClock.now
                published = try publish(context, reading, subject: subject, expecting: stored.streamSequence)
                let took = ContinuousClock.now - started
                if case .stored = published {
                    report.withLock {
                        $0.published += 1
                        $0.latency.record(took)
                    }
                }
            } catch {
                last[subject] = nil  // a publish that timed out may still have been stored: read the subject again
                throw error
            }
            switch published {
            case .stored(let streamSequence):
                last[subject] = Last(streamSequence: streamSequence, epoch: epoch, sequence: reading.envelope.sequence)
                return .stored
            case .duplicate:
                last[subject] = nil  // stored earlier: whatever came after it is read again next time
                return .alreadyStored
            case .wrongLastSequence:
                logger.debug("jetstream: \(subject) changed under us; reading its last message again")
                last[subject] = nil
            }
        }
        throw JetStreamError(
            operation: "publish to \(subject)", status: 0, errorCode: 0,
            text: "other publishers kept storing on the subject; not acknowledged, the gateway sends it again")
    }

    enum Published {
        case stored(streamSequence: UInt64)
        case duplicate
        case wrongLastSequence
    }

    private func publish(
        _ context: OpaquePointer, _ reading: IngestReading, subject: String, expecting streamSequence: UInt64
    ) throws -> Published {
        var message: OpaquePointer?
        let payload = reading.envelope.record.payload
        var status = payload.withUnsafeBytes { raw in
            natsMsg_Create(&message, subject, nil, raw.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(raw.count))
        }
        guard status == NATS_OK, let message else { throw failure("create a message", status) }
        defer { natsMsg_Destroy(message) }
        for (name, value) in JetStreamNaming.headers(reading) {
            status = natsMsgHeader_Set(message, name, value)
            guard status == NATS_OK else { throw failure("set header \(name)", status) }
        }
        var options = jsPubOptions()
        jsPubOptions_Init(&options)
        options.MaxWait = milliseconds(settings.timeout)
        if streamSequence > 0 {
            options.ExpectLastSubjectSeq = streamSequence
        } else {
            // libnats treats 0 as "no expectation"; the header with 0 means "the subject holds no message yet".
            status = natsMsgHeader_Set(message, JetStreamNaming.Header.expectedLastSubjectSequence, "0")
            guard status == NATS_OK else { throw failure("set the expected last subject sequence", status) }
        }
        var ack: UnsafeMutablePointer<jsPubAck>?
        var code = jsErrCode(rawValue: 0)
        status = js_PublishMsg(&ack, context, message, &options, &code)
        defer { if let ack { jsPubAck_Destroy(ack) } }
        if code == JSStreamWrongLastSequenceErr { return .wrongLastSequence }
        guard status == NATS_OK, let ack else {
            if status == NATS_TIMEOUT || status == NATS_CONNECTION_CLOSED || status == NATS_NO_RESPONDERS { streamReady = false }
            throw failure("publish to \(subject)", status, code)
        }
        return ack.pointee.Duplicate ? .duplicate : .stored(streamSequence: ack.pointee.Sequence)
    }

    /// The subject's last message as a ``Last``.
    private func lastMessage(_ context: OpaquePointer, _ subject: String) throws -> Last {
        var message: OpaquePointer?
        var code = jsErrCode(rawValue: 0)
        var options = jsOptions()
        jsOptions_Init(&options)
        options.Wait = milliseconds(settings.timeout)
        let status = js_GetLastMsg(&message, context, settings.stream, subject, &options, &code)
        if status == NATS_NOT_FOUND || code == JSNoMessageFoundErr {
            return Last(streamSequence: 0, epoch: nil, sequence: nil)
        }
        guard status == NATS_OK, let message else { throw failure("read the last message of \(subject)", status, code) }
        defer { natsMsg_Destroy(message) }
        func header(_ name: String) -> String? {
            var value: UnsafePointer<CChar>?
            guard natsMsgHeader_Get(message, name, &value) == NATS_OK, let value else { return nil }
            return String(cString: value)
        }
        return Last(
            streamSequence: natsMsg_GetSequence(message), epoch: header(JetStreamNaming.Header.epoch),
            sequence: header(JetStreamNaming.Header.sequence).flatMap { UInt64($0) })
    }

    /// The JetStream context, connecting and creating the stream first if needed.
    private func ready() throws -> OpaquePointer {
        if connection == nil { try connect() }
        guard let context else { throw JetStreamError(operation: "connect", status: 0, errorCode: 0, text: "no context") }
        if !streamReady {
            try ensureStream(context)
            streamReady = true
        }
        return context
    }

    private func connect() throws {
        var options: OpaquePointer?
        var status = natsOptions_Create(&options)
        guard status == NATS_OK, let options else { throw failure("create connection options", status) }
        defer { natsOptions_Destroy(options) }
        var servers = settings.servers.map { strdup($0) }
        defer { servers.forEach { free($0) } }
        status = servers.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) {
                natsOptions_SetServers(options, $0, Int32(buffer.count))
            }
        }
        guard status == NATS_OK else { throw failure("set servers", status) }
        switch settings.credentials {
        case .none: break
        case .userPassword(let user, let password): status = natsOptions_SetUserInfo(options, user, password)
        case .token(let token): status = natsOptions_SetToken(options, token)
        case .credsFile(let path): status = natsOptions_SetUserCredentialsFromFiles(options, path, nil)
        }
        guard status == NATS_OK else { throw failure("set credentials", status) }
        if let ca = settings.tlsCAFile {
            status = natsOptions_SetSecure(options, true)
            if status == NATS_OK { status = natsOptions_LoadCATrustedCertificates(options, ca) }
            guard status == NATS_OK else { throw failure("load the TLS CA file \(ca)", status) }
        }
        _ = natsOptions_SetName(options, "ockam-edge ingest")
        _ = natsOptions_SetTimeout(options, min(milliseconds(settings.timeout), 2000))
        _ = natsOptions_SetMaxReconnect(options, -1)  // once connected, reconnect for ever
        var connection: OpaquePointer?
        status = natsConnection_Connect(&connection, options)
        guard status == NATS_OK, let connection else {
            throw failure("connect to \(settings.servers.joined(separator: ", "))", status)
        }
        var jsOptions = jsOptions()
        jsOptions_Init(&jsOptions)
        jsOptions.Wait = milliseconds(settings.timeout)
        var context: OpaquePointer?
        status = natsConnection_JetStream(&context, connection, &jsOptions)
        guard status == NATS_OK, let context else {
            natsConnection_Destroy(connection)
            throw failure("open a JetStream context", status)
        }
        self.connection = connection
        self.context = context
        streamReady = false
        logger.info("jetstream: connected to \(settings.servers.joined(separator: ", "))")
    }

    private func disconnect() {
        if let context { jsCtx_Destroy(context) }
        if let connection {
            natsConnection_Close(connection)
            natsConnection_Destroy(connection)
        }
        context = nil
        connection = nil
        streamReady = false
        last = [:]
    }

    /// Uses the stream if it exists (as it is), else creates it: file storage, `<prefix>.>`, the configured replicas.
    private func ensureStream(_ context: OpaquePointer) throws {
        var info: UnsafeMutablePointer<jsStreamInfo>?
        var code = jsErrCode(rawValue: 0)
        var status = js_GetStreamInfo(&info, context, settings.stream, nil, &code)
        if status == NATS_OK, let info {
            jsStreamInfo_Destroy(info)
            return
        }
        guard status == NATS_NOT_FOUND || code == JSStreamNotFoundErr else {
            throw failure("look up stream \(settings.stream)", status, code)
        }
        var config = jsStreamConfig()
        jsStreamConfig_Init(&config)
        let name = strdup(settings.stream)
        let subject = strdup(JetStreamNaming.streamSubject(prefix: settings.subjectPrefix))
        defer {
            free(name)
            free(subject)
        }
        var subjects: [UnsafePointer<CChar>?] = [UnsafePointer(subject)]
        config.Name = UnsafePointer(name)
        config.Storage = js_FileStorage
        config.Replicas = Int64(settings.replicas)
        if let maxAge = settings.maxAge { config.MaxAge = nanoseconds(maxAge) }
        if let maxBytes = settings.maxBytes { config.MaxBytes = Int64(maxBytes) }
        config.Duplicates = nanoseconds(settings.duplicateWindow)
        code = jsErrCode(rawValue: 0)
        status = subjects.withUnsafeMutableBufferPointer { buffer in
            config.Subjects = buffer.baseAddress
            config.SubjectsLen = 1
            return js_AddStream(&info, context, &config, nil, &code)
        }
        if let info { jsStreamInfo_Destroy(info) }
        // Another ingest node may have created it first.
        guard status == NATS_OK || code == JSStreamNameExistErr else {
            throw failure("create stream \(settings.stream)", status, code)
        }
        logger.notice("jetstream: created stream \(settings.stream) (\(JetStreamNaming.streamSubject(prefix: settings.subjectPrefix)), \(settings.replicas) replica(s))")
    }

    /// libnats keeps its last error text per thread; every call here runs in one block on `queue`, so it is the
    /// failing call's. It can be empty (a JetStream API error sets only the code): then the status's own text.
    private func failure(_ operation: String, _ status: natsStatus, _ code: jsErrCode = jsErrCode(rawValue: 0)) -> JetStreamError {
        let last = nats_GetLastError(nil).map { String(cString: $0) } ?? ""
        let text = last.isEmpty ? String(cString: natsStatus_GetText(status)) : last
        return JetStreamError(operation: operation, status: Int32(bitPattern: status.rawValue), errorCode: code.rawValue, text: text)
    }

    private func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    private func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }
}
#endif
