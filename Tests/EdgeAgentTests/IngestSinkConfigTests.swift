import EdgeAgent
import Foundation
import Testing

/// What `agent --check-config` checks of an ingest sink beyond the decoder: its secret files, and the build.
@Suite("Ingest sink configuration")
struct IngestSinkConfigTests {
    func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ockam-edge-sink-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func write(_ text: String, to path: String, mode: Int) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    func load(_ dir: String, sink: String) throws {
        let path = dir + "/agent.yaml"
        try ("ingest:\n  - sink:\n      type: jetstream\n      servers: nats://127.0.0.1:4222\n" + sink)
            .write(toFile: path, atomically: true, encoding: .utf8)
        _ = try AgentConfigFile.load(path)
    }

    func message(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    @Test func secretFilesMustBePrivateAndWellFormed() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write("s3cret\n", to: dir + "/token", mode: 0o644)
        let open = message { try load(dir, sink: "      token_file: \(dir)/token\n") }
        #expect(open.contains("agent.yaml:5: ingest[].sink.token_file: the token file \(dir)/token has permissions 0644"), "\(open)")
        #expect(open.contains("chmod 600"), "\(open)")
        let missing = message { try load(dir, sink: "      creds_file: \(dir)/none.creds\n") }
        #expect(missing.contains("agent.yaml:5: ingest[].sink.creds_file: cannot open the creds file"), "\(missing)")
        try write("nocolon\n", to: dir + "/userpass", mode: 0o600)
        let malformed = message { try load(dir, sink: "      user_password_file: \(dir)/userpass\n") }
        #expect(malformed.contains("must hold one line user:password"), "\(malformed)")
        try write("\n", to: dir + "/empty", mode: 0o600)
        #expect(message { try load(dir, sink: "      token_file: \(dir)/empty\n") }.contains("is empty"))
        // A CA certificate may be readable by others, not writable.
        try write("-----BEGIN CERTIFICATE-----\n", to: dir + "/ca.pem", mode: 0o664)
        let writable = message { try load(dir, sink: "      tls_ca_file: \(dir)/ca.pem\n") }
        #expect(writable.contains("must not be writable by group or others (run: chmod 644"), "\(writable)")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: dir + "/ca.pem")
        #expect(!message { try load(dir, sink: "      tls_ca_file: \(dir)/ca.pem\n") }.contains("ca.pem"))
    }

    /// A build without trait JetStream refuses a jetstream sink at --check-config, naming the line and the fix;
    /// with the trait the same file (private secret files) is accepted.
    @Test func jetstreamNeedsTheTrait() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write("user:pass\n", to: dir + "/userpass", mode: 0o600)
        let result = message { try load(dir, sink: "      user_password_file: \(dir)/userpass\n") }
        #if JetStream
        #expect(result == "accepted")
        #else
        #expect(
            result.contains("agent.yaml:3: ingest[].sink.type: jetstream needs an ockam-edge built with the JetStream trait"),
            "\(result)")
        #endif
    }
}
