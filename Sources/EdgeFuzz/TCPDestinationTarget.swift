// Fuzz target for TCP destinations and forwarding rules (flow control's allow-list, routing.md "Flow control").
import EdgeTransportTCP

extension FuzzTargets {
    /// A peer names TCP destinations in routes and operators write forwarding rules: parsing either never traps, the
    /// canonical form is a fixed point (printing and reparsing gives the same value, so one destination has one
    /// connection and one spelling in `status`), an exact rule matches its destination, and a rule's text reparses to
    /// the same rule. Input: `destination NUL rule` (either part may be missing).
    static func tcpDestination(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        let parts = input.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
        let destinationText = String(decoding: parts.first ?? [], as: UTF8.self)
        let ruleText = parts.count > 1 ? String(decoding: parts[1], as: UTF8.self) : ""
        let destination = try? TCPDestination(parsing: destinationText)
        if let destination {
            let reparsed = try? TCPDestination(parsing: destination.description)
            try check(reparsed == destination, "canonical destination \(destination) does not reparse to itself")
            try check(destination.port > 0, "port 0 accepted")
            try check(TCPForwardRule(exactly: destination).matches(destination), "exact rule misses \(destination)")
        }
        if let rule = try? TCPForwardRule(parsing: ruleText) {
            let reparsed = try? TCPForwardRule(parsing: rule.description)
            try check(reparsed == rule, "rule \(rule) does not reparse to itself")
            if let destination { _ = rule.matches(destination) }
        }
    }
}
