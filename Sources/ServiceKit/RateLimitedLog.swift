import Logging

/// Per-event log lines for a demo, a periodic summary under a flood: up to `burst` lines
/// per interval are logged as they come; past that they are only counted, and the next
/// interval starts with one summary line. Logging never caps throughput.
/// Not thread-safe: one per loop.
public final class RateLimitedLog {
    private let logger: Logger
    private let burst: Int
    private let intervalNanos: UInt64
    private var windowStart: UInt64 = 0
    private var inWindow = 0
    private var suppressed: [String: Int] = [:]

    /// The logger's level, read once: asking the log handler per event is not free.
    private let level: Logger.Level

    public init(logger: Logger, burst: Int = 20, intervalMillis: Int = 5_000) {
        self.logger = logger
        self.level = logger.logLevel
        self.burst = burst
        self.intervalNanos = UInt64(intervalMillis) * 1_000_000
    }

    /// Whether lines at `level` are logged at all (to skip per-event work when not).
    public func logs(_ level: Logger.Level) -> Bool { self.level <= level }

    /// Logs `message()` at `level` unless this interval's budget is spent; then counts it
    /// under `kind` for the summary.
    public func event(_ kind: String, level: Logger.Level = .info, now: UInt64, _ message: @autoclosure () -> Logger.Message) {
        guard self.level <= level else { return }
        if now &- windowStart >= intervalNanos { rollWindow(now) }
        if inWindow < burst {
            inWindow += 1
            logger.log(level: level, message())
        } else {
            suppressed[kind, default: 0] += 1
        }
    }

    /// Emits the pending summary if the interval is over (call from a periodic timer).
    public func tick(now: UInt64) {
        if now &- windowStart >= intervalNanos { rollWindow(now) }
    }

    private func rollWindow(_ now: UInt64) {
        if !suppressed.isEmpty {
            let parts = suppressed.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            let seconds = Double(now &- windowStart) / 1e9
            logger.info("summary: \(parts) (per-event lines suppressed over the last \(Int(seconds.rounded()))s)")
            suppressed.removeAll(keepingCapacity: true)
        }
        windowStart = now
        inWindow = 0
    }
}
