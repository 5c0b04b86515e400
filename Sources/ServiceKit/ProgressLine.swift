import Glibc

/// A live progress line for long jobs: rewritten in place (`\r`) on a terminal, a plain
/// line every few seconds otherwise, so logs stay readable.
public struct ProgressLine {
    private let label: String
    private let fd: Int32
    private let isTerminal: Bool
    private var lastPrintNanos: UInt64 = 0

    /// With `quietFrom` (a `nowNanos` reading), the first line waits one interval from then,
    /// so a job that ends sooner prints only its last line.
    public init(label: String, toStderr: Bool = false, quietFrom startNanos: UInt64 = 0) {
        self.label = label
        fd = toStderr ? 2 : 1
        isTerminal = isatty(fd) != 0
        lastPrintNanos = startNanos
    }

    /// Prints at most every 250 ms on a terminal, every 2 s otherwise.
    public mutating func update(done: Int, total: Int?, detail: String, nowNanos: UInt64, startNanos: UInt64) {
        guard isDue(nowNanos) else { return }
        emit(rateLine(done: done, total: total, detail: detail, nowNanos: nowNanos, startNanos: startNanos), final: false)
    }

    /// Prints the last line.
    public mutating func finish(done: Int, total: Int?, detail: String, nowNanos: UInt64, startNanos: UInt64) {
        emit(rateLine(done: done, total: total, detail: detail, nowNanos: nowNanos, startNanos: startNanos), final: true)
    }

    /// "label: text", for a job that words its own figures; as often as `update`, and always
    /// when `final` (the last line). `text` is only built when printed: callers update per
    /// operation in measured loops.
    public mutating func update(_ text: @autoclosure () -> String, nowNanos: UInt64, final: Bool = false) {
        guard final || isDue(nowNanos) else { return }
        emit("\(label): \(text())", final: final)
    }

    private mutating func isDue(_ nowNanos: UInt64) -> Bool {
        let interval: UInt64 = isTerminal ? 250_000_000 : 2_000_000_000
        guard nowNanos &- lastPrintNanos >= interval else { return false }
        lastPrintNanos = nowNanos
        return true
    }

    private func rateLine(done: Int, total: Int?, detail: String, nowNanos: UInt64, startNanos: UInt64) -> String {
        let seconds = max(Double(nowNanos &- startNanos) / 1e9, 1e-9)
        let rate = Int(Double(done) / seconds)
        var line = "\(label): \(done)"
        if let total { line += "/\(total)" }
        return line + " (\(detail)) \(rate)/s \(Int(seconds))s"
    }

    private func emit(_ line: String, final: Bool) {
        let text = isTerminal ? "\r\u{1B}[K" + line + (final ? "\n" : "") : line + "\n"
        // What `print` wrote is still in stdio's buffer; flush it so the lines keep their order.
        fflush(nil)
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { _ = write(fd, $0.baseAddress!, $0.count) }
    }
}
