import Glibc

/// A live progress line (`\r`-rewritten on a terminal, a line every few seconds in logs),
/// so every long benchmark phase shows that it is moving and how fast.
final class LiveRate {
    private let label: String
    private let unit: String
    private let start = monotonicSeconds()
    private var lastPrint = monotonicSeconds()
    private let interval: Double
    private let isTerminal = isatty(STDOUT_FILENO) != 0

    init(_ label: String, unit: String = "ops") {
        self.label = label
        self.unit = unit
        interval = isTerminal ? 0.25 : 2.0
    }

    /// Reports `done` items so far (of `total` when known); prints at most every interval.
    func update(_ done: Int, of total: Int? = nil) {
        let now = monotonicSeconds()
        guard now - lastPrint >= interval else { return }
        lastPrint = now
        emit(done, total, final: false)
    }

    /// Prints the final line and returns the rate per second.
    @discardableResult
    func finish(_ done: Int) -> Double {
        emit(done, nil, final: true)
        let elapsed = monotonicSeconds() - start
        return elapsed > 0 ? Double(done) / elapsed : 0
    }

    private func emit(_ done: Int, _ total: Int?, final: Bool) {
        let elapsed = max(monotonicSeconds() - start, 1e-9)
        let rate = Double(done) / elapsed
        var line = "  \(label): \(done)"
        if let total { line += "/\(total)" }
        line += " \(unit), \(formatRate(rate))/s, \(String(format1: elapsed))s"
        if isTerminal {
            print("\r\u{1B}[K" + line, terminator: final ? "\n" : "")
            fflush(nil)
        } else {
            print(line)
        }
    }
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
