import Logging
import Reactor
import ServiceKit

/// The listener's settings that shape the event path.
struct EngineSettings {
    var instance: String
    var run: String
    var lockTTLMillis: Int
    var dedupWindowMillis: Int
    var processDelayMillis: Int
    /// Unfinished events above which reading from the producer pauses.
    var maxInFlight = 16_384
    /// Most claims sent in one round.
    var maxClaimBatch = 4_096
}

/// The event path, on one loop: received -> claimed (or duplicate, or watched) ->
/// processed -> stored -> marked done. Everything is batched per loop turn: one pipelined
/// round of `SET NX GET` for the turn's events, one batch insert per claimed batch, one
/// script call to mark a batch done. Events are finished only when stored (by us or by
/// their owner), and the watermark moves only over finished events, so a crash, a
/// restart or a reconnect resumes without losing any.
final class DedupEngine {
    let loop: EventLoop
    let settings: EngineSettings
    let values: ClaimValues
    let redis: RedisClient
    let db: PostgresConnection
    let metrics: ListenerMetrics
    let inserter: EventBatchInsert
    let logger: Logger
    let eventLog: RateLimitedLog

    var tracker = SeqTracker()
    var incoming = EventSet()
    var claimRounds: [ClaimRound] = []
    var work: [WorkBatch] = []
    var watch = WatchList()
    var scratchID: [UInt8] = []
    var scratchKey: [UInt8] = []
    var pollInFlight = false
    var publishedProgress: UInt64 = 0
    var flowOpen = true
    var stopping = false
    /// Told when intake should pause (false) or resume (true).
    var onFlowChange: ((Bool) -> Void)?

    init(loop: EventLoop, settings: EngineSettings, redis: RedisClient, db: PostgresConnection,
         metrics: ListenerMetrics, logger: Logger) {
        self.loop = loop
        self.settings = settings
        self.values = ClaimValues(instance: settings.instance, run: settings.run)
        self.redis = redis
        self.db = db
        self.metrics = metrics
        self.logger = logger
        inserter = EventBatchInsert(connection: db)
        // A few pooled batches cover the inserts in flight; more would only pin memory.
        inserter.maxPooledBatches = 4
        eventLog = RateLimitedLog(logger: logger)
        loop.addBeforeSleepHook { [unowned self] in
            self.submitClaims()
            self.updateFlow()
        }
        schedulePoll()
    }

    /// Starts from a persisted watermark.
    func resume(from watermark: UInt64) { tracker = SeqTracker(watermark: watermark) }

    var inFlightCount: Int {
        incoming.count + claimRounds.reduce(0) { $0 + $1.events.count } + work.reduce(0) { $0 + $1.events.count } + watch.count
    }

    var isIdle: Bool { inFlightCount == 0 }

    // MARK: intake

    /// A text frame from the producer: one or more NDJSON lines.
    func receive(frame: UnsafeRawBufferPointer) {
        let before = incoming.count
        StreamLineParser.parse(frame, into: &incoming, scratch: &scratchID) { notice in
            switch notice {
            case .gap(let from, let to):
                metrics.gaps.add()
                metrics.gapEvents.add(Int(to - from + 1))
                logger.warning("producer no longer had seqs \(from)-\(to) when we resumed: \(to - from + 1) events were not received")
            case .malformed(let line, let reason):
                metrics.malformed.add()
                eventLog.event("malformed", level: .warning, now: loop.nowNanos, "malformed line \(line) from the producer skipped: \(reason)")
            }
        }
        // Keep only seqs not seen before (a reconnect replays from the watermark); the
        // common case keeps everything in place.
        var replayed: [Int] = []
        let now = loop.nowNanos
        for i in before..<incoming.count {
            if tracker.received(incoming.seqs[i]) {
                eventLog.event("received", now: now, "received seq=\(incoming.seqs[i]) event_id=\(incoming.idString(i))")
            } else {
                replayed.append(i)
            }
        }
        if !replayed.isEmpty {
            var kept = EventSet()
            var skip = replayed.makeIterator()
            var next = skip.next()
            for i in 0..<incoming.count {
                if i == next { next = skip.next(); continue }
                kept.append(incoming, i)
            }
            incoming = kept
        }
        metrics.received.add(incoming.count - before)
    }

