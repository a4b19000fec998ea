import EdgeFuzz
import EdgeTestSupport
import Foundation
import Testing

/// Replays the committed fuzz corpora (seeds and any crashers found since) through every fuzz target, so a
/// regression shows up in the ordinary test run, not only while fuzzing.
@Suite("Fuzz corpus replay", .cpuBound)
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

    /// Every target also gets every other target's corpus: well-formed inputs of one format are interesting
    /// malformed inputs of another (and identity payloads are handshake payloads).
    @Test(arguments: FuzzTargets.names)
    func allCorporaReplayCleanly(target: String) throws {
        let run = try #require(FuzzTargets.all[target])
        var count = 0
        for corpus in try FileManager.default.contentsOfDirectory(atPath: Self.corpusRoot.path).sorted() {
            let directory = Self.corpusRoot.appendingPathComponent(corpus)
            for file in try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() {
                let bytes = [UInt8](try Data(contentsOf: directory.appendingPathComponent(file)))
                #expect(throws: Never.self, "\(target) ← \(corpus)/\(file)") { try run(bytes) }
                count += 1
            }
        }
        #expect(count > 0)
    }

    /// Seeds taken from the known-answer vectors (`kat-*`) or made with the fixtures' keys (`gen-*`) are valid:
    /// the decoder under the target accepts them (the other seeds are allowed to be malformed on purpose).
    @Test(arguments: FuzzTargets.accepts.keys.sorted())
    func validSeedsAreAccepted(target: String) throws {
        let accepts = try #require(FuzzTargets.accepts[target])
        let directory = Self.corpusRoot.appendingPathComponent(target)
        for file in try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        where file.hasPrefix("kat-") || file.hasPrefix(FuzzSeeds.prefix) {
            let bytes = [UInt8](try Data(contentsOf: directory.appendingPathComponent(file)))
            #expect(accepts(bytes), "\(target)/\(file) is rejected by its decoder")
        }
    }

    @Test func everyTargetHasACorpusDirectory() throws {
        let present = Set(try FileManager.default.contentsOfDirectory(atPath: Self.corpusRoot.path))
        #expect(Set(FuzzTargets.names).isSubset(of: present))
        #expect(present.isSubset(of: Set(FuzzTargets.names)), "corpus directories without a fuzz target")
    }

    /// The committed `gen-*` seeds (genuine handshake messages, signed objects, ciphertexts of the fixed fixtures)
    /// must equal what `FuzzSeeds` produces now; otherwise they no longer reach the accepting paths.
    /// Regenerate with `python3 Tests/Fuzz/make-seeds.py`.
    @Test func generatedSeedsAreCurrent() throws {
        let generated = FuzzSeeds.generated()
        for (target, seeds) in generated {
            #expect(FuzzTargets.all[target] != nil, "generated seeds for unknown target \(target)")
            let directory = Self.corpusRoot.appendingPathComponent(target)
            for (name, bytes) in seeds {
                let url = directory.appendingPathComponent(FuzzSeeds.prefix + name)
                let committed = try? [UInt8](Data(contentsOf: url))
                #expect(committed == bytes, "\(target)/\(FuzzSeeds.prefix)\(name) is stale: run Tests/Fuzz/make-seeds.py")
            }
            let present = try FileManager.default.contentsOfDirectory(atPath: directory.path)
                .filter { $0.hasPrefix(FuzzSeeds.prefix) }
            let expected = Set(seeds.keys.map { FuzzSeeds.prefix + $0 })
            #expect(Set(present).isSubset(of: expected), "\(target): stale generated seeds \(Set(present).subtracting(expected))")
        }
    }
}
