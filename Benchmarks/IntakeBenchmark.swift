import Dedup

/// A listener's intake of the producer's frames while 4 members share claims, without
/// Redis or PostgreSQL: each line's head is read and its id hashed over the members;
/// the 3 lines in 4 held for another member are kept, then swept once their member shows
/// them finished, and the listener's own lines are parsed in full. What every member
/// spends on every event, so what adding listeners costs per event beyond the broadcast.
///
/// Register it with `MicroSuite(name: "intake", run: runIntakeBenchmark)`.
func runIntakeBenchmark(quick: Bool) -> SuiteResult {
    let linesPerFrame = 1_300
    let names = ["listener-a", "listener-b", "listener-c", "listener-d"].map { Array($0.utf8) }
    let view = MemberView(names: names)
    let me = view.names.firstIndex(of: names[0])!
    let seconds = quick ? 0.5 : 3.0

    // Frames as the producer writes them: 100-byte payloads, ids without padding; built
    // once, read again and again (the numbering starts over with each pass over them).
    let pad = String(repeating: "x", count: 80)
    var frames: [[UInt8]] = []
    var seq: UInt64 = 0
    for _ in 0..<40 {
        var frame: [UInt8] = []
        for _ in 0..<linesPerFrame {
            seq += 1
            frame.append(contentsOf: #"{"seq":\#(seq),"ts":1764500000000,"event_id":"e2e-1-\#(seq)","payload":{"t":1764500000000000000,"pad":"\#(pad)"}}"#.utf8)
            frame.append(0x0A)
        }
        frames.append(frame)
    }
    var tracker = SeqTracker(watermark: 0)
    var deferred = DeferList()
    // The listener looks each member's index up once per frame, not per line.
    let slots = view.names.map { deferred.memberIndex(of: $0) }
    var own = EventSet()
    var scratch: [UInt8] = []
    var held = 0
    var lines = 0
    var next = 0
    let live = LiveRate("intake, 4 members", unit: "lines")
    let start = monotonicSeconds()
    while monotonicSeconds() - start < seconds {
        if next == frames.count {
            next = 0
            tracker = SeqTracker(watermark: 0)
        }
        let frame = frames[next]
        next += 1
        let now = UInt64(next)
        frame.withUnsafeBytes { raw in
            StreamLineParser.forEachLine(raw) { line, number in
                lines += 1
                if let head = StreamLineParser.head(of: line) {
                    let id = UnsafeRawBufferPointer(rebasing: line[head.id])
                    let preferred = view.preferred(for: id)
                    if preferred != me {
                        guard tracker.received(head.seq) else { return }
                        held += 1
                        deferred.addLine(seq: head.seq, id: id, rest: UnsafeRawBufferPointer(rebasing: line[head.id.upperBound...]),
                                         generation: 0, acceptedAt: head.acceptedAt,
                                         member: slots[preferred], view: view.hash, now: now)
                        return
                    }
                }
                _ = StreamLineParser.parseLine(line, number: number, into: &own, scratch: &scratch)
                if let last = own.seqs.last, tracker.received(last) {
                    tracker.finished(last, generation: 0)
                }
            }
        }
        own.removeAll()
        // Every member finished everything it was sent: the common sweep.
        deferred.sweep({ _, _, _, _ in .finished }, whole: { _, _, _, _ in .finished },
                       finished: { events in tracker.finished(all: events) },
                       removed: { events, i, _ in tracker.finished(events.seqs[i], generation: 0) })
        live.update(lines)
    }
    let rate = live.finish(lines)
    precondition(deferred.isEmpty && held > lines / 2, "the sweep left events held, or hashing held too few")
    return SuiteResult(name: "intake", figures: [
        ("lines_per_sec", rate),
        ("ns_per_line", rate > 0 ? 1e9 / rate : 0),
        ("held_fraction", Double(held) / Double(max(lines, 1))),
    ], notes: ["4 members, \(linesPerFrame) lines per frame of ~\(frames[0].count / linesPerFrame) bytes each"])
}
