import Reactor

/// Events this instance claimed, through processing, storing and marking done.
final class WorkBatch {
    enum Stage { case processing, storing, marking, done }
    let events: EventSet
    let minSeq: UInt64
    var stage = Stage.processing
    var attempts = 0
    var released = false
    var extendTimer: TimerHandle?

    init(events: EventSet) {
        self.events = events
        minSeq = events.seqs.min() ?? 0
    }
}
