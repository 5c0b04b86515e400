/// Capped exponential backoff: `initial`, doubling after each failure up to `maximum`,
/// back to `initial` after a success. The one retry schedule of every reconnecting
/// client and retried operation.
public struct Backoff: Sendable, Equatable {
    public let initial: Duration
    public let maximum: Duration
    /// Consecutive failures so far.
    public private(set) var failures = 0

    public init(initial: Duration, maximum: Duration) {
        self.initial = initial
        self.maximum = max(initial, maximum)
    }

    /// The delay after `failures` consecutive failures (1 = the first): min(maximum,
    /// initial · 2^(failures - 1)).
    public func delay(afterFailures failures: Int) -> Duration {
        var delay = initial
        var doublings = max(failures - 1, 0)
        while doublings > 0 && delay < maximum {
            delay = delay * 2
            doublings -= 1
        }
        return min(delay, maximum)
    }

    /// Counts a failure and returns how long to wait before trying again.
    public mutating func nextDelay() -> Duration {
        failures += 1
        return delay(afterFailures: failures)
    }

    /// A success: the next failure waits `initial` again.
    public mutating func reset() { failures = 0 }
}
