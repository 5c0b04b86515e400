import Reactor

/// This listener's membership: its name, the stream it reads, the live members it last
/// read from Redis, its current view of them (and so the claimer), and its epochs: the
/// seqs from which it claimed or held.
///
/// Keys (one hash tag, so a cluster keeps them in one slot): `{dedup}:members`, a set of
/// names, and `{dedup}:member:<name>`, each member's `MemberState`, renewed while it lives
/// and expiring `LOCK_TTL_MS` after it stops (so a member paused or cut off for as long as
/// a claim lives loses its part, exactly as it would lose its claims).
struct Membership {
    static let setKey: [UInt8] = Array("{dedup}:members".utf8)
    static func key(_ name: [UInt8]) -> [UInt8] { Array("{dedup}:member:".utf8) + name }

    /// `<instance>|<run>`: one process life.
    let me: [UInt8]
    private let instance: [UInt8]
    /// When we last started taking part (milliseconds since the Unix epoch; 0 while we
    /// do not): the member taking part longest claims, so one coming back never takes
    /// the claims over.
    private(set) var activeSince: UInt64 = 0
    /// The producer's stream; empty when unknown (nobody is held for then: we claim all).
    private(set) var stream = ""
    private(set) var view: MemberView
    /// Our index in `view`; nil while we take no part (inactive, see `MemberState`).
    private(set) var meIndex: Int? = 0
    /// Whether we take part: our producer link is up and we are not far behind.
    private(set) var active = false
    /// Our producer link (set by the link).
    var linkUp = false
    /// How far behind the most advanced active member, in seqs, we may be to join, and to
    /// stay (apart, so a member near the line does not flap in and out).
    let joinLag: UInt64
    let leaveLag: UInt64
    /// Live members' states as last read (without ours).
    private(set) var peers: [[UInt8]: MemberState] = [:]
    /// Our epochs, newest first: the first seq classified in each, and whether we claimed.
    private(set) var epochs: [MemberState.Epoch] = []
    private static let epochsKept = 4

    init(instance: String, run: String, joinLag: UInt64 = 4_096, leaveLag: UInt64 = 65_536) {
        me = Array("\(instance)|\(run)".utf8)
        self.instance = Array(instance.utf8)
        view = MemberView(names: [me])
        self.joinLag = joinLag
        self.leaveLag = leaveLag
    }

    /// Whether `name` is another life of this instance (runs never contain `|`).
    func isFormerLife(_ name: [UInt8]) -> Bool {
        guard name != me, let bar = name.lastIndex(of: UInt8(ascii: "|")) else { return false }
        return name[..<bar].elementsEqual(instance)
    }

    /// Milliseconds since the Unix epoch.
    static func now() -> UInt64 { UInt64(max(WallClock.unixMillis(), 0)) }

    /// Whether we claim what we receive (else we hold it for the claimer).
    var claims: Bool { meIndex == view.claimer }

    /// Whether other members take part (else every event is ours to claim).
    var isSharing: Bool { view.names.count > 1 || meIndex == nil }

    /// The producer's stream changed (or became known); `nextSeq` is the first seq
    /// classified from now on.
    mutating func setStream(_ stream: String, nextSeq: UInt64, highest: UInt64, now: UInt64 = Membership.now()) {
        guard stream != self.stream else { return }
        self.stream = stream
        epochs.removeAll()
        updateView(nextSeq: nextSeq, highest: highest, now: now)
    }

    /// The live members' states just read; `highest` is the highest seq we received.
    mutating func observe(_ states: [[UInt8]: MemberState], nextSeq: UInt64, highest: UInt64, now: UInt64 = Membership.now()) {
        peers = states
        updateView(nextSeq: nextSeq, highest: highest, now: now)
    }

    private mutating func updateView(nextSeq: UInt64, highest: UInt64, now: UInt64) {
        var names: [[UInt8]] = []
        var started: [[UInt8]: UInt64] = [:]
        var ahead: UInt64 = 0
        if !stream.isEmpty {
            for (name, state) in peers where state.stream == stream && state.active && name != me {
                names.append(name)
                started[name] = state.activeSince
                ahead = max(ahead, state.highest)
            }
        }
        let lag = ahead > highest ? ahead - highest : 0
        let wasActive = active
        active = linkUp && (names.isEmpty || lag <= (active ? leaveLag : joinLag))
        if active && !wasActive { activeSince = now } else if !active { activeSince = 0 }
        started[me] = activeSince
        // Alone and inactive (our link is down): what we hold is ours to claim.
        if active || names.isEmpty { names.append(me) }
        let next = MemberView(names: names, started: started)
        meIndex = next.names.firstIndex(of: me)
        let claimsNext = meIndex == next.claimer
        view = next
        guard epochs.isEmpty || epochs[0].claims != claimsNext else { return }
        // An epoch that starts where the new one does never classified anything.
        epochs.removeAll { $0.start >= nextSeq }
        epochs.insert(MemberState.Epoch(start: nextSeq, claims: claimsNext), at: 0)
        if epochs.count > Self.epochsKept { epochs.removeLast() }
    }

    /// Our view is stale (not updated for long): we publish that we take no part until
    /// the next `observe` says again. The view and epochs stay as they are.
    mutating func goStale() {
        active = false
        activeSince = 0
    }

    /// What we publish: every event we received in (`from`, `through`] and classified as
    /// ours is finished.
    func state(from: UInt64, through: UInt64, highest: UInt64) -> MemberState {
        MemberState(stream: stream, active: active, from: from, through: max(from, through), highest: highest,
                    activeSince: activeSince, epochs: epochs)
    }
}
