/// Events that rendezvous hashing gave to another member: held (with their payloads, in
/// case this instance must claim them after all) until that member's state proves them
/// finished, or until it cannot (it left, it classified them under another view, it did
/// not finish them within a claim's lifetime), when this instance claims them itself.
///
/// Held in chunks, one per classification turn (one view, one arrival time): members
/// finish events roughly in seq order, so a sweep mostly drops whole chunks. Events a
/// sweep settles are only marked in their chunk (never copied out of it); the chunk's
/// storage is dropped, for reuse, once all of its events are settled.
package struct DeferList {
    private struct Chunk {
        var events = EventSet()
        /// The member each event is held for; `settledMark` once it is settled.
        var members: [Int] = []
        var settled = 0
        let view: UInt64
        let since: UInt64
        /// The lowest and highest seq held, and which members (by index, bit per member;
        /// `manyMembers` past 64) they are held for: what settling the chunk whole asks.
        var lowest = UInt64.max
        var highest: UInt64 = 0
        var memberBits: UInt64 = 0
        var manyMembers = false
    }
    private static let settledMark = -1

    private var chunks: [Chunk] = []
    /// Storage of swept chunks, for the next ones.
    private var spare = EventSetPool()
    /// Events held and not settled.
    package private(set) var count = 0
    /// Bytes of the chunks held (settled events' included until their chunk goes).
    private(set) var byteCount = 0
    /// Names of the members deferred to, by index (a handful: one per live member).
    private(set) var names: [[UInt8]] = []

    package var isEmpty: Bool { count == 0 }

    package init() {}

    /// The index of `name` in the member table, added on first sight.
    package mutating func memberIndex(of name: [UInt8]) -> Int {
        if let index = names.firstIndex(of: name) { return index }
        names.append(name)
        return names.count - 1
    }

    /// Holds event `index` of `source` for `member`, as classified under `view` at `now`.
    mutating func add(_ source: EventSet, _ index: Int, member: Int, view: UInt64, now: UInt64) {
        add(seq: source.seqs[index], member: member, view: view, now: now) { $0.append(source, index) }
    }

    /// Holds an event known by its line's head (see `EventSet.appendLine`).
    package mutating func addLine(seq: UInt64, id: UnsafeRawBufferPointer, rest: UnsafeRawBufferPointer, generation: UInt32,
                          acceptedAt: Int64, member: Int, view: UInt64, now: UInt64) {
        add(seq: seq, member: member, view: view, now: now) {
            $0.appendLine(seq: seq, id: id, rest: rest, generation: generation, acceptedAt: acceptedAt)
        }
    }

    private mutating func add(seq: UInt64, member: Int, view: UInt64, now: UInt64, _ append: (inout EventSet) -> Void) {
        // Fields read in place: `chunks.last` would copy the chunk, retaining its arrays.
        var last = chunks.count - 1
        if last < 0 || chunks[last].view != view || chunks[last].since != now {
            chunks.append(Chunk(events: spare.take(), view: view, since: now))
            last += 1
        }
        let before = chunks[last].events.byteCount
        append(&chunks[last].events)
        chunks[last].members.append(member)
        chunks[last].lowest = min(chunks[last].lowest, seq)
        chunks[last].highest = max(chunks[last].highest, seq)
        if member < 64 { chunks[last].memberBits |= 1 << UInt64(member) } else { chunks[last].manyMembers = true }
        count += 1
        byteCount += chunks[last].events.byteCount - before
    }

    package enum Verdict {
        case hold, finished
        /// Its member cannot vouch for it (another view, never received).
        case claim
        /// Its member is gone, or had it for longer than a claim lives.
        case takeOver
    }

    /// What a member's state says of every event a chunk holds for it, asked once per
    /// chunk: all finished, all still its own to finish in time, or neither (each event
    /// is then decided on its own).
    package enum ChunkVerdict {
        case finished, hold
    }

    /// Hands each event `decide` does not hold to `removed` with the verdict, and keeps
    /// the rest. Each chunk is first asked about per member it holds events for, over
    /// the chunk's whole seq range (`whole`; nil means ask per event): when every member
    /// vouches for all of it the chunk goes to `finished` at once, and when every member
    /// still has all of it in hand the chunk is kept as it is. Members finish in seq
    /// order, so most chunks are one or the other, and a sweep (every poll tick) costs
    /// per chunk, not per event held.
    package mutating func sweep(_ decide: (_ seq: UInt64, _ member: Int, _ view: UInt64, _ since: UInt64) -> Verdict,
                                whole: (_ member: Int, _ view: UInt64, _ since: UInt64, _ seqs: ClosedRange<UInt64>) -> ChunkVerdict?,
                                finished: (EventSet) -> Void,
                                removed: (EventSet, Int, Verdict) -> Void) {
        var kept: [Chunk] = []
        kept.reserveCapacity(chunks.count)
        // By member index: a chunk asks about members 0..<64 (see `Chunk.memberBits`).
        var verdicts = [ChunkVerdict?](repeating: nil, count: 64)
        for index in chunks.indices {
            // Moved out, not copied, so its storage can go back to the pool unshared.
            var chunk = Chunk(view: 0, since: 0)
            swap(&chunk, &chunks[index])
            var allFinished = !chunk.manyMembers
            var allHold = !chunk.manyMembers
            for i in verdicts.indices { verdicts[i] = nil }
            if !chunk.manyMembers {
                for member in Self.members(chunk.memberBits) {
                    let verdict = whole(member, chunk.view, chunk.since, chunk.lowest...chunk.highest)
                    verdicts[member] = verdict
                    allFinished = allFinished && verdict == .finished
                    allHold = allHold && verdict == .hold
                }
            }
            if allHold {
                kept.append(chunk)
                continue
            }
            if allFinished && chunk.settled == 0 {
                finished(chunk.events)
                count -= chunk.events.count
                byteCount -= chunk.events.byteCount
                spare.give(&chunk.events)
                continue
            }
            for i in 0..<chunk.events.count where chunk.members[i] != Self.settledMark {
                let member = chunk.members[i]
                let verdict: Verdict
                switch member < verdicts.count ? verdicts[member] : nil {
                case .hold?: continue
                case .finished?: verdict = .finished
                case nil: verdict = decide(chunk.events.seqs[i], member, chunk.view, chunk.since)
                }
                guard verdict != .hold else { continue }
                removed(chunk.events, i, verdict)
                chunk.members[i] = Self.settledMark
                chunk.settled += 1
                count -= 1
            }
            if chunk.settled == chunk.events.count {
                byteCount -= chunk.events.byteCount
                spare.give(&chunk.events)
            } else {
                kept.append(chunk)
            }
        }
        chunks = kept
        if chunks.isEmpty { names.removeAll() }
    }

    /// The member indexes set in `bits`.
    private static func members(_ bits: UInt64) -> some Sequence<Int> {
        sequence(state: bits) { rest -> Int? in
            guard rest != 0 else { return nil }
            let member = rest.trailingZeroBitCount
            rest &= rest &- 1
            return member
        }
    }
}
