/// Emptied event sets kept with their capacity for the next stage that needs one.
///
/// Every loop turn moves events through a few sets (received, our share, claimed,
/// stored). Fresh sets grow by doubling, and the heap's top, trimmed each time a batch is
/// freed, is faulted in again page by page: a quarter of a listener's CPU in `perf` went to
/// those faults and copies. A handful of sets reused in turn keeps the same pages hot.
struct EventSetPool {
    private var spare: [EventSet] = []
    /// Sets kept at most; more are freed.
    var limit = 2
    /// A set whose bytes grew beyond this is freed rather than kept, so one huge frame
    /// does not pin its memory.
    var maxBytes = 256 << 10

    /// An empty set, with capacity when one was given back.
    mutating func take() -> EventSet {
        spare.popLast() ?? EventSet()
    }

    /// Takes `set`'s storage, leaving it empty. Pass a set nothing else refers to: a
    /// shared one would be copied when emptied.
    mutating func give(_ set: inout EventSet) {
        var taken = EventSet()
        swap(&taken, &set)
        guard spare.count < limit, taken.byteCapacity > 0, taken.byteCapacity <= maxBytes else { return }
        taken.removeAll()
        taken.generation = 0
        spare.append(taken)
    }
}
