/// Events another instance claimed: kept (with their payloads, in case this instance must
/// take over) until the owner's progress mark says it finished them, or until the claim
/// could have expired, when this instance tries to claim them again. Holds only events
/// whose owner has not finished yet, never rate x TTL.
struct WatchList {
    private(set) var events = EventSet()
    private(set) var owners: [Int] = []
    private(set) var since: [UInt64] = []
    /// Claim values of the owners seen, by index; with their last progress mark.
    private(set) var ownerClaims: [[UInt8]] = []
    private var ownerIndex: [[UInt8]: Int] = [:]
    var progress: [UInt64] = []

    var count: Int { events.count }
    var isEmpty: Bool { events.isEmpty }

    mutating func add(_ source: EventSet, _ index: Int, owner claim: [UInt8], now: UInt64) {
        let owner: Int
        // Consecutive events mostly share an owner: compare before hashing.
        if let last = owners.last, ownerClaims[last] == claim {
            owner = last
        } else if let known = ownerIndex[claim] {
            owner = known
        } else {
            owner = ownerClaims.count
            ownerIndex[claim] = owner
            ownerClaims.append(claim)
            progress.append(0)
        }
        events.append(source, index)
        owners.append(owner)
        since.append(now)
    }

    /// Owners with at least one watched event (indexes into `ownerClaims`).
    var activeOwners: [Int] { Array(Set(owners)).sorted() }

    /// Removes the events `keep` rejects, handing each to `removed(events, index)`.
    mutating func filter(keep: (_ seq: UInt64, _ owner: Int, _ since: UInt64) -> Bool, removed: (EventSet, Int, _ owner: Int) -> Void) {
        var kept = EventSet()
        var keptOwners: [Int] = []
        var keptSince: [UInt64] = []
        for i in 0..<events.count {
            if keep(events.seqs[i], owners[i], since[i]) {
                kept.append(events, i)
                keptOwners.append(owners[i])
                keptSince.append(since[i])
            } else {
                removed(events, i, owners[i])
            }
        }
        events = kept
        owners = keptOwners
        since = keptSince
        if events.isEmpty && ownerClaims.count > 64 {
            ownerClaims.removeAll()
            ownerIndex.removeAll()
            progress.removeAll()
        }
    }
}
