import Glibc

/// Nanoseconds on CLOCK_MONOTONIC: immune to wall-clock jumps, which matter for timers
/// and timeouts, never for timestamps shown to users.
@inline(__always)
public func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

extension Duration {
    /// The duration in whole nanoseconds, clamped at zero.
    public var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }
}

/// Wall-clock time, for timestamps that cross processes (a producer's accept time read by
/// a listener): never for timers.
public enum WallClock {
    /// Milliseconds since the Unix epoch, CLOCK_REALTIME.
    public static func unixMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000 + Int64(ts.tv_nsec / 1_000_000)
    }
}
