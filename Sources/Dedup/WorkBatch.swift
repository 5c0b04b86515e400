import Reactor

/// Events this instance claimed under one claim value, through processing, storing
/// (split when PostgreSQL refuses part of it), dead-lettering and marking done. Its stage
/// moves only through `EventStage.next`.
final class WorkBatch {
    /// Emptied once the batch is finished (its storage is reused).
    var events: EventSet
    /// The claim value its events' keys hold.
    let claim: [UInt8]
    let minSeq: UInt64
    private(set) var stage = EventStage.processing
    /// What is left to insert.
    var plan: InsertPlan
    /// Retries of its insert, dead letter or done mark: 100 ms doubling to 2 s.
    var retry = Backoff(initial: .milliseconds(100), maximum: .seconds(2))
    var extendTimer: TimerHandle?
    /// Whole and never tried: it may share one insert statement with other batches.
    var joinsOthers = true

    init(events: EventSet, claim: [UInt8]) {
        self.events = events
        self.claim = claim
        minSeq = events.seqs.min() ?? 0
        plan = InsertPlan(count: events.count)
    }

    func advance(_ input: EventStage.Input) { stage = stage.next(input) }

    /// Claimed and not yet stored: its claims are kept alive and block our progress mark.
    var holdsClaims: Bool {
        stage == .processing || stage == .storing || stage == .deadLettering
    }

    var released: Bool { stage == .released }
}
