/// Events that rendezvous hashing gave to another member: held (with their payloads, in
/// case this instance must claim them after all) until that member's state proves them
/// finished, or until it cannot (it left, it classified them under another view, it did
/// not finish them within a claim's lifetime), when this instance claims them itself.
///
/// Held in chunks, one per classification turn (one view, one arrival time): members
/// finish events roughly in seq order, so a sweep mostly drops whole chunks or keeps them
/// untouched, and copies only the few chunks it splits, instead of every held event on
/// every poll.
struct DeferList {
    private struct Chunk {
        var events = EventSet()
        var members: [Int] = []
        let view: UInt64
        let since: UInt64
    }

    private var chunks: [Chunk] = []
    /// Storage of swept chunks, for the next ones.
    private var spare = EventSetPool()
    /// One verdict per event of the chunk being swept (reused: no array per chunk).
    private var verdicts: [Verdict] = []
    private(set) var count = 0
    private(set) var byteCount = 0
    /// Names of the members deferred to, by index (a handful: one per live member).
    private(set) var names: [[UInt8]] = []

    var isEmpty: Bool { count == 0 }

    /// The index of `name` in the member table, added on first sight.
    mutating func memberIndex(of name: [UInt8]) -> Int {
        if let index = names.firstIndex(of: name) { return index }
        names.append(name)
        return names.count - 1
    }

    mutating func add(_ source: EventSet, _ index: Int, member: Int, view: UInt64, now: UInt64) {
        if chunks.last.map({ $0.view != view || $0.since != now }) ?? true {
            chunks.append(Chunk(events: spare.take(), view: view, since: now))
        }
        let before = chunks[chunks.count - 1].events.byteCount
        chunks[chunks.count - 1].events.append(source, index)
        chunks[chunks.count - 1].members.append(member)
        count += 1
        byteCount += chunks[chunks.count - 1].events.byteCount - before
    }

    enum Verdict {
        case hold, finished
        /// Its member cannot vouch for it (another view, never received).
        case claim
        /// Its member is gone, or had it for longer than a claim lives.
        case takeOver
    }

    /// Hands each event `decide` does not hold to `removed` with the verdict, and keeps
    /// the rest.
    mutating func sweep(_ decide: (_ seq: UInt64, _ member: Int, _ view: UInt64, _ since: UInt64) -> Verdict,
                        removed: (EventSet, Int, Verdict) -> Void) {
        var kept: [Chunk] = []
        kept.reserveCapacity(chunks.count)
        for index in chunks.indices {
            // Moved out, not copied, so its storage can go back to the pool unshared.
            var chunk = Chunk(view: 0, since: 0)
            swap(&chunk, &chunks[index])
            verdicts.removeAll(keepingCapacity: true)
            var holding = 0
            for i in 0..<chunk.events.count {
                let verdict = decide(chunk.events.seqs[i], chunk.members[i], chunk.view, chunk.since)
                if verdict == .hold { holding += 1 }
                verdicts.append(verdict)
            }
            if holding == chunk.events.count {
                kept.append(chunk)
                continue
            }
            if holding > 0 {
                var rest = Chunk(events: spare.take(), view: chunk.view, since: chunk.since)
                for i in 0..<chunk.events.count where verdicts[i] == .hold {
                    rest.events.append(chunk.events, i)
                    rest.members.append(chunk.members[i])
                }
                kept.append(rest)
            }
            for i in 0..<chunk.events.count where verdicts[i] != .hold {
                removed(chunk.events, i, verdicts[i])
            }
            spare.give(&chunk.events)
        }
        chunks = kept
        count = chunks.reduce(0) { $0 + $1.events.count }
        byteCount = chunks.reduce(0) { $0 + $1.events.byteCount }
        if chunks.isEmpty { names.removeAll() }
    }
}
