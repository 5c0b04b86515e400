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
    private let inserter: EventBatchInsert
    private let logger: Logger
    private let eventLog: RateLimitedLog

    private(set) var tracker = SeqTracker()
    private var incoming = EventSet()
    private var claimRounds: [ClaimRound] = []
    private var work: [WorkBatch] = []
    private var watch = WatchList()
    private var scratchID: [UInt8] = []
    private var scratchKey: [UInt8] = []
    private var pollInFlight = false
    private var publishedProgress: UInt64 = 0
    private var flowOpen = true
    private var stopping = false
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
    private func submitClaims() {
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

    private func sendClaims(_ round: ClaimRound) {
        claimRounds.append(round)
        round.engine = self
        for i in 0..<round.events.count {
            round.events.withID(i) { ClaimValues.eventKey($0, into: &scratchKey) }
            redis.claim(scratchKey, values.claim, px: settings.lockTTLMillis, sink: round, index: i)
        }
    }

    /// One claim answered (called by its round): the holder becomes an owner index, so
    /// nothing is allocated per event.
    fileprivate func claimAnswered(_ round: ClaimRound, _ index: Int, claimed: Bool, holder: UnsafeRawBufferPointer?,
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

    private func resolve(_ round: ClaimRound) {
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

    private func duplicate(_ events: EventSet, _ index: Int, by holder: [UInt8], now: UInt64) {
        metrics.duplicate.add()
        tracker.finished(events.seqs[index])
        eventLog.event("duplicate", now: now, "duplicate seq=\(events.seqs[index]) event_id=\(events.idString(index)) (handled by \(ClaimValues.owner(holder)))")
    }

    // MARK: process, store, mark done

    private func start(_ batch: WorkBatch) {
        work.append(batch)
        scheduleExtension(batch)
        if settings.processDelayMillis > 0 {
            // Simulated processing runs concurrently for the batch, never blocking the loop.
            loop.schedule(in: .milliseconds(settings.processDelayMillis)) { [weak self] in self?.processed(batch) }
        } else {
            processed(batch)
        }
    }

    private func processed(_ batch: WorkBatch) {
        guard !batch.released else { return }
        metrics.processed.add(batch.events.count)
        store(batch)
    }

    private func store(_ batch: WorkBatch) {
        guard !batch.released else { return }
        let rows = inserter.makeBatch()
        values.instance.withUnsafeBytes { owner in
            for i in 0..<batch.events.count {
                batch.events.withID(i) { id in
                    batch.events.withPayload(i) { payload in
                        rows.append(eventID: id, seq: Int64(batch.events.seqs[i]),
                                    payload: batch.events.payloadIsNull[i] ? nil : payload,
                                    processedBy: owner)
                    }
                }
            }
        }
        batch.stage = .storing
        inserter.insert(rows) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let inserted):
                self.metrics.stored.add(inserted.insertedCount)
                self.stored(batch, newRows: inserted.insertedCount)
            case .failure(let error):
                self.metrics.storeFailures.add()
                batch.attempts += 1
                let delay = min(2_000, 50 << min(batch.attempts, 6))
                self.eventLog.event("store-retry", level: .warning, now: self.loop.nowNanos,
                                    "storing \(batch.events.count) events failed (\(error)); retry \(batch.attempts) in \(delay) ms, claims kept alive")
                self.loop.schedule(in: .milliseconds(delay)) { [weak self] in self?.store(batch) }
            }
        }
    }

    private func stored(_ batch: WorkBatch, newRows: Int) {
        batch.stage = .marking
        let now = loop.nowNanos
        for i in 0..<batch.events.count {
            tracker.finished(batch.events.seqs[i])
            eventLog.event("stored", now: now, "stored seq=\(batch.events.seqs[i]) event_id=\(batch.events.idString(i))")
        }
        if newRows < batch.events.count {
            logger.debug("\(batch.events.count - newRows) of \(batch.events.count) rows already existed (stored before a takeover)")
        }
        markDone(batch)
    }

    private func markDone(_ batch: WorkBatch) {
        let window = Array(String(settings.dedupWindowMillis).utf8)
        ClaimScripts.run(ClaimScripts.markDoneAll, redis: redis, events: batch.events,
                         args: [values.claim, values.done, window]) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success:
                batch.stage = .done
                self.finishWork(batch)
            case .failure(let error):
                batch.attempts += 1
                let delay = min(2_000, 50 << min(batch.attempts, 6))
                self.eventLog.event("done-retry", level: .warning, now: self.loop.nowNanos, "marking \(batch.events.count) events done failed (\(error)); retry in \(delay) ms")
                self.loop.schedule(in: .milliseconds(delay)) { [weak self] in self?.markDone(batch) }
            }
        }
        publishProgress()
    }

    private func finishWork(_ batch: WorkBatch) {
        if let timer = batch.extendTimer { loop.cancel(timer) }
        work.removeAll { $0 === batch }
    }

    /// Keeps the batch's claims alive until it is stored, so nobody takes over live work.
    private func scheduleExtension(_ batch: WorkBatch) {
        let every = max(settings.lockTTLMillis / 3, 1)
        batch.extendTimer = loop.schedule(in: .milliseconds(every)) { [weak self] in
            guard let self, batch.stage == .processing || batch.stage == .storing, !batch.released else { return }
            let ttl = Array(String(self.settings.lockTTLMillis).utf8)
            ClaimScripts.run(ClaimScripts.extendAll, redis: self.redis, events: batch.events, args: [self.values.claim, ttl]) { _ in }
            self.scheduleExtension(batch)
        }
    }

    /// Our progress mark: every event we claimed at or below it is stored.
    private var progress: UInt64 {
        var lowest = tracker.highest + 1
        if !incoming.isEmpty { lowest = min(lowest, incoming.seqs[0]) }
        for round in claimRounds where !round.events.isEmpty { lowest = min(lowest, round.events.seqs.min()!) }
        for batch in work where batch.stage == .processing || batch.stage == .storing {
            lowest = min(lowest, batch.minSeq)
        }
        return lowest - 1
    }

    /// Publishes the progress mark (per stored batch, and on the poll tick when it moved
    /// without a batch: events we merely received also move it, and a watcher waiting on
    /// the tail of our claims must not wait for a claim to expire).
    private func publishProgress() {
        let current = progress
        publishedProgress = current
        let mark = Array(String(current).utf8)
        redis.command([Array("SET".utf8), values.progressKey, mark, Array("PX".utf8),
                       Array(String(settings.dedupWindowMillis).utf8)]) { _ in }
    }

    // MARK: watching other owners

    private func schedulePoll() {
        loop.schedule(in: .milliseconds(20)) { [weak self] in
            guard let self else { return }
            self.pollWatched()
            if self.redis.isUp && self.progress != self.publishedProgress && self.tracker.highest > 0 { self.publishProgress() }
            self.metrics.inFlight.set(self.inFlightCount)
            self.metrics.watching.set(self.watch.count)
            self.metrics.watermark.set(Int(self.tracker.watermark))
            self.eventLog.tick(now: self.loop.nowNanos)
            self.schedulePoll()
        }
    }

    /// One MGET of the owners' progress marks drops what they finished; events whose
    /// claim could have expired are claimed again (a takeover if the owner died).
    private func pollWatched() {
        guard !watch.isEmpty, redis.isUp, !pollInFlight else { return }
        let owners = watch.activeOwners
        pollInFlight = true
        var command: [[UInt8]] = [Array("MGET".utf8)]
        for owner in owners { command.append(ClaimValues.progressKey(forClaim: watch.ownerClaims[owner])) }
        redis.command(command) { [weak self] result in
            guard let self else { return }
            self.pollInFlight = false
            if case .success(.array(let marks)) = result {
                for (owner, mark) in zip(owners, marks) {
                    if let bytes = mark.bytes, let seq = UInt64(String(decoding: bytes, as: UTF8.self)) {
                        self.watch.progress[owner] = max(self.watch.progress[owner], seq)
                    }
                }
            }
            self.sweepWatched()
        }
    }

    private func sweepWatched() {
        let now = loop.nowNanos
        let expiry = UInt64(settings.lockTTLMillis + 50) * 1_000_000
        var expired = EventSet()
        let progress = watch.progress
        let claims = watch.ownerClaims
        var finished: [(EventSet, Int, Int)] = []
        watch.filter(keep: { seq, owner, since in
            seq > progress[owner] && now &- since < expiry
        }, removed: { events, i, owner in
            if events.seqs[i] <= progress[owner] {
                finished.append((events, i, owner))
            } else {
                expired.append(events, i)
            }
        })
        for (events, i, owner) in finished { duplicate(events, i, by: claims[owner], now: now) }
        if !expired.isEmpty && !stopping {
            sendClaims(ClaimRound(events: expired, recovery: true))
        }
    }

    // MARK: flow and shutdown

    private func updateFlow() {
        let open = !stopping && redis.isUp && db.canAcceptWork && inFlightCount < settings.maxInFlight
        guard open != flowOpen else { return }
        flowOpen = open
        onFlowChange?(open)
    }

    /// Stops intake, finishes what it can within `deadline`, releases the claims of what it
    /// could not finish (so others take over at once) and calls `done`.
    func drain(within deadline: Duration, done: @escaping () -> Void) {
        stopping = true
        updateFlow()
        let end = loop.nowNanos + deadline.nanoseconds
        func check() {
            let busy = !claimRounds.isEmpty || work.contains { $0.stage != .done }
            if busy && loop.nowNanos < end {
                loop.schedule(in: .milliseconds(20)) { check() }
                return
            }
            let unfinished = work.filter { $0.stage == .processing || $0.stage == .storing }
            var release = EventSet()
            for batch in unfinished {
                batch.released = true
                for i in 0..<batch.events.count { release.append(batch.events, i) }
            }
            guard !release.isEmpty, redis.isUp else { return done() }
            logger.info("releasing \(release.count) unfinished claims so other instances take them over")
            ClaimScripts.run(ClaimScripts.releaseAll, redis: redis, events: release, args: [values.claim]) { _ in done() }
        }
        check()
    }
}

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
