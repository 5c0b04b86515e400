import Reactor

/// One pipelined round of claims under one claim value, and its answers.
final class ClaimRound: RedisClaimSink {
    /// An answer, reduced to what resolving the round needs (the holder's bytes are valid
    /// only during the callback; an owner index allocates nothing per event).
    enum Outcome { case pending, ours, duplicate(holder: Int), watch(owner: Int), unanswered }
    let events: EventSet
    /// The value every SET of the round writes.
    let claim: [UInt8]
    /// A takeover of events another owner held (counted as recovered when won).
    let recovery: Bool
    /// Set while the round is in flight (a cycle the last answer breaks).
    var engine: DedupEngine?
    var outcomes: [Outcome]
    var remaining: Int

    init(events: EventSet, claim: [UInt8], recovery: Bool) {
        self.events = events
        self.claim = claim
        self.recovery = recovery
        outcomes = Array(repeating: .pending, count: events.count)
        remaining = events.count
    }

    var minSeq: UInt64 { events.seqs.min() ?? .max }

    func redisClaim(_ index: Int, claimed: Bool, holder: UnsafeRawBufferPointer?, error: RedisError?) {
        guard let engine else { return }
        if remaining == 1 { self.engine = nil }
        engine.claimAnswered(self, index, claimed: claimed, holder: holder, error: error)
    }
}
