/// Which received seqs are finished, so the listener knows the watermark: the highest seq
/// at or below which everything it received is finished (stored by it, known done, or
/// never received at all: a gap or a malformed line, reported on their own). Resuming
/// from the watermark after a crash or a reconnect misses nothing.
///
/// A ring of states indexed by seq, from the watermark up to the highest seq received;
/// it grows only with the span of unfinished seqs, which backpressure bounds.
///
/// A rewind (see `rewind(to:)`) asks for seqs again that were received already: every
/// one of them not in hand becomes `replay`, to be received a second time and claimed.
/// The producer sends a resumed stream in seq order, so a replayed seq that does not come
/// back before a later one does was skipped (a gap, a line without a readable seq), just
/// as an unknown seq is passed on first receipt.
package struct SeqTracker {
    private enum State: UInt8 { case unknown = 0, pending, finished, replay }
    private var states: [State]
    private var mask: Int
    /// The lowest seq that may still be unfinished.
    private(set) var base: UInt64
    /// The highest seq received.
    package private(set) var highest: UInt64
    /// Which numbering of the producer's seqs this tracks (see `restart`).
    private(set) var generation: UInt32 = 0

    /// Starts after `watermark` (everything up to it is finished).
    package init(watermark: UInt64 = 0) {
        states = Array(repeating: .unknown, count: 1024)
        mask = 1023
        base = watermark + 1
        highest = watermark
    }

    /// Everything at or below this seq is finished.
    package var watermark: UInt64 { base - 1 }

    /// Seqs between the watermark and the highest received.
    var span: Int { Int(highest &- watermark) }

    /// The first seq a rewind asks for again that has not come back yet.
    private var replayNext: UInt64 = 0
    /// The highest seq a rewind asks for again (0: none).
    private var replayThrough: UInt64 = 0

    /// What receiving `seq` would be.
    package enum Arrival: Equatable {
        /// Never received: to classify.
        case new
        /// Asked for again by a rewind: ours to claim, whatever our view says.
        case replayed
        /// Received already (a reconnect resumes from the watermark): dropped.
        case seen
    }

    package func arrival(of seq: UInt64) -> Arrival {
        if seq > highest { return .new }
        return seq >= base && seq <= replayThrough && states[Int(seq) & mask] == .replay ? .replayed : .seen
    }

    /// Records a received event. Returns false for a seq already seen (a replay after a
    /// reconnect), which the caller drops.
    package mutating func received(_ seq: UInt64) -> Bool {
        switch arrival(of: seq) {
        case .seen:
            // Sent again after a rewind but in hand: still a sign of how far it got.
            passSkippedReplays(below: seq)
            return false
        case .replayed:
            passSkippedReplays(below: seq)
            states[Int(seq) & mask] = .pending
            return true
        case .new:
            passSkippedReplays(below: seq)
            while Int(seq - base) >= states.count { grow() }
            states[Int(seq) & mask] = .pending
            highest = seq
            return true
        }
    }

    /// Records an event received and finished at once (classified as another member's).
    package mutating func receivedFinished(_ seq: UInt64) -> Bool {
        guard received(seq) else { return false }
        states[Int(seq) & mask] = .finished
        advance()
        return true
    }

    /// Asks again for every seq in (`seq`, highest] not in hand (not pending): they become
    /// `replay` until received again, and the watermark falls back to `seq`. Returns false
    /// when `seq` is below what the ring still holds (it never is for a watermark we vouch
    /// for: everything at or below the watermark is finished).
    @discardableResult
    package mutating func rewind(to seq: UInt64) -> Bool {
        guard seq < highest else { return false }
        while Int(highest - seq) >= states.count { grow() }
        var at = seq + 1
        while at <= highest {
            // Seqs below `base` were finished (their slots were cleared as it passed).
            if at < base || states[Int(at) & mask] != .pending { states[Int(at) & mask] = .replay }
            at += 1
        }
        base = min(base, seq + 1)
        replayNext = seq + 1
        replayThrough = highest
        return true
    }

    /// Whether a rewind's seqs are still being received again.
    package var isReplaying: Bool { replayThrough >= replayNext && replayThrough > 0 }

    /// A seq at or past `seq` arrived: the replayed seqs before it that did not come back
    /// were skipped by the producer, and are passed.
    private mutating func passSkippedReplays(below seq: UInt64) {
        guard isReplaying, seq >= replayNext else { return }
        let end = min(seq - 1, replayThrough)
        var at = max(replayNext, base)
        var passed = false
        while at <= end {
            if states[Int(at) & mask] == .replay {
                states[Int(at) & mask] = .finished
                passed = true
            }
            at += 1
        }
        replayNext = seq + 1
        if replayNext > replayThrough { replayThrough = 0 }
        if passed { advance() }
    }

    /// Marks `seq` finished and advances the watermark past every finished or missing seq.
    package mutating func finished(_ seq: UInt64, generation: UInt32) {
        guard generation == self.generation, seq >= base, seq <= highest else { return }
        states[Int(seq) & mask] = .finished
        advance()
    }

    /// The producer started over (its seqs restarted): forget the old numbering.
    mutating func restart(at watermark: UInt64) {
        let next = generation &+ 1
        self = SeqTracker(watermark: watermark)
        generation = next
    }

    private mutating func advance() {
        while base <= highest && states[Int(base) & mask] != .pending && states[Int(base) & mask] != .replay {
            states[Int(base) & mask] = .unknown
            base += 1
        }
    }

    private mutating func grow() {
        var bigger = [State](repeating: .unknown, count: states.count * 2)
        let newMask = bigger.count - 1
        var seq = base
        while seq <= highest {
            bigger[Int(seq) & newMask] = states[Int(seq) & mask]
            seq += 1
        }
        states = bigger
        mask = newMask
    }
}
