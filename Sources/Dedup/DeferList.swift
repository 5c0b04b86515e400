/// Events that rendezvous hashing gave to another member: held (with their payloads, in
/// case this instance must claim them after all) until that member's state proves them
/// finished, or until it cannot (it left, it classified them under another view, it did
/// not finish them within a claim's lifetime), when this instance claims them itself.
struct DeferList {
    private(set) var events = EventSet()
    private(set) var members: [Int] = []
    private(set) var views: [UInt64] = []
    private(set) var since: [UInt64] = []
    /// Names of the members deferred to, by index (a handful: one per live member).
    private(set) var names: [[UInt8]] = []

    var count: Int { events.count }
    var isEmpty: Bool { events.isEmpty }
    var byteCount: Int { events.byteCount }

    /// The index of `name` in the member table, added on first sight.
    mutating func memberIndex(of name: [UInt8]) -> Int {
        if let index = names.firstIndex(of: name) { return index }
        names.append(name)
        return names.count - 1
    }

    mutating func add(_ source: EventSet, _ index: Int, member: Int, view: UInt64, now: UInt64) {
        events.append(source, index)
        members.append(member)
        views.append(view)
        since.append(now)
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
        var kept = EventSet()
        var keptMembers: [Int] = [], keptViews: [UInt64] = [], keptSince: [UInt64] = []
        var removedAny = false
        for i in 0..<events.count {
            let verdict = decide(events.seqs[i], members[i], views[i], since[i])
            switch verdict {
            case .hold:
                // Nothing removed so far: the kept part is a prefix, copied only if needed.
                if !removedAny { continue }
                kept.append(events, i)
                keptMembers.append(members[i])
                keptViews.append(views[i])
                keptSince.append(since[i])
            case .finished, .claim, .takeOver:
                if !removedAny {
                    removedAny = true
                    kept.append(events, 0..<i)
                    keptMembers = Array(members[0..<i])
                    keptViews = Array(views[0..<i])
                    keptSince = Array(since[0..<i])
                }
                removed(events, i, verdict)
            }
        }
        guard removedAny else { return }
        events = kept
        members = keptMembers
        views = keptViews
        since = keptSince
        if events.isEmpty { names.removeAll() }
    }
}
