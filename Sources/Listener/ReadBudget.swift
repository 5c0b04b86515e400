import Dedup
import Reactor
import ServiceKit

/// The API's reads under a budget, so that a burst of readers cannot take the write
/// path's CPU (the PostgreSQL backend running the read, the loop writing the JSON).
///
/// - **One read at a time.** A read runs on the read session only after the one before it
///   answered; the others wait in a FIFO, so they are answered in the order they came.
/// - **A bounded wait.** At most `maxWaiting` reads wait; one more is answered at once with
///   `503 {"error": ...}` and `Retry-After`, never queued without bound.
/// - **A duty cycle while events flow.** While the listener has events in flight (or
///   received some in the last second), time spent serving reads (from the query's start
///   to its answer, on the loop's monotonic clock) stays under `share` of wall time: after
///   a read that took `d`, the next starts no sooner than `d × (1 / share − 1)` later. An
///   idle listener serves reads back to back.
///
/// Only `/api/*` reads go through it: `/health` and `/metrics` never wait, and the inserts
/// have a session of their own, so nothing here ever delays them.
final class ReadBudget {
    /// Reads allowed to wait behind the one in flight; one more gets 503.
    static let maxWaiting = 32
    /// The share of wall time reads may take while events flow.
    static let share = 0.10
    /// The longest pause the duty cycle puts between two reads (a read slowed by a saturated
    /// database must not stall the next one for much longer than a claim round).
    static let maxGapNanos: UInt64 = 2_000_000_000
    /// How recently an event must have arrived for the listener to count as busy.
    static let busyWindowNanos: UInt64 = 1_000_000_000

    /// One read waiting for its turn: its responder (to skip a client that left) and the
    /// work, which calls `done` once it has answered.
    private struct Waiting {
        let responder: HTTPResponder
        let run: (_ done: @escaping () -> Void) -> Void
    }

    private let loop: EventLoop
    private let metrics: ListenerMetrics
    private var waiting = HeadQueue<Waiting>()
    private var running = false
    /// No read starts before this (monotonic ns): the end of the last read plus its pause.
    private var notBefore: UInt64 = 0
    private var timer: TimerHandle?
    /// The last read's duration plus the pause after it: the slot one read takes.
    private var lastSlotNanos: UInt64 = 0
    /// Write-path activity, sampled at each read: the received count and when it last moved.
    private var lastReceived = 0
    private var lastReceivedChange: UInt64 = 0
    /// Time spent serving reads, ns (the counter shows it in whole ms).
    private var busyNanos: UInt64 = 0

    private let served: Counter
    private let queued: Counter
    private let delayed: Counter
    private let refused: Counter
    private let busyMillis: Counter
    private let waitingGauge: Gauge

    init(loop: EventLoop, metrics: ListenerMetrics) {
        self.loop = loop
        self.metrics = metrics
        let registry = metrics.registry
        served = registry.counter("dedup_api_reads_total", help: "API reads run on the read session (/api/events, /api/events/{id}, /api/dead-letters).")
        queued = registry.counter("dedup_api_reads_queued_total", help: "API reads that waited for the read in flight or for the read budget.")
        delayed = registry.counter("dedup_api_reads_delayed_total", help: "Pauses that held back a waiting API read to keep reads under their share of time while events flow.")
        refused = registry.counter("dedup_api_reads_refused_total", help: "API reads answered 503 with Retry-After because the wait queue was full.")
        busyMillis = registry.counter("dedup_api_read_busy_milliseconds_total", help: "Time spent serving API reads, query start to answer.")
        waitingGauge = registry.gauge("dedup_api_reads_waiting", help: "API reads waiting for their turn now.")
    }

    /// Runs `read` when its turn comes; `read` answers `responder` and then calls `done`
    /// (exactly once). Answers 503 at once when `maxWaiting` reads already wait.
    func submit(_ responder: HTTPResponder, _ read: @escaping (_ done: @escaping () -> Void) -> Void) {
        let count = waiting.count
        if !running && count == 0 && loop.nowNanos >= notBefore {
            start(Waiting(responder: responder, run: read))
            return
        }
        guard count < Self.maxWaiting else {
            refused.add()
            var response = HTTPResponse.error(503, "too many API reads waiting (\(Self.maxWaiting)); retry later")
            response.headers.append(HTTPHeaders.Field(name: "Retry-After", value: String(retryAfterSeconds(behind: count))))
            responder.respond(response)
            return
        }
        queued.add()
        waiting.append(Waiting(responder: responder, run: read))
        waitingGauge.set(count + 1)
        if !running { armTimer() }
    }

    /// Whole seconds until a read behind `count` others could expect its turn (at least 1).
    private func retryAfterSeconds(behind count: Int) -> Int {
        let nanos = UInt64(count + 1) &* max(lastSlotNanos, 1)
        return Int(min(max((nanos + 999_999_999) / 1_000_000_000, 1), 60))
    }

    /// True while the write path has work: events in flight, or one received within
    /// `busyWindowNanos`.
    private func writesBusy(now: UInt64) -> Bool {
        let received = metrics.received.count
        if received != lastReceived {
            lastReceived = received
            lastReceivedChange = now
        }
        return metrics.inFlight.current > 0 || now &- lastReceivedChange < Self.busyWindowNanos
    }

    private func start(_ read: Waiting) {
        running = true
        served.add()
        let started = loop.nowNanos
        var finished = false
        read.run { [self] in
            guard !finished else { return }
            finished = true
            finish(startedAt: started)
        }
    }

    private func finish(startedAt started: UInt64) {
        running = false
        let now = loop.nowNanos
        let took = now &- started
        let millisBefore = busyNanos / 1_000_000
        busyNanos &+= took
        busyMillis.add(Int(busyNanos / 1_000_000 - millisBefore))
        var gap: UInt64 = 0
        if writesBusy(now: now) {
            gap = min(UInt64(Double(took) * (1 / Self.share - 1)), Self.maxGapNanos)
        }
        notBefore = now &+ gap
        lastSlotNanos = took &+ gap
        next()
    }

    /// Starts the first waiting read whose client is still there, now or when the pause ends.
    private func next() {
        guard !running else { return }
        while let first = waiting.first, !first.responder.isConnectionOpen { pop() }
        guard !waiting.isEmpty else { return }
        if loop.nowNanos < notBefore { return armTimer() }
        start(pop()!)
    }

    @discardableResult
    private func pop() -> Waiting? {
        let read = waiting.popFirst()
        waitingGauge.set(waiting.count)
        return read
    }

    private func armTimer() {
        guard timer == nil else { return }
        if loop.nowNanos < notBefore { delayed.add() }
        timer = loop.schedule(atNanos: notBefore) { [weak self] in
            guard let self else { return }
            self.timer = nil
            self.next()
        }
    }
}
