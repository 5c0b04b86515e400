/// What this listener holds for the claimer (see `MemberView`): the seqs it receives,
/// kept as ranges, not as events. The producer's log has the events: if
/// a member cannot vouch for a range in time, this listener rewinds its stream to before
/// the range and claims every event it is sent again (see `DedupEngine.rewind`).
///
/// One range per classification turn (one view, one arrival time), holding the seqs of
/// that turn that went to other members, and which members (bit per member index; a set
/// past 64). Members finish their events roughly in seq order, so a sweep
/// asks each member once per range, never per event. Until a range is settled, the
/// watermark this listener saves stays below it.
package struct HeldRanges {
    private struct Range {
        let view: UInt64
        let since: UInt64
        var lowest = UInt64.max
        var highest: UInt64 = 0
        var count = 0
        var memberBits: UInt64 = 0
        var moreMembers: Set<Int> = []
    }

    private var ranges: [Range] = []
    /// Seqs held and not settled.
    package private(set) var count = 0
    /// Names of the members held for, by index (a handful: one per live member).
    private(set) var names: [[UInt8]] = []

    package var isEmpty: Bool { ranges.isEmpty }

    package init() {}

    /// The lowest seq held (ranges are added in seq order).
    package var lowest: UInt64? { ranges.first?.lowest }

    /// The index of `name` in the member table, added on first sight.
    package mutating func memberIndex(of name: [UInt8]) -> Int {
        if let index = names.firstIndex(of: name) { return index }
        names.append(name)
        return names.count - 1
    }

    /// Holds `seq` for `member`, as classified under `view` at `now`.
    package mutating func add(seq: UInt64, member: Int, view: UInt64, now: UInt64) {
        // Fields written in place: `ranges.last` would copy the range.
        var last = ranges.count - 1
        if last < 0 || ranges[last].view != view || ranges[last].since != now {
            ranges.append(Range(view: view, since: now))
            last += 1
        }
        ranges[last].lowest = min(ranges[last].lowest, seq)
        ranges[last].highest = max(ranges[last].highest, seq)
        ranges[last].count += 1
        if member < 64 { ranges[last].memberBits |= 1 << UInt64(member) } else { ranges[last].moreMembers.insert(member) }
        count += 1
    }

    /// What a member's state says of the seqs a range holds for it.
    package enum Verdict {
        /// It finished them all: the range is settled for it.
        case finished
        /// It still has some of them in hand, in time.
        case hold
        /// It cannot vouch for them (gone, another view, never received them, or not
        /// finished within a claim's lifetime): they must be claimed here.
        case recover
    }

    /// Drops the ranges every member they hold seqs for proves finished (`judge`, asked
    /// once per member per range). Returns the lowest seq of the ranges some member
    /// cannot vouch for (nil when none), all of which are kept: the caller rewinds.
    package mutating func sweep(_ judge: (_ member: Int, _ view: UInt64, _ since: UInt64, _ seqs: ClosedRange<UInt64>) -> Verdict) -> UInt64? {
        var kept: [Range] = []
        kept.reserveCapacity(ranges.count)
        var recoverFrom: UInt64?
        for range in ranges {
            var all = Verdict.finished
            func ask(_ member: Int) -> Bool {
                switch judge(member, range.view, range.since, range.lowest...range.highest) {
                case .finished: return true
                case .hold: all = .hold; return true
                case .recover: all = .recover; return false
                }
            }
            members: do {
                for member in Self.members(range.memberBits) where !ask(member) { break members }
                for member in range.moreMembers where !ask(member) { break members }
            }
            switch all {
            case .finished:
                count -= range.count
            case .hold:
                kept.append(range)
            case .recover:
                kept.append(range)
                recoverFrom = min(recoverFrom ?? .max, range.lowest)
            }
        }
        ranges = kept
        if ranges.isEmpty { names.removeAll() }
        return recoverFrom
    }

    /// Forgets every range (a rewind asks for their seqs again; a restarted numbering
    /// makes them meaningless).
    package mutating func removeAll() {
        ranges.removeAll(keepingCapacity: true)
        names.removeAll()
        count = 0
    }

    /// The member indexes set in `bits`.
    private static func members(_ bits: UInt64) -> UnfoldSequence<Int, UInt64> {
        sequence(state: bits) { rest -> Int? in
            guard rest != 0 else { return nil }
            let member = rest.trailingZeroBitCount
            rest &= rest &- 1
            return member
        }
    }
}
