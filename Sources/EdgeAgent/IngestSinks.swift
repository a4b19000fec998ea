// An ingest service's sink from its `sink:` settings: the JSON-lines file, or JetStream in builds with trait JetStream.
import EdgeBridge
import EdgeCLI
import EdgeConfig
import Logging
import SystemPackage

#if JetStream
import EdgeJetStream
#endif

#if canImport(Glibc)
import Glibc
#endif

enum IngestSinks {
    /// Whether this build has the JetStream sink (`swift build --traits JetStream`).
    static var jetStreamBuilt: Bool {
        #if JetStream
        true
        #else
        false
        #endif
    }

    /// NATS credentials as read from the files the configuration names.
    enum Credentials: Equatable {
        case none
        case userPassword(user: String, password: String)
        case token(String)
        case credsFile(String)
    }

    /// What decoding could not check: that the secret files are readable, private and well-formed, and that this
    /// build has the sink. `agent --check-config` runs it, and so does the start.
    static func validate(_ ingest: AgentConfig.Ingest, _ launch: AgentLaunch) throws {
        guard ingest.sink.type == "jetstream", let settings = ingest.sink.jetStream else { return }
        _ = try credentials(settings, launch)
        if let ca = settings.tlsCAFile { _ = try readSecret(ca, launch, what: "TLS CA file", contents: false, mayBeReadable: true) }
        guard jetStreamBuilt else {
            throw CommandFailure(
                "\(launch.origin(line: ingest.sink.line, key: "ingest[].sink.type")): jetstream needs an ockam-edge built "
                    + "with the JetStream trait (swift build --traits JetStream, or make build-jetstream); this build "
                    + "has only the file sink")
        }
    }

    /// The sink for `ingest`, and what it stores to (for the log).
    static func make(_ ingest: AgentConfig.Ingest, launch: AgentLaunch, logger: Logger) throws -> (any IngestSink, String) {
        try validate(ingest, launch)
        #if JetStream
        if ingest.sink.type == "jetstream", let settings = ingest.sink.jetStream {
            let credentials: JetStreamSettings.Credentials =
                switch try credentials(settings, launch) {
                case .none: .none
                case .userPassword(let user, let password): .userPassword(user: user, password: password)
                case .token(let token): .token(token)
                case .credsFile(let path): .credsFile(path)
                }
            let sink = JetStreamSink(
                settings: JetStreamSettings(
                    servers: settings.servers, stream: settings.stream, subjectPrefix: settings.subjectPrefix,
                    replicas: settings.replicas, credentials: credentials, tlsCAFile: settings.tlsCAFile?.path,
                    timeout: settings.timeout, maxAge: settings.maxAge, maxBytes: settings.maxBytes,
                    duplicateWindow: settings.duplicateWindow),
                logger: logger)
            return (sink, "JetStream stream \(settings.stream) at \(settings.servers.joined(separator: ", "))")
        }
        #endif
        return (try LineSink(path: ingest.output, sync: ingest.sync), ingest.output)
    }

    static func credentials(_ settings: AgentConfig.JetStreamSinkSettings, _ launch: AgentLaunch) throws -> Credentials {
        if let file = settings.userPasswordFile {
            let text = try readSecret(file, launch, what: "user/password file", contents: true)
            guard let colon = text.firstIndex(of: ":"), colon != text.startIndex, text.index(after: colon) != text.endIndex else {
                throw CommandFailure("\(launch.origin(line: file.line, key: file.key)): \(file.path) must hold one line user:password")
            }
            return .userPassword(user: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
        }
        if let file = settings.tokenFile { return .token(try readSecret(file, launch, what: "token file", contents: true)) }
        if let file = settings.credsFile {
            _ = try readSecret(file, launch, what: "creds file", contents: false)
            return .credsFile(file.path)
        }
        return .none
    }

    /// A secret file's first line (when `contents`), after the checks the vault makes of its key file: a regular file
    /// (not a symbolic link), owned by the running user or root, with no group or other access, at most 64 KiB.
    /// `mayBeReadable` (a CA certificate: public, but it decides whom the sink trusts) allows reading by others and
    /// still refuses writing by them.
    static func readSecret(
        _ file: AgentConfig.PathSetting, _ launch: AgentLaunch, what: String, contents: Bool, mayBeReadable: Bool = false
    ) throws -> String {
        let origin = launch.origin(line: file.line, key: file.key)
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(file.path), .readOnly, options: [.closeOnExec, .noFollow, .nonBlocking])
        } catch {
            throw CommandFailure("\(origin): cannot open the \(what) \(file.path): \(error)")
        }
        defer { try? fd.close() }
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0 else {
            throw CommandFailure("\(origin): cannot examine the \(what) \(file.path): \(Errno(rawValue: errno))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw CommandFailure("\(origin): the \(what) \(file.path) is not a regular file") }
        guard info.st_uid == geteuid() || info.st_uid == 0 else {
            throw CommandFailure(
                "\(origin): the \(what) \(file.path) is owned by uid \(info.st_uid), not by the running user (uid \(geteuid())) or root: chown it")
        }
        guard info.st_mode & (mayBeReadable ? 0o022 : 0o077) == 0 else {
            throw CommandFailure(
                "\(origin): the \(what) \(file.path) has permissions 0\(String(info.st_mode & 0o777, radix: 8)): it must not be "
                    + (mayBeReadable
                        ? "writable by group or others (run: chmod 644 \(file.path))"
                        : "accessible by group or others (run: chmod 600 \(file.path))"))
        }
        guard contents else { return "" }
        let limit = 64 * 1024
        var buffer = [UInt8](repeating: 0, count: limit + 1)
        var count = 0
        while count <= limit {
            let n: Int
            do {
                n = try buffer[count...].withUnsafeMutableBytes { try fd.read(into: $0, retryOnInterrupt: true) }
            } catch {
                throw CommandFailure("\(origin): cannot read the \(what) \(file.path): \(error)")
            }
            if n == 0 { break }
            count += n
        }
        defer { for i in buffer.indices { buffer[i] = 0 } }
        guard count <= limit else { throw CommandFailure("\(origin): the \(what) \(file.path) is larger than \(limit) bytes") }
        let line = String(decoding: buffer[..<count], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).first ?? ""
        let secret = String(line.hasSuffix("\r") ? line.dropLast() : line)
        guard !secret.isEmpty else { throw CommandFailure("\(origin): the \(what) \(file.path) is empty") }
        return secret
    }
}
