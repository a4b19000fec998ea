import Testing

@testable import EdgeConfig

@Suite("YAML subset")
struct YAMLTests {
    func scalar(_ node: YAMLNode?) -> String? {
        if case .scalar(let s, _)? = node { return s }
        return nil
    }

    func lookup(_ node: YAMLNode, _ key: String) -> YAMLNode? {
        if case .mapping(let entries, _) = node { return entries.first { $0.key == key }?.value }
        return nil
    }

    @Test func mappingsSequencesScalarsAndLines() throws {
        let text = """
            # comment
            ---
            vault: /var/lib/ockam-edge/vault   # trailing comment
            identity: "gate way"
            trust:
              - I923829d0
              - 'it''s'
            tcp:
              listen: [127.0.0.1:4000, "[::1]:4000"]
            serial:
            - port: /dev/ttyUSB0
              baud: 115200
            - port: /dev/ttyACM0
            empty:
            url: http://x#notacomment
            """
        let root = try YAML.parse(text)
        #expect(scalar(lookup(root, "vault")) == "/var/lib/ockam-edge/vault")
        #expect(scalar(lookup(root, "identity")) == "gate way")
        #expect(scalar(lookup(root, "empty")) == "")
        #expect(scalar(lookup(root, "url")) == "http://x#notacomment")
        guard case .sequence(let trust, let line)? = lookup(root, "trust") else {
            Issue.record("trust is a sequence")
            return
        }
        #expect(line == 6)
        #expect(trust.map(scalar) == ["I923829d0", "it's"])
        guard case .sequence(let listen, _)? = lookup(try #require(lookup(root, "tcp")), "listen") else {
            Issue.record("flow sequence")
            return
        }
        #expect(listen.map(scalar) == ["127.0.0.1:4000", "[::1]:4000"])
        guard case .sequence(let serial, _)? = lookup(root, "serial") else {
            Issue.record("serial is a sequence")
            return
        }
        #expect(serial.count == 2)
        #expect(scalar(lookup(serial[0], "baud")) == "115200")
        #expect(lookup(serial[0], "baud")?.line == 12)
        #expect(scalar(lookup(serial[1], "port")) == "/dev/ttyACM0")
    }

    /// Windows line ends and a byte-order mark: the same document, the same line numbers.
    @Test func crlfLineEndsAndAByteOrderMarkAreAccepted() throws {
        let unix = "node:\n  name: gw\ntrust:\n  - I1\n  - I2\n"
        let windows = "\u{FEFF}" + unix.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\r\n")
        #expect(try YAML.parse(windows) == (try YAML.parse(unix)))
        #expect(scalar(lookup(try #require(lookup(try YAML.parse(windows), "node")), "name")) == "gw")
        // An error still names the right line.
        #expect(throws: YAMLError(line: 3, message: "tab in indentation (use spaces)")) {
            try YAML.parse("a: 1\r\nb: 2\r\n\tc: 3\r\n")
        }
    }

    @Test func escapes() throws {
        let root = try YAML.parse(#"a: "x\"y\\z\n\u00e9""#)
        #expect(scalar(lookup(root, "a")) == "x\"y\\z\né")
    }

    @Test(arguments: [
        ("a: 1\n\tb: 2", 2, "tab"),
        ("a: 1\na: 2", 2, "duplicate key 'a'"),
        ("a: &x 1", 1, "anchors"),
        ("a: |\n  text", 1, "block scalars"),
        ("a: {b: 1}", 1, "flow mappings"),
        ("a:\n  b: 1\n   c: 2", 3, "unexpected indentation"),
        ("a: \"open", 1, "unterminated"),
        ("- a\nb: 1", 2, "unexpected content"),
        ("a: 1\n---\nb: 2", 2, "one YAML document"),
        ("just text", 1, "expected 'key: value'"),
    ])
    func errorsNameTheLine(text: String, line: Int, message: String) {
        do {
            _ = try YAML.parse(text)
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.line == line, "\(text)")
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    @Test func deepNestingIsBounded() {
        var text = ""
        for depth in 0..<100 { text += String(repeating: " ", count: depth * 2) + "k\(depth):\n" }
        #expect(throws: YAMLError.self) { _ = try YAML.parse(text) }
    }

    @Test func randomInputNeverTraps() {
        var state: UInt64 = 0x1234_5678
        let alphabet = Array(" \n-:#'\"[],{}|&*!abc\\\t")
        for _ in 0..<5000 {
            var text = ""
            for _ in 0..<Int(state % 60) {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                text.append(alphabet[Int(state >> 33) % alphabet.count])
            }
            _ = try? YAML.parse(text)
        }
    }
}
