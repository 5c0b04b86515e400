/// Whether a subscriber is stalled: behind the stream with its socket full, and it took
/// no bytes between one look and the next, for a whole timeout.
///
/// Writability alone cannot tell: a subscriber that reads steadily but slower than events
/// arrive has its socket refilled as fast as it drains, so every look finds it full though
/// it takes bytes all the time. It took bytes if its cursor moved (frames were queued as
/// the socket drained) or its queue shrank since the last look.
struct StallWatch {
    let timeoutNanos: UInt64
    /// The first look that found it stalled, while it still is.
    private(set) var stalledSince: UInt64?
    private var lastCursor: UInt64 = 0
    private var lastPending = Int.max

    init(timeoutNanos: UInt64) {
        self.timeoutNanos = timeoutNanos
    }

    /// One look at the subscriber; true when it has taken no bytes for the timeout.
    mutating func look(now: UInt64, behind: Bool, writable: Bool, cursor: UInt64, pendingBytes: Int) -> Bool {
        let tookBytes = cursor != lastCursor || pendingBytes < lastPending
        lastCursor = cursor
        lastPending = pendingBytes
        guard behind && !writable && !tookBytes else {
            stalledSince = nil
            return false
        }
        let since = stalledSince ?? now
        stalledSince = since
        return now - since >= timeoutNanos
    }

    /// It caught up, or its socket takes bytes again.
    mutating func clear() {
        stalledSince = nil
    }
}
