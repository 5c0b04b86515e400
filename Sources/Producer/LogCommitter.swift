import EventLog
import Logging
import Reactor

/// What became of one publish request's batch.
enum PublishOutcome: Sendable {
    /// Durable in the log, with these seqs.
    case accepted(first: UInt64, last: UInt64)
    /// Not written; nothing of it exists (the message says why).
    case failed(String)
}

/// Group commit on the hub loop: every batch published during a loop turn goes to the
/// log's sync thread as one group (one write, one fdatasync) before the loop sleeps;
/// batches arriving while a sync runs wait and form the next group. Only when a group is
/// durable are its events handed to `onDurable` (the ring, hence the broadcast) and its
/// requests answered, so nothing a listener sees or a client was told can vanish in a
/// crash.
final class LogCommitter {
    /// Called with the outcome of each batch of one `enqueue`, in order.
    typealias Completion = ([PublishOutcome]) -> Void

    let log: EventLog
    private let loop: EventLoop
    private let metrics: ProducerMetrics
    private let logger: Logger
    private let onDurable: (LogEntries) -> Void
    private var pending: [LogEntries] = []
    private var pendingWaiters: [(batches: Int, done: Completion)] = []
    private var syncingWaiters: [(batches: Int, done: Completion)] = []
    /// Set while the disk refuses writes, to log the failure and the recovery once.
    private var failing = false

    init(log: EventLog, loop: EventLoop, metrics: ProducerMetrics, logger: Logger, onDurable: @escaping (LogEntries) -> Void) {
        self.log = log
        self.loop = loop
        self.metrics = metrics
        self.logger = logger
        self.onDurable = onDurable
        loop.addBeforeSleepHook { [unowned self] in self.startSync() }
    }

    /// Queues batches for the next group; `done` gets one outcome per batch.
    func enqueue(_ batches: [EventBatch], done: @escaping Completion) {
        for batch in batches { pending.append(LogEntries(bytes: batch.bytes, lengths: batch.lengths)) }
        pendingWaiters.append((batches.count, done))
    }

    private func startSync() {
        guard !log.isSyncing, !pending.isEmpty else { return }
        let group = pending
        pending.removeAll(keepingCapacity: true)
        swap(&syncingWaiters, &pendingWaiters)
        let me = LoopBound(self, on: loop)
        let home = loop.handle
        log.append(group) { outcome in
            home.execute { loop in me.value(on: loop).finish(outcome) }
        }
    }

    private func finish(_ outcome: LogAppendOutcome) {
        let waiters = syncingWaiters
        syncingWaiters.removeAll(keepingCapacity: true)
        switch log.complete(outcome) {
        case .success:
            if failing {
                failing = false
                logger.notice("event log writes work again; publishing resumed at seq \(outcome.firstSeq)")
            }
            let events = outcome.entries.reduce(0) { $0 + $1.count }
            metrics.fsyncs.add()
            metrics.syncedEvents.add(events)
            metrics.syncMicros.add(Int(outcome.syncNanos / 1000))
            metrics.logBytes.set(log.sizeBytes)
            metrics.logSegments.set(log.segmentCount)
            var next = 0
            var seq = outcome.firstSeq
            for waiter in waiters {
                var outcomes: [PublishOutcome] = []
                outcomes.reserveCapacity(waiter.batches)
                for entries in outcome.entries[next..<(next + waiter.batches)] {
                    onDurable(entries)
                    outcomes.append(.accepted(first: seq, last: seq + UInt64(entries.count) - 1))
                    seq += UInt64(entries.count)
                }
                next += waiter.batches
                waiter.done(outcomes)
            }
        case .failure(let error):
            metrics.logWriteErrors.add()
            if !failing {
                failing = true
                logger.error("event log write failed: \(error); publishing answers 503 until a write succeeds")
            }
            let what = error.isOutOfSpace ? "event log disk full" : "event log unavailable"
            let message = "\(what): \(error); nothing was accepted, retry later"
            for waiter in waiters {
                waiter.done(Array(repeating: .failed(message), count: waiter.batches))
            }
        }
        // Whatever queued up during the sync goes at once, not after another loop turn.
        startSync()
    }
}
