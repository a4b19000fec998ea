// Fuzz target for the duration and count parser every CLI option, configuration key and control request goes through.
import EdgeConfig
import NIOCore

extension FuzzTargets {
    /// Any text: parsing never traps; an accepted duration is within 0…``Quantity/maxDuration``, converts to NIO's
    /// nanoseconds without overflow, and its millisecond form parses back to the same value; an accepted count is in
    /// range and prints back to its digits without leading zeros.
    static func quantity(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        let text = String(decoding: input, as: UTF8.self)
        if let duration = Quantity.duration(text) {
            try check(duration >= .zero && duration <= Quantity.maxDuration, "duration \(duration) out of range")
            let milliseconds = Quantity.milliseconds(of: duration)
            try check(duration == .milliseconds(milliseconds), "\(duration) is not whole milliseconds")
            try check(Quantity.duration("\(milliseconds)ms") == duration, "\(duration) does not round-trip")
            _ = TimeAmount(duration)
        }
        if let count = Quantity.count(text, in: 0...Int.max) {
            let canonical = text.drop { $0 == "0" }
            try check(String(count) == (canonical.isEmpty ? "0" : String(canonical)), "count \(count) from '\(text)'")
        }
    }
}
