/// Events another instance claimed: kept (with their payloads, in case this instance must
/// take over) until the owner's progress mark *for the claim value that holds them* says
/// it finished them, or until the claim could have expired or the owner released it, when
/// this instance tries to claim them again. A mark is read per owner claim value, never
/// per event, and only ever grows for one value (see `ClaimValues`), so keeping the
/// highest one read is safe. Holds only events whose owner has not finished yet.
struct WatchList {
    private(set) var events = EventSet()
    private(set) var owners: [Int] = []
    private(set) var since: [UInt64] = []
    /// Values of the holders seen (claims and done markers), by index; with the progress
    /// mark last read for each.
    private(set) var ownerClaims: [[UInt8]] = []
    private var lastOwner: Int?
    var progress: [UInt64] = []
    /// Owners that gave their claims back (their progress key says "released").
    var released: [Bool] = []

    var count: Int { events.count }
    var isEmpty: Bool { events.isEmpty }

    /// The index of a holder value (a claim or a done marker) in the owner table, added on
    /// first sight. A linear scan: there are as many owners as instance runs, a handful,
    /// and comparing bytes in place allocates nothing per event.
    mutating func ownerIndex(of holder: UnsafeRawBufferPointer) -> Int {
        if let last = lastOwner, ownerClaims[last].elementsEqual(holder) { return last }
        for (index, claim) in ownerClaims.enumerated() where claim.elementsEqual(holder) {
            lastOwner = index
            return index
        }
        ownerClaims.append(Array(holder))
        progress.append(0)
        released.append(false)
        lastOwner = ownerClaims.count - 1
        return ownerClaims.count - 1
    }

    mutating func add(_ source: EventSet, _ index: Int, owner: Int, now: UInt64) {
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
    }

    /// Every recovery round adds a claim value; with nothing watched and no claim answer
    /// waiting to be resolved (which may name an owner index), the table starts over.
    mutating func forgetOwners() {
        ownerClaims.removeAll()
        progress.removeAll()
        released.removeAll()
        lastOwner = nil
    }

    /// Event bytes held (what MAX_IN_FLIGHT_BYTES bounds).
    var byteCount: Int { events.byteCount }
}
