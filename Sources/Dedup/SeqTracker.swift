/// Which received seqs are finished, so the listener knows the watermark: the highest seq
/// at or below which everything it received is finished (stored by it, known done, or
/// never received at all: a gap or a malformed line, reported on their own). Resuming
/// from the watermark after a crash or a reconnect misses nothing.
///
/// A ring of states indexed by seq, from the watermark up to the highest seq received;
/// it grows only with the number of unfinished events, which backpressure bounds.
package struct SeqTracker {
    private enum State: UInt8 { case unknown = 0, pending, finished }
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

    /// Records a received event. Returns false for a seq already seen (a replay after a
    /// reconnect), which the caller drops.
    package mutating func received(_ seq: UInt64) -> Bool {
        guard seq > highest else { return false }
        while Int(seq - base) >= states.count { grow() }
        states[Int(seq) & mask] = .pending
        highest = seq
        return true
    }

    /// Marks `seq` finished and advances the watermark past every finished or missing seq.
    package mutating func finished(_ seq: UInt64, generation: UInt32) {
        guard generation == self.generation, seq >= base, seq <= highest else { return }
        states[Int(seq) & mask] = .finished
        advance()
    }

    /// Marks every event of `events` finished (one advance for all of them).
    package mutating func finished(all events: EventSet) {
        let seqs = events.seqs
        let generations = events.generations
        for i in 0..<events.count where generations[i] == generation {
            let seq = seqs[i]
            if seq >= base && seq <= highest { states[Int(seq) & mask] = .finished }
        }
        advance()
    }

    /// The producer started over (its seqs restarted): forget the old numbering.
    mutating func restart(at watermark: UInt64) {
        let next = generation &+ 1
        self = SeqTracker(watermark: watermark)
        generation = next
    }

    private mutating func advance() {
        while base <= highest && states[Int(base) & mask] != .pending {
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
