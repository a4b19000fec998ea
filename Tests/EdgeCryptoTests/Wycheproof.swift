// EdgeCryptoTests/Wycheproof: loads Project Wycheproof vector files (testGroups[].tests[]) for the EdgeCrypto tests.
import EdgeTestSupport
import Foundation

/// One Wycheproof test case together with its group.
struct WycheproofCase {
    let group: [String: Any]
    let test: [String: Any]

    var tcId: Int { test["tcId"] as? Int ?? -1 }
    var result: String { test["result"] as? String ?? "" }
    var flags: [String] { test["flags"] as? [String] ?? [] }
    var label: String { "tcId \(tcId) (\(result), \(flags.joined(separator: ",")))" }

    /// A hex field of the test case, decoded.
    func bytes(_ field: String) -> [UInt8] {
        [UInt8](hex: test[field] as? String ?? "")
    }

    /// An integer field of the group (`keySize`, `ivSize`, `tagSize`).
    func groupInt(_ field: String) -> Int {
        group[field] as? Int ?? -1
    }
}

/// A parsed Wycheproof file.
struct WycheproofFile {
    let name: String
    let numberOfTests: Int
    let cases: [WycheproofCase]

    init(_ name: String) throws {
        guard let root = try TestData.vectorJSON("wycheproof/\(name)") as? [String: Any],
              let groups = root["testGroups"] as? [[String: Any]],
              let numberOfTests = root["numberOfTests"] as? Int
        else { throw TestDataError("\(name): unexpected JSON structure") }
        self.name = name
        self.numberOfTests = numberOfTests
        self.cases = groups.flatMap { group in
            (group["tests"] as? [[String: Any]] ?? []).map { WycheproofCase(group: group, test: $0) }
        }
    }
}
