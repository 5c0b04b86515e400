import Dedup

/// A holder's intake of the producer's frames (a listener that is not the claimer),
/// without Redis or PostgreSQL: each line's head is read and its seq held for the
/// claimer, in ranges swept once the claimer shows them finished. What every listener
/// added spends on every event, beyond the broadcast.
///
/// Register it with `MicroSuite(name: "intake", run: runIntakeBenchmark)`.
func runIntakeBenchmark(quick: Bool) -> SuiteResult {
    let linesPerFrame = 1_300
    let names = ["listener-a", "listener-b", "listener-c", "listener-d"].map { Array($0.utf8) }
    // listener-a started first: it claims, and this intake is another member's.
    let view = MemberView(names: names, started: [names[0]: 1, names[1]: 2, names[2]: 3, names[3]: 4])
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
    var deferred = HeldRanges()
    let claimer = deferred.memberIndex(of: view.names[view.claimer])
    var held = 0
    var lines = 0
    var next = 0
    let live = LiveRate("intake of a holder", unit: "lines")
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
            StreamLineParser.forEachLine(raw) { line, _ in
                lines += 1
                if let head = StreamLineParser.head(of: line) {
                    guard tracker.receivedFinished(head.seq) else { return }
                    held += 1
                    deferred.add(seq: head.seq, member: claimer, view: view.hash, now: now)
                    return
                }
            }
        }
        // The claimer finished everything: the common sweep.
        let unvouched = deferred.sweep { _, _, _, _ in .finished }
        precondition(unvouched == nil)
        live.update(lines)
    }
    let rate = live.finish(lines)
    precondition(deferred.isEmpty && held == lines, "the sweep left events held, or a line was not held")
    return SuiteResult(name: "intake", figures: [
        ("lines_per_sec", rate),
        ("ns_per_line", rate > 0 ? 1e9 / rate : 0),
        ("held_fraction", Double(held) / Double(max(lines, 1))),
    ], notes: ["a holder of 4 members, \(linesPerFrame) lines per frame of ~\(frames[0].count / linesPerFrame) bytes each"])
}
