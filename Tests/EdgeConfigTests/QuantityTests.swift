// EdgeConfigTests/QuantityTests: the one parser for durations and counts (CLI, configuration, control requests).
import Testing

@testable import EdgeConfig

@Suite("Durations and counts")
struct QuantityTests {
    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)), ("30s", .seconds(30)), ("2m", .seconds(120)), ("6h", .seconds(21_600)),
        ("1.5s", .milliseconds(1500)), ("0.25h", .seconds(900)), ("10", .seconds(10)), ("0s", .zero),
        ("0.0001s", .zero), ("8784h", .seconds(8784 * 3600)), ("007s", .seconds(7)),
    ])
    func durationsInRangeParse(text: String, expected: Duration) {
        #expect(Quantity.duration(text) == expected)
    }

    @Test(arguments: [
        "", "s", "ms", "-1s", "+1s", "1e3s", "0x10s", "infs", "nans", "1.s", ".5s", "1..5s", "1.5.5s", "1 s", " 1s",
        "1d", "8785h", "9223372036854775807s", "99999999999999999999ms", "1.0000000001s", "１s",
    ])
    func malformedOrHugeDurationsAreRefused(text: String) {
        #expect(Quantity.duration(text) == nil)
    }

    @Test(arguments: ["22h", "500ms", "1.5s", "8784h", "0s", "0.001s", "59m"])
    func durationsRoundTripThroughWholeMilliseconds(text: String) throws {
        // Dividing Durations gives a Double (22h / 1 ms = 79200000.00000001): the millisecond form must be exact.
        let duration = try #require(Quantity.duration(text))
        let milliseconds = Quantity.milliseconds(of: duration)
        #expect(duration == .milliseconds(milliseconds))
        #expect(Quantity.duration("\(milliseconds)ms") == duration)
        #expect(Quantity.duration(Quantity.text(of: duration)) == duration, "\(Quantity.text(of: duration))")
    }

    @Test func durationsPrintInTheLargestExactUnit() {
        #expect(Quantity.text(of: .seconds(30)) == "30s")
        #expect(Quantity.text(of: .seconds(900)) == "15m")
        #expect(Quantity.text(of: .seconds(6 * 3600)) == "6h")
        #expect(Quantity.text(of: .seconds(90)) == "90s")
        #expect(Quantity.text(of: .milliseconds(1500)) == "1500ms")
        #expect(Quantity.text(of: .zero) == "0ms")
    }

    @Test func countsAreDigitsWithinTheirRange() {
        #expect(Quantity.count("64", in: 1...100) == 64)
        #expect(Quantity.count("0064", in: 1...100) == 64)
        #expect(Quantity.count("0", in: 1...100) == nil)
        #expect(Quantity.count("101", in: 1...100) == nil)
        #expect(Quantity.count("+5", in: 1...100) == nil)
        #expect(Quantity.count("-5", in: -10...100) == nil, "signs are never accepted")
        #expect(Quantity.count("5 ", in: 1...100) == nil)
        #expect(Quantity.count("99999999999999999999", in: 0...Int.max) == nil)
        #expect(Quantity.count(String(Int.max), in: 0...Int.max) == Int.max)
    }
}
