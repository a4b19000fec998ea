// EdgeLogTests/LogOutputTests: the text, journal and JSON line formats, and when stderr counts as the journal.
import EdgeLog
import Logging
import Testing

@testable import EdgeLog

@Suite("Log output")
struct LogOutputTests {
    let clock = (seconds: 1_796_665_500, milliseconds: 7)  // 2026-12-07T17:45:00.007Z

    func line(_ format: LogFormat, _ level: Logger.Level = .warning, _ message: Logger.Message = "peer sent garbage") -> String {
        LogLine.format(
            format, level: level, label: "ockam-edge", message: message, metadata: ["node": "gw", "transport": "tcp"],
            source: "EdgeTransportTCP", wallClock: clock)
    }

    @Test func textHasATimestampTheLevelAndTheMetadata() {
        #expect(line(.text) == "2026-12-07T17:45:00+0000 warning ockam-edge: node=gw transport=tcp [EdgeTransportTCP] peer sent garbage")
    }

    @Test func journalLinesCarryTheSyslogPriorityAndNoTimestamp() {
        #expect(line(.journal) == "<4>node=gw transport=tcp [EdgeTransportTCP] peer sent garbage")
        let priorities = Logger.Level.allCases.map { LogFormat.syslogPriority($0) }
        #expect(priorities == [7, 7, 6, 5, 4, 3, 2])
        #expect(line(.journal, .info, "two\nlines") == "<6>node=gw transport=tcp [EdgeTransportTCP] two lines", "one record")
    }

    @Test func jsonLinesAreOneObjectWithEscapedText() {
        #expect(
            line(.json, .error, "a \"quoted\"\nvalue")
                == #"{"ts":"2026-12-07T17:45:00.007Z","level":"error","label":"ockam-edge","message":"a \"quoted\"\nvalue","source":"EdgeTransportTCP","node":"gw","transport":"tcp"}"#
        )
    }

    @Test func autoIsTheJournalOnlyWhenStderrIsTheStreamJournaldNamed() {
        let identity: (device: UInt64, inode: UInt64) = (64769, 123_456)
        #expect(LogFormat.auto.resolved(environment: ["JOURNAL_STREAM": "64769:123456"], standardErrorIdentity: identity) == .journal)
        #expect(LogFormat.auto.resolved(environment: ["JOURNAL_STREAM": "64769:999"], standardErrorIdentity: identity) == .text)
        #expect(LogFormat.auto.resolved(environment: [:], standardErrorIdentity: identity) == .text)
        #expect(LogFormat.auto.resolved(environment: ["JOURNAL_STREAM": "garbage"], standardErrorIdentity: identity) == .text)
        #expect(LogFormat.json.resolved(environment: ["JOURNAL_STREAM": "64769:123456"], standardErrorIdentity: identity) == .json)
    }
}
