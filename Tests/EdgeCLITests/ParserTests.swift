import Testing

@testable import EdgeCLI

@Suite("Command-line parser")
struct ParserTests {
    let root = CommandSpec(
        "tool", abstract: "A tool.",
        subcommands: [
            CommandSpec(
                "node", abstract: "Nodes.",
                subcommands: [
                    CommandSpec(
                        "run", abstract: "Run.", examples: ["tool node run --port 1"],
                        options: [
                            OptionSpec("port", short: "p", value: "n", help: "Port.", default: "4000"),
                            OptionSpec("trust", value: "id", help: "Trust.", repeatable: true),
                            .flag("verbose", short: "v", help: "Verbose."),
                        ],
                        arguments: [ArgumentSpec("target", help: "Target.", optional: true)])
                ]),
            CommandSpec(
                "send", abstract: "Send.",
                arguments: [ArgumentSpec("to", help: "To."), ArgumentSpec("words", help: "Words.", variadic: true)]),
        ])

    func parse(_ argv: [String]) -> ParseOutcome { CommandLineParser.parse(argv, root: root, programName: "tool") }

    @Test func optionsFlagsAndDefaults() {
        guard case .run(let path, let args) = parse(["node", "run", "-v", "--trust", "a", "--trust=b", "x"]) else {
            Issue.record("expected run")
            return
        }
        #expect(path == ["node", "run"])
        #expect(args.flag("verbose"))
        #expect(args.values("trust") == ["a", "b"])
        #expect(args.value("port") == "4000")
        #expect(args.value("target") == "x")
    }

    @Test func inlineAndShortValues() {
        guard case .run(_, let args) = parse(["node", "run", "-p", "9", "--", "-notaflag"]) else {
            Issue.record("expected run")
            return
        }
        #expect(args.value("port") == "9")
        #expect(args.value("target") == "-notaflag")
    }

    @Test func variadicArguments() {
        guard case .run(_, let args) = parse(["send", "/a", "one", "two"]) else {
            Issue.record("expected run")
            return
        }
        #expect(args.value("to") == "/a")
        #expect(args.values("words") == ["one", "two"])
    }

    @Test func errors() {
        func isError(_ argv: [String], containing text: String) -> Bool {
            if case .usageError(let message) = parse(argv) { return message.contains(text) }
            return false
        }
        #expect(isError(["nope"], containing: "unknown command 'nope'"))
        #expect(isError(["node", "run", "--bogus"], containing: "unknown option '--bogus'"))
        #expect(isError(["node", "run", "--port"], containing: "needs a value"))
        #expect(isError(["node", "run", "--port", "1", "--port", "2"], containing: "more than once"))
        #expect(isError(["node", "run", "--verbose=yes"], containing: "takes no value"))
        #expect(isError(["node", "run", "a", "b"], containing: "unexpected argument 'b'"))
        #expect(isError(["send"], containing: "missing <to>"))
        #expect(isError(["send", "/a"], containing: "missing <words>"))
    }

    @Test func helpAndVersion() {
        #expect(parse(["--version"]) == .version)
        guard case .help(let text) = parse(["node", "run", "--help"]) else {
            Issue.record("expected help")
            return
        }
        #expect(text.contains("USAGE: tool node run [options] [<target>]"))
        #expect(text.contains("--port <n>"))
        #expect(text.contains("(default: 4000)"))
        #expect(text.contains("EXAMPLES:\n  tool node run --port 1"))
        guard case .help(let group) = parse(["node"]) else {
            Issue.record("a group without a subcommand shows help")
            return
        }
        #expect(group.contains("COMMANDS:\n  run"))
    }
}

@Suite("Manual pages")
struct ManualPageTests {
    @Test func fileFormatPagesEscapeTextAndBoldCodeSpans() {
        let page = ManualPage.fileFormatRoff(
            name: "tool.yaml", summary: "a file", path: "/etc/tool.yaml", version: "1.0", package: "tool",
            description: ["Set `a-b` to 1.\n.starts with a dot"],
            keys: [ManualPage.FileKey(key: "x[].y", type: "bytes", defaultValue: "`64`", meaning: "path\\name – é")],
            example: ["x:", "  - y: 2"], seeAlso: "tool(1)")
        #expect(page.hasPrefix(".TH TOOL.YAML 5 \"\" \"tool 1.0\" \"File Formats\"\n"))
        #expect(page.contains("Set \\fBa\\-b\\fR to 1.\n\\&.starts with a dot\n"), "\(page)")
        #expect(page.contains(".TP\n\\fBx[].y\\fR (bytes; default: \\fB64\\fR)\npath\\ename \\[u2013] \\[u00E9]\n"), "\(page)")
        #expect(page.contains(".SH EXAMPLE\n.RS\n.nf\nx:\n  \\- y: 2\n.fi\n.RE\n"), "\(page)")
        #expect(page.hasSuffix(".SH SEE ALSO\ntool(1)\n"))
    }
}
