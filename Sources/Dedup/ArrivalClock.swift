/// When the oldest unfinished event arrived, for a health check that tells the truth:
/// arrival times are sampled once per frame (the first seq it carried), not per event,
/// and dropped as the watermark passes them.
struct ArrivalClock {
    private var seqs: [UInt64] = []
    private var times: [UInt64] = []
    private var head = 0

    /// A frame whose first new event is `seq` arrived at `now`.
    mutating func arrived(seq: UInt64, now: UInt64) {
        seqs.append(seq)
        times.append(now)
    }

    /// When the event after `watermark` arrived, if any received event is unfinished
    /// (`highest` is the highest seq received). The answer is the arrival of the frame
    /// that carried it, which is never later than the event's own.
    mutating func oldestUnfinished(watermark: UInt64, highest: UInt64) -> UInt64? {
        // Drop samples whose frame is wholly finished: the next sample starts at or
        // below the first unfinished seq.
        while head + 1 < seqs.count && seqs[head + 1] <= watermark + 1 { head += 1 }
        if head > 1_024 && head * 2 > seqs.count {
            seqs.removeFirst(head)
            times.removeFirst(head)
            head = 0
        }
        guard watermark < highest, head < seqs.count, seqs[head] <= watermark + 1 else { return nil }
        return times[head]
    }

    /// The producer's seqs started over: old samples mean nothing.
    mutating func reset() { self = ArrivalClock() }
}
