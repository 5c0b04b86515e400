import Reactor

/// One pipelined round of claims and its outcomes.
final class ClaimRound: RedisClaimSink {
    enum Outcome { case pending, claimed, held(Int), failed }
    let events: EventSet
    /// Set while the round is in flight (a cycle the last answer breaks).
    var engine: DedupEngine?
    let recovery: Bool
    var outcomes: [Outcome]
    var remaining: Int

    init(events: EventSet, recovery: Bool) {
        self.events = events
        self.recovery = recovery
        outcomes = Array(repeating: .pending, count: events.count)
        remaining = events.count
    }

    func redisClaim(_ index: Int, claimed: Bool, holder: UnsafeRawBufferPointer?, error: RedisError?) {
        guard let engine else { return }
        if remaining == 1 { self.engine = nil }
        engine.claimAnswered(self, index, claimed: claimed, holder: holder, error: error)
    }
}
