import EdgeFuzz
import EdgeTestSupport
import Foundation
import Testing

/// Replays the committed fuzz corpora (seeds and any crashers found since) through every fuzz target, so a
/// regression shows up in the ordinary test run, not only while fuzzing.
@Suite("Fuzz corpus replay")
struct CorpusReplayTests {
    static let corpusRoot = TestData.packageRoot.appendingPathComponent("Tests/Fuzz/Corpus")

    @Test(arguments: FuzzTargets.names)
    func corpusReplaysCleanly(target: String) throws {
        let directory = Self.corpusRoot.appendingPathComponent(target)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(!files.isEmpty, "no corpus for \(target)")
        let run = try #require(FuzzTargets.all[target])
        for file in files {
            let bytes = [UInt8](try Data(contentsOf: directory.appendingPathComponent(file)))
            #expect(throws: Never.self, "\(target)/\(file)") { try run(bytes) }
        }
        print("fuzz corpus \(target): \(files.count) inputs replayed")
    }

    @Test func everyTargetHasACorpusDirectory() throws {
        let present = Set(try FileManager.default.contentsOfDirectory(atPath: Self.corpusRoot.path))
        #expect(Set(FuzzTargets.names).isSubset(of: present))
    }
}
