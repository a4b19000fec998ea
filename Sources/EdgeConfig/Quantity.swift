// Durations and counts as operators write them (CLI, configuration, control socket): one parser, bounded, fuzzed.

/// Parses the numbers an operator or a local client gives: durations (`500ms`, `30s`, `2m`, `6h`, `1.5s`; a bare number
/// is seconds) and whole counts. Strict on purpose: digits with at most one decimal point and a unit — no signs,
/// exponents, hex, `inf` or `nan` — and bounded, so nothing built from the result can overflow (a duration of
/// 2^63 s once trapped when converted to nanoseconds).
public enum Quantity {
    /// The longest duration accepted: a year. Every timeout and interval in ockam-edge is far below it.
    public static let maxDuration: Duration = .seconds(366 * 24 * 3600)

    /// The duration `text` names, or nil if it is malformed or longer than ``maxDuration``.
    public static func duration(_ text: String) -> Duration? {
        guard !text.isEmpty, text.utf8.count <= 32 else { return nil }
        var number = Substring(text)
        let milliseconds: Int64
        if number.hasSuffix("ms") {
            number = number.dropLast(2)
            milliseconds = 1
        } else if number.hasSuffix("s") {
            number = number.dropLast()
            milliseconds = 1000
        } else if number.hasSuffix("m") {
            number = number.dropLast()
            milliseconds = 60_000
        } else if number.hasSuffix("h") {
            number = number.dropLast()
            milliseconds = 3_600_000
        } else {
            milliseconds = 1000
        }
        let parts = number.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.utf8.count <= 12, isDigits(whole) else { return nil }
        let fraction = parts.count == 2 ? parts[1] : ""
        guard parts.count == 1 || (!fraction.isEmpty && fraction.utf8.count <= 9 && isDigits(fraction)) else { return nil }
        // Whole part × unit, plus the fraction × unit, in milliseconds: at most 10^12 × 3.6·10^6, within Int64.
        guard let units = Int64(whole) else { return nil }
        let (product, overflow) = units.multipliedReportingOverflow(by: milliseconds)
        guard !overflow else { return nil }
        var total = product
        if !fraction.isEmpty, let digits = Int64(fraction) {
            var scale: Int64 = 1
            for _ in 0..<fraction.utf8.count { scale *= 10 }
            total += digits * milliseconds / scale  // sub-millisecond parts are dropped
        }
        let duration = Duration.milliseconds(total)
        return duration <= maxDuration ? duration : nil
    }

    /// `duration` in whole milliseconds (rounded down), computed exactly (`duration / .milliseconds(1)` is a Double and
    /// can print as `79200000.00000001`). The form ``duration(_:)`` reads back: `"\(milliseconds(of: d))ms"`.
    public static func milliseconds(of duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// `duration` as ``duration(_:)`` reads it back, in the largest unit that holds it exactly: `30s`, `15m`, `6h`,
    /// `1500ms` (whole milliseconds; anything finer is dropped).
    public static func text(of duration: Duration) -> String {
        let ms = milliseconds(of: duration)
        for (unit, size) in [("h", Int64(3_600_000)), ("m", 60_000), ("s", 1000)] where ms >= size && ms % size == 0 {
            return "\(ms / size)\(unit)"
        }
        return "\(ms)ms"
    }

    /// The whole number `text` names if it is within `range` (digits only), else nil.
    public static func count(_ text: String, in range: ClosedRange<Int>) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 19, isDigits(text[...]), let value = Int(text), range.contains(value) else {
            return nil
        }
        return value
    }

    private static func isDigits(_ text: Substring) -> Bool {
        text.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }
}
