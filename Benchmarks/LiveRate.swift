import Glibc
import ServiceKit

/// The live line of a benchmark phase, "label: done/total unit, rate/s, seconds", printed
/// through ServiceKit's ProgressLine; the first line comes one interval after the start.
final class LiveRate {
    private let unit: String
    private let start = monotonicSeconds()
    private var line: ProgressLine

    init(_ label: String, unit: String = "ops") {
        self.unit = unit
        line = ProgressLine(label: "  " + label, quietFrom: monotonicNanos())
    }

    /// Reports `done` items so far (of `total` when known); printed at most every interval.
    func update(_ done: Int, of total: Int? = nil) {
        line.update(text(done, total), nowNanos: monotonicNanos())
    }

    /// Prints the final line and returns the rate per second.
    @discardableResult
    func finish(_ done: Int) -> Double {
        line.update(text(done, nil), nowNanos: monotonicNanos(), final: true)
        let elapsed = monotonicSeconds() - start
        return elapsed > 0 ? Double(done) / elapsed : 0
    }

    private func text(_ done: Int, _ total: Int?) -> String {
        let elapsed = max(monotonicSeconds() - start, 1e-9)
        let rate = Double(done) / elapsed
        return "\(done)\(total.map { "/\($0)" } ?? "") \(unit), \(formatRate(rate))/s, \(String(format1: elapsed))s"
    }
}

func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// "1.23M", "456.7k", "89.0".
func formatRate(_ value: Double) -> String {
    if value >= 1e9 { return String(format1: value / 1e9) + "G" }
    if value >= 1e6 { return String(format2: value / 1e6) + "M" }
    if value >= 1e3 { return String(format1: value / 1e3) + "k" }
    return String(format1: value)
}

extension String {
    /// One decimal, without Foundation's String(format:).
    init(format1 value: Double) {
        let scaled = (value * 10).rounded()
        self = "\(Int(scaled) / 10).\(abs(Int(scaled)) % 10)"
    }

    /// Two decimals.
    init(format2 value: Double) {
        let scaled = Int((value * 100).rounded())
        let frac = abs(scaled) % 100
        self = "\(scaled / 100).\(frac < 10 ? "0" : "")\(frac)"
    }
}
