/// What a listener publishes about itself in `{dedup}:member:<name>` (a key that expires
/// after `LOCK_TTL_MS` unless renewed), and the proof another listener reads from it.
///
/// One member claims (see `MemberView`); the others hold the seqs until the claimer's
/// state proves them finished. The state says: on `stream`, this member received every
/// seq in (`from`, `through`], and every event among them that it classified as its own
/// is finished (stored, dead-lettered, or known done). Which events were its own depends
/// on whether it was the claimer, so the state lists its recent epochs (newest first),
/// each with the first seq it applied to and whether it claimed in it. A holder trusts
/// the proof only for seqs the member received in an epoch in which it claimed: it
/// claimed every one of them. Anything else (it did not claim then, never received the
/// seq, is gone) and the holder claims the event itself, which is always safe (`SET NX`
/// decides). Holders keep only the seqs (`HeldRanges`): to claim an event after all, a
/// holder asks the producer for it again (see `DedupEngine.rewind`).
///
/// Only *active* members count: a member says it is active while its producer link is
/// up and it is not far behind the others (`highest`, the highest seq it received). A
/// listener resuming from far back, or cut off from the producer, is never the claimer
/// until it has caught up, so it never makes the others wait for it. `activeSince` (when
/// it last started taking part, in milliseconds since the Unix epoch) picks the claimer:
/// the member taking part longest.
struct MemberState: Equatable {
    struct Epoch: Equatable {
        /// The first seq classified in it.
        var start: UInt64
        /// Whether the member claimed every event it received in it.
        var claims: Bool
    }

    var stream: String
    var active: Bool
    var from: UInt64
    var through: UInt64
    var highest: UInt64
    var activeSince: UInt64
    var epochs: [Epoch]

    /// What the state says about events the reader held for this member.
    enum Proof: Equatable {
        /// Finished by that member (or known done to it).
        case finished
        /// Claimed by it in the epoch, not finished yet.
        case pending
        /// No proof either way: it did not claim then, or never received them in this life.
        case unknown
    }

    func proof(seq: UInt64) -> Proof { proof(seqs: seq...seq) }

    /// The first seq from which the state vouches for every seq it receives: the start of
    /// its current run of epochs in which it claims (after `from`); nil when it does not
    /// claim now.
    var vouchesFrom: UInt64? {
        var start: UInt64?
        for epoch in epochs {
            guard epoch.claims else { break }
            start = epoch.start
        }
        return start.map { max($0, from + 1) }
    }

    /// What the state says of every event in `seqs`, asked once for the range: `finished`
    /// only if it is of every one of them, `unknown` if it is of any (`pending` otherwise).
    func proof(seqs: ClosedRange<UInt64>) -> Proof {
        guard seqs.lowerBound > from else { return .unknown }
        // Every epoch overlapping the range must be one in which it claimed.
        var covered = false
        for epoch in epochs where epoch.start <= seqs.upperBound {
            guard epoch.claims else { return .unknown }
            if epoch.start <= seqs.lowerBound {
                covered = true
                break
            }
        }
        guard covered else { return .unknown }
        if seqs.upperBound <= through { return .finished }
        // Not received, and not about to be: it took itself out (its producer link is down,
        // or it fell far behind).
        return !active && seqs.upperBound > highest ? .unknown : .pending
    }

    /// `2|<active 0/1>|<from>|<through>|<highest>|<activeSince>|<start>[c],...|<stream>` (`c`
    /// marks an epoch in which it claimed; the stream last: it may hold any character).
    var encoded: [UInt8] {
        let epochText = epochs.map { String($0.start) + ($0.claims ? "c" : "") }.joined(separator: ",")
        return Array("2|\(active ? 1 : 0)|\(from)|\(through)|\(highest)|\(activeSince)|\(epochText)|\(stream)".utf8)
    }

    init(stream: String, active: Bool = true, from: UInt64, through: UInt64, highest: UInt64? = nil, activeSince: UInt64 = 0,
         epochs: [Epoch]) {
        self.stream = stream
        self.active = active
        self.from = from
        self.through = through
        self.highest = highest ?? through
        self.activeSince = activeSince
        self.epochs = epochs
    }

    /// Parses `encoded`; nil for anything else (another version, garbage).
    init?(parsing bytes: [UInt8]) {
        let parts = bytes.split(separator: UInt8(ascii: "|"), maxSplits: 7, omittingEmptySubsequences: false)
        func number(_ index: Int) -> UInt64? { UInt64(String(decoding: parts[index], as: UTF8.self)) }
        guard parts.count == 8, parts[0].elementsEqual("2".utf8), let active = number(1), active <= 1,
              let from = number(2), let through = number(3), let highest = number(4), let activeSince = number(5) else { return nil }
        var epochs: [Epoch] = []
        for item in parts[6].split(separator: UInt8(ascii: ",")) {
            let claims = item.last == UInt8(ascii: "c")
            guard let start = UInt64(String(decoding: claims ? item.dropLast() : item, as: UTF8.self)) else { return nil }
            epochs.append(Epoch(start: start, claims: claims))
        }
        self.init(stream: String(decoding: parts[7], as: UTF8.self), active: active == 1, from: from, through: through,
                  highest: highest, activeSince: activeSince, epochs: epochs)
    }
}
