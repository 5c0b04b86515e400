/// What a listener publishes about itself in `{dedup}:member:<name>` (a key that expires
/// after `LOCK_TTL_MS` unless renewed), and the proof another listener reads from it.
///
/// A listener claims only the events that rendezvous hashing gives it under its current
/// view of the live members; the others hold the rest until the preferred member's state
/// proves them finished. The state says: on `stream`, this member received every seq in
/// (`from`, `through`], and every event among them that it classified as its own is
/// finished (stored, dead-lettered, or known done). Which events were its own depends on
/// the view it classified them under, so the state lists its recent views with the first
/// seq each applied to (`epochs`, newest first). A holder trusts the proof only for an
/// event it classified under the very same view, so both computed the same preferred
/// member; anything else (another view, a seq the member never received, a member gone)
/// and the holder claims the event itself, which is always safe (`SET NX` decides).
///
/// Only *active* members are given a share: a member says it is active while its
/// producer link is up and it is not far behind the others (`highest`, the highest seq
/// it received). A listener resuming from far back, or cut off from the producer, takes
/// no share until it has caught up, so it never makes the others wait for it.
struct MemberState: Equatable {
    struct Epoch: Equatable {
        /// The hash of the view (see `MemberView`).
        var view: UInt64
        /// The first seq classified under it.
        var start: UInt64
    }

    var stream: String
    var active: Bool
    var from: UInt64
    var through: UInt64
    var highest: UInt64
    var epochs: [Epoch]

    /// What the state says about an event with `seq` that the reader classified as this
    /// member's under `view`.
    enum Proof: Equatable {
        /// Finished by that member (or known done to it).
        case finished
        /// Its own under the same view, not finished yet.
        case pending
        /// No proof either way: it classified the event under another view, or never
        /// received it in this life.
        case unknown
    }

    func proof(seq: UInt64, view: UInt64) -> Proof {
        guard seq > from, let epoch = epochs.first(where: { $0.start <= seq }), epoch.view == view else { return .unknown }
        if seq <= through { return .finished }
        // Not received, and not about to be: it took itself out (its producer link is down,
        // or it fell far behind).
        return !active && seq > highest ? .unknown : .pending
    }

    /// Whether the state proves finished every event in `seqs` that the reader classified
    /// as this member's under `view`: what `proof` says of each seq, asked once for the
    /// range (one epoch covering all of it, and all of it received and finished).
    func provesFinished(_ seqs: ClosedRange<UInt64>, view: UInt64) -> Bool {
        guard seqs.lowerBound > from, seqs.upperBound <= through,
              let epoch = epochs.first(where: { $0.start <= seqs.upperBound }) else { return false }
        return epoch.view == view && epoch.start <= seqs.lowerBound
    }

    /// Whether the state shows every event in `seqs` that the reader classified as this
    /// member's under `view` still its own to finish: what `proof` says of each seq
    /// (`pending`), asked once for the range.
    func provesPending(_ seqs: ClosedRange<UInt64>, view: UInt64) -> Bool {
        guard seqs.lowerBound > from, seqs.lowerBound > through, active || seqs.upperBound <= highest,
              let epoch = epochs.first(where: { $0.start <= seqs.upperBound }) else { return false }
        return epoch.view == view && epoch.start <= seqs.lowerBound
    }

    /// `1|<active 0/1>|<from>|<through>|<highest>|<view hex>:<start>,...|<stream>` (the
    /// stream last: it may hold any character).
    var encoded: [UInt8] {
        let epochText = epochs.map { String($0.view, radix: 16) + ":" + String($0.start) }.joined(separator: ",")
        return Array("1|\(active ? 1 : 0)|\(from)|\(through)|\(highest)|\(epochText)|\(stream)".utf8)
    }

    init(stream: String, active: Bool = true, from: UInt64, through: UInt64, highest: UInt64? = nil, epochs: [Epoch]) {
        self.stream = stream
        self.active = active
        self.from = from
        self.through = through
        self.highest = highest ?? through
        self.epochs = epochs
    }

    /// Parses `encoded`; nil for anything else (another version, garbage).
    init?(parsing bytes: [UInt8]) {
        let parts = bytes.split(separator: UInt8(ascii: "|"), maxSplits: 6, omittingEmptySubsequences: false)
        func number(_ index: Int) -> UInt64? { UInt64(String(decoding: parts[index], as: UTF8.self)) }
        guard parts.count == 7, parts[0].elementsEqual("1".utf8), let active = number(1), active <= 1,
              let from = number(2), let through = number(3), let highest = number(4) else { return nil }
        var epochs: [Epoch] = []
        for item in parts[5].split(separator: UInt8(ascii: ",")) {
            let pair = item.split(separator: UInt8(ascii: ":"))
            guard pair.count == 2, let view = UInt64(String(decoding: pair[0], as: UTF8.self), radix: 16),
                  let start = UInt64(String(decoding: pair[1], as: UTF8.self)) else { return nil }
            epochs.append(Epoch(view: view, start: start))
        }
        self.init(stream: String(decoding: parts[6], as: UTF8.self), active: active == 1, from: from, through: through,
                  highest: highest, epochs: epochs)
    }
}
