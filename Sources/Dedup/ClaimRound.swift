import Reactor

/// One pipelined round of claims under one claim value, and its answers.
final class ClaimRound: RedisReplySink {
    /// An answer, reduced to what resolving the round needs (the holder's bytes are valid
    /// only during the callback; an owner index allocates nothing per event).
    enum Outcome {
        case pending, ours, duplicate(holder: Int), watch(owner: Int)
        /// No verdict: retried. `mayHaveRun` unless Redis refused the SET itself (an error
        /// reply such as OOM or CLUSTERDOWN) or it was never sent, when it surely did not run.
        case unanswered(mayHaveRun: Bool)
    }
    /// Emptied when the round is resolved (its storage goes on to the next stage).
    var events: EventSet
    /// The value every SET of the round writes.
    let claim: [UInt8]
    /// Why the round claims its events.
    enum Kind {
        /// Events received and classified as ours, in seq order under the live value.
        case live
        /// A takeover of events another owner claimed and did not finish (counted as
        /// recovered when won).
        case takeover
        /// Events a rewind asked for again (held for a member that could not show them
        /// finished): older than what the live value's progress mark may have passed.
        case rewound
    }
    let kind: Kind
    /// Set while the round is in flight (a cycle the last answer breaks).
    var engine: DedupEngine?
    var outcomes: [Outcome]
    var remaining: Int

    init(events: EventSet, claim: [UInt8], kind: Kind) {
        self.events = events
        self.claim = claim
        self.kind = kind
        outcomes = Array(repeating: .pending, count: events.count)
        remaining = events.count
    }

    var minSeq: UInt64 { events.seqs.min() ?? .max }

    /// `SET NX GET` answered: null or a status means the key was free and is ours now; a
    /// string is the value that holds it.
    func redisReply(_ index: Int, _ reply: RedisReplyView?, error: RedisError?) {
        guard let engine else { return }
        if remaining == 1 { self.engine = nil }
        switch reply?.kind {
        case .null, .status: engine.claimAnswered(self, index, claimed: true, holder: nil)
        case .string: engine.claimAnswered(self, index, claimed: false, holder: reply!.bytes)
        default: engine.claimUnanswered(self, index, mayHaveRun: error?.commandMayHaveRun ?? true)
        }
    }
}
