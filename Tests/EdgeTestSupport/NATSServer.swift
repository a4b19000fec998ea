// A real nats-server for the JetStream tests, and (with trait JetStream) reading a stream back through libnats.
#if JetStream
import CNATS
#endif
import Foundation

/// A single `nats-server -js` on a free loopback port with its store in a temporary directory.
public final class NATSServer: @unchecked Sendable {
    /// The nats-server binary (PATH, then the usual places), nil when it is not installed.
    public static let binary: String? = {
        let candidates = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/nats-server" }
            + ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    let process = Process()
    public let port: Int
    let storeDirectory: URL
    public var url: String { "nats://127.0.0.1:\(port)" }

    public init() throws {
        port = try Self.freePort()
        storeDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("ockam-edge-nats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: storeDirectory, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: Self.binary!)
        process.arguments = ["-js", "-a", "127.0.0.1", "-p", "\(port)", "-sd", storeDirectory.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready once it accepts a TCP connection.
        for _ in 0..<200 {
            if Self.accepts(port) { return }
            usleep(50_000)
        }
        stop()
        throw TimedOut(what: "nats-server did not listen on \(port)")
    }

    public func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: storeDirectory)
    }

    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw TimedOut(what: "no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

#if JetStream
/// One message read back from the stream.
public struct StoredReading: Equatable, Sendable {
    public var subject: String
    public var headers: [String: String]
    public var epoch: String? { headers["Ockam-Epoch"] }
    public var sequence: UInt64 { UInt64(headers["Ockam-Sequence"] ?? "") ?? 0 }
    public var payload: String
}

/// Reads the whole stream back with its own connection (js_GetMsg for every stream sequence).
public func readBack(url: String, stream: String) throws -> [StoredReading] {
    var connection: OpaquePointer?
    guard natsConnection_ConnectTo(&connection, url) == NATS_OK, let connection else { throw TimedOut(what: "connect") }
    defer { natsConnection_Destroy(connection) }
    var context: OpaquePointer?
    guard natsConnection_JetStream(&context, connection, nil) == NATS_OK, let context else { throw TimedOut(what: "js") }
    defer { jsCtx_Destroy(context) }
    var readings: [StoredReading] = []
    var sequence: UInt64 = 1
    while true {
        var message: OpaquePointer?
        var code = jsErrCode(rawValue: 0)
        let status = js_GetMsg(&message, context, stream, sequence, nil, &code)
        if status != NATS_OK { break }
        guard let message else { break }
        defer { natsMsg_Destroy(message) }
        func header(_ name: String) -> String? {
            var value: UnsafePointer<CChar>?
            guard natsMsgHeader_Get(message, name, &value) == NATS_OK, let value else { return nil }
            return String(cString: value)
        }
        let data = natsMsg_GetData(message).map { Data(bytes: $0, count: Int(natsMsg_GetDataLength(message))) } ?? Data()
        var headers: [String: String] = [:]
        for name in ["Nats-Msg-Id", "Ockam-Gateway", "Ockam-Bridge", "Ockam-Device", "Ockam-Sequence", "Ockam-Received-At", "Ockam-Epoch"] {
            headers[name] = header(name)
        }
        readings.append(
            StoredReading(
                subject: String(cString: natsMsg_GetSubject(message)), headers: headers,
                payload: String(decoding: data, as: UTF8.self)))
        sequence += 1
    }
    return readings
}
#endif