    /// The producer restarted its numbering: resume counting from `seq`.
    func producerRestarted(firstSeq: UInt64) {
        logger.warning("producer seqs restarted (got \(firstSeq) after \(tracker.highest)); tracking the new run")
        tracker.restart(at: firstSeq - 1)
    }

    // MARK: claim

    /// Sends this turn's claims: one pipelined `SET event:<id> <claim> PX ttl NX GET` each.
    func submitClaims() {
        guard !incoming.isEmpty, redis.isUp else { return }
        var batch = EventSet()
        if incoming.count <= settings.maxClaimBatch {
            swap(&batch, &incoming)
        } else {
            var rest = EventSet()
            for i in 0..<incoming.count {
                if i < settings.maxClaimBatch { batch.append(incoming, i) } else { rest.append(incoming, i) }
            }
            incoming = rest
        }
        sendClaims(ClaimRound(events: batch, recovery: false))
    }

    func sendClaims(_ round: ClaimRound) {
        claimRounds.append(round)
        round.engine = self
        for i in 0..<round.events.count {
            round.events.withID(i) { ClaimValues.eventKey($0, into: &scratchKey) }
            redis.claim(scratchKey, values.claim, px: settings.lockTTLMillis, sink: round, index: i)
        }
    }

    /// One claim answered (called by its round): the holder becomes an owner index, so
    /// nothing is allocated per event.
    func claimAnswered(_ round: ClaimRound, _ index: Int, claimed: Bool, holder: UnsafeRawBufferPointer?,
                                   error: RedisError?) {
        if claimed {
            round.outcomes[index] = .claimed
        } else if let holder {
            round.outcomes[index] = .held(watch.ownerIndex(of: holder))
        } else {
            round.outcomes[index] = .failed
        }
        round.remaining -= 1
        if round.remaining == 0 { resolve(round) }
    }

    func resolve(_ round: ClaimRound) {
        claimRounds.removeAll { $0 === round }
        let now = loop.nowNanos
        var mine = EventSet()
        var retry = EventSet()
        for i in 0..<round.events.count {
            switch round.outcomes[i] {
            case .claimed:
                mine.append(round.events, i)
                metrics.claimed.add()
                if round.recovery {
                    metrics.recovered.add()
                    logger.info("recovered seq=\(round.events.seqs[i]) event_id=\(round.events.idString(i)): its owner did not finish it")
                } else {
                    eventLog.event("claimed", now: now, "claimed seq=\(round.events.seqs[i]) event_id=\(round.events.idString(i))")
                }
            case .held(let owner):
                let holder = watch.ownerClaims[owner]
                if ClaimValues.isDone(holder) || holder == values.claim {
                    duplicate(round.events, i, by: holder, now: now)
                } else {
                    watch.add(round.events, i, owner: owner, now: now)
                }
            case .failed, .pending:
                retry.append(round.events, i)
            }
        }
        if !retry.isEmpty {
            metrics.claimFailures.add()
            eventLog.event("claim-retry", level: .warning, now: now, "claim round failed for \(retry.count) events (redis: \(redis.lastError ?? "down")); retrying when it is back")
            for i in 0..<incoming.count { retry.append(incoming, i) }
            incoming = retry
        }
        if !mine.isEmpty { start(WorkBatch(events: mine)) }
    }

    func duplicate(_ events: EventSet, _ index: Int, by holder: [UInt8], now: UInt64) {
        metrics.duplicate.add()
        tracker.finished(events.seqs[index])
        eventLog.event("duplicate", now: now, "duplicate seq=\(events.seqs[index]) event_id=\(events.idString(index)) (handled by \(ClaimValues.owner(holder)))")
    }
}
