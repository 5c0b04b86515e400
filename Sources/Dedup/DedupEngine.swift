import Logging
import Reactor
import ServiceKit

/// The listener's settings that shape the event path.
package struct EngineSettings {
    package var instance: String
    package var run: String
    package var lockTTLMillis: Int
    package var dedupWindowMillis: Int
    package var processDelayMillis: Int
    /// Event bytes held unfinished above which reading from the producer pauses.
    package var maxInFlightBytes = 256 << 20
    /// Unfinished events above which reading pauses too (each costs bookkeeping besides
    /// its bytes). Every unfinished event is held two or three times over (its set, its
    /// claim round or work batch, its insert rows), so this and `maxClaimBatch` bound the
    /// listener's peak memory: on the 1M-event end-to-end flood (2 listeners, four
    /// alternated pairs) 16,384 and 4,096 peaked at 29-30 MiB, these at 22-23 MiB, at the
    /// same stored rate (91.3k vs 91.5k distinct events/s on average, runs 78k-100k).
    package var maxInFlight = 4_096
    /// Most claims sent in one round (and so most rows in one insert).
    package var maxClaimBatch = 1_024

    package init(instance: String, run: String, lockTTLMillis: Int, dedupWindowMillis: Int, processDelayMillis: Int) {
        self.instance = instance
        self.run = run
        self.lockTTLMillis = lockTTLMillis
        self.dedupWindowMillis = dedupWindowMillis
        self.processDelayMillis = processDelayMillis
    }
}

/// The event path, on one loop; the states and transitions are written down in
/// `EventStage`. Everything is batched per loop turn: one pipelined round of `SET NX GET`
/// for the turn's events, one batch insert per claimed batch, one script call to mark a
/// batch done. Events are finished only when stored (by us or by their owner) or
/// dead-lettered, and the watermark moves only over finished events, so a crash, a
/// restart or a reconnect resumes without losing any.
package final class DedupEngine {
    let loop: EventLoop
    let settings: EngineSettings
    var values: ClaimValues
    /// One node or a cluster; replaced once when a single URL turns out to be a cluster
    /// node (see `useRedis`).
    private(set) var redis: any RedisCommandClient
    /// False while the kind of Redis behind a single URL is not known yet: nothing is sent.
    private(set) var redisKnown = true
    let db: PostgresConnection
    let metrics: ListenerMetrics
    let inserter: EventBatchInsert
    let deadLetters: DeadLetterStore
    let logger: Logger
    let eventLog: RateLimitedLog

    package internal(set) var tracker = SeqTracker()
    var arrivals = ArrivalClock()
    /// Received and not yet claimed, all under the live claim value.
    var incoming = EventSet()
    /// Received again after a rewind and not yet claimed: claimed apart (see `claimApart`).
    var rewound = EventSet()
    /// Storage of finished stages' sets, for the next ones.
    var sets = EventSetPool()
    /// Rounds to send under a value other than the live one once Redis is up: recovery
    /// claims whose answers never came (retried under the same value), and events of an
    /// older numbering not claimed yet when the producer's seqs started over.
    var pendingRounds: [ClaimRound] = []
    var claimRounds: [ClaimRound] = []
    var work: [WorkBatch] = []
    /// Batches waiting to share an insert statement, and such statements in flight.
    var waitingInserts: [WorkBatch] = []
    var joinedInsertsInFlight = 0
    var watch = WatchList()
    /// Seqs held for the claimer until it shows them finished.
    var held = HeldRanges()
    /// A rewind asked the producer link to resume from the rewound watermark: frames of
    /// the old connection are dropped until the new one opens (`rewindDone`).
    var awaitingRewind = false
    var lastRewind: UInt64 = 0
    /// New events up to this seq are claimed, not held: the claimer does not vouch for
    /// them (see `rewind`).
    var claimThrough: UInt64 = 0
    /// Told to resume the producer stream from `tracker.watermark` (a rewind).
    package var onRewind: (() -> Void)?
    var membership: Membership
    /// Every seq above this (up to `tracker.highest`) was received in this life on the
    /// current stream: the resume point, moved past any gap the producer reported.
    var receivedFrom: UInt64 = 0
    var membersPollInFlight = false
    var lastMembersPoll: UInt64 = 0
    /// When the members' states last read were asked for (our view is that old).
    var lastObserved: UInt64 = 0
    var publishedState: [UInt8] = []
    var lastHeartbeat: UInt64 = 0
    /// When we last added ourselves to the member set (again at most every 200 ms, see `heartbeat`).
    var lastJoined: UInt64 = 0
    /// A members poll is scheduled to follow the one in flight (intake paused on held events).
    var membersPollQueued = false
    /// The cluster client's redirections and slot maps already added to the metrics.
    var reportedRedirections = 0
    var reportedSlotMapUpdates = 0
    /// Claim values other than the live one with claims possibly still in our hands, and
    /// the mark that says "all finished" once none is.
    var closedScopes: [[UInt8]] = []
    var scratchID: [UInt8] = []
    var scratchKey: [UInt8] = []
    var pollInFlight = false
    var publishedProgress: UInt64 = 0
    var flowOpen = true
    var stopping = false
    /// Told when intake should pause (false) or resume (true).
    package var onFlowChange: ((Bool) -> Void)?

    package init(loop: EventLoop, settings: EngineSettings, redis: any RedisCommandClient, db: PostgresConnection,
         metrics: ListenerMetrics, logger: Logger) {
        self.loop = loop
        self.settings = settings
        self.values = ClaimValues(instance: settings.instance, run: settings.run)
        membership = Membership(instance: settings.instance, run: settings.run,
                                joinLag: UInt64(settings.maxInFlight / 4), leaveLag: UInt64(settings.maxInFlight * 4))
        self.redis = redis
        self.db = db
        self.metrics = metrics
        self.logger = logger
        inserter = EventBatchInsert(connection: db)
        // A few pooled batches cover the inserts in flight; more would only pin memory.
        inserter.maxPooledBatches = 4
        deadLetters = DeadLetterStore(db: db)
        eventLog = RateLimitedLog(logger: logger)
        loop.addBeforeSleepHook { [unowned self] in
            self.submitClaims()
            self.updateFlow()
        }
        schedulePoll()
    }

    /// Redis can take commands: its kind is known and it is up.
    var redisUp: Bool { redisKnown && redis.isUp }

    /// Sends nothing to Redis until `useRedis` says what it is.
    package func awaitRedisKind() { redisKnown = false }

    /// The client to use from now on (a cluster client when a single URL named a cluster
    /// node). Commands still pending on the old one fail and are retried on this one.
    package func useRedis(_ client: any RedisCommandClient) {
        redis = client
        redisKnown = true
    }

    /// Starts from a persisted watermark.
    package func resume(from watermark: UInt64) {
        tracker = SeqTracker(watermark: watermark)
        receivedFrom = watermark
    }

    /// The producer's stream id, when known (its handshake, or the saved watermark's).
    package func producerStream(_ stream: String) {
        membership.setStream(stream, nextSeq: nextUnclassifiedSeq, highest: tracker.highest)
    }

    package var inFlightCount: Int {
        incoming.count + rewound.count + pendingRounds.reduce(0) { $0 + $1.events.count } + claimRounds.reduce(0) { $0 + $1.events.count }
            + work.reduce(0) { $0 + ($1.stage.isFinished ? 0 : $1.events.count) } + watch.count
    }

    /// Event bytes held by every unfinished stage.
    package var inFlightBytes: Int {
        incoming.byteCount + rewound.byteCount + pendingRounds.reduce(0) { $0 + $1.events.byteCount }
            + claimRounds.reduce(0) { $0 + $1.events.byteCount }
            + work.reduce(0) { $0 + ($1.stage.isFinished ? 0 : $1.events.byteCount) } + watch.byteCount
    }

    var isIdle: Bool { inFlightCount == 0 }

    /// How long the oldest unfinished event has waited, in nanoseconds (0 when none).
    package func oldestUnfinishedAge() -> UInt64 {
        guard let since = arrivals.oldestUnfinished(watermark: tracker.watermark, highest: tracker.highest) else { return 0 }
        return loop.nowNanos &- since
    }

    // MARK: intake

    /// A text frame from the producer: one or more NDJSON lines. Unless we are the
    /// claimer (see `MemberView`), each new event is held for the claimer: only its seq is
    /// kept, in `held`, and when the line has the producer's layout only its head is read.
    /// The claimer parses each line in full, to claim it; so does anyone for an event a
    /// rewind asked for again, whatever the view says.
    package func receive(frame: UnsafeRawBufferPointer) {
        guard !awaitingRewind else { return }
        var received = 0
        var firstSeq: UInt64?
        let now = loop.nowNanos
        let view = membership.view
        // The held table's index of the claimer, when it is another member.
        let holdFor = membership.isSharing && !membership.claims ? held.memberIndex(of: view.names[view.claimer]) : nil
        let logEach = eventLog.logs(.info)
        StreamLineParser.forEachLine(frame) { line, number in
            if let holdFor, let head = StreamLineParser.head(of: line), head.seq > claimThrough {
                switch tracker.arrival(of: head.seq) {
                case .seen: return
                case .replayed: break
                case .new:
                    guard tracker.receivedFinished(head.seq) else { return }
                    held.add(seq: head.seq, member: holdFor, view: view.hash, now: now)
                    received += 1
                    if firstSeq == nil { firstSeq = head.seq }
                    if logEach {
                        eventLog.event("received", now: now, "received seq=\(head.seq) event_id=\(String(decoding: line[head.id], as: UTF8.self)) (held for the claimer)")
                    }
                    return
                }
            }
            let index = incoming.count
            // Set per line: a round claimed mid-frame leaves a spare set in `incoming`.
            incoming.generation = tracker.generation
            if let notice = StreamLineParser.parseLine(line, number: number, into: &incoming, scratch: &scratchID) {
                noted(notice)
            }
            guard incoming.count > index else { return }
            let seq = incoming.seqs[index]
            let arrival = tracker.arrival(of: seq)
            // A reconnect replays from the watermark: seqs seen before are dropped.
            guard tracker.received(seq) else { return incoming.removeLast() }
            received += 1
            if firstSeq == nil { firstSeq = seq }
            if arrival == .replayed {
                if logEach { eventLog.event("received", now: now, "received seq=\(seq) event_id=\(incoming.idString(index)) again (rewound)") }
                rewound.append(incoming, index)
                incoming.removeLast()
                return
            }
            if let holdFor, seq > claimThrough {
                held.add(seq: seq, member: holdFor, view: view.hash, now: now)
                tracker.finished(seq, generation: tracker.generation)
                if logEach { eventLog.event("received", now: now, "received seq=\(seq) event_id=\(incoming.idString(index)) (held for the claimer)") }
                incoming.removeLast()
                return
            }
            if logEach { eventLog.event("received", now: now, "received seq=\(seq) event_id=\(incoming.idString(index))") }
            // A full round is claimed at once rather than before the loop sleeps: the
            // frames read in one turn would otherwise pile up in one ever larger set, and
            // a set of one round's size moves on whole, uncopied, and is reused after.
            if incoming.count >= settings.maxClaimBatch { submitClaims() }
        }
        if let firstSeq { arrivals.arrived(seq: firstSeq, now: now) }
        metrics.received.add(received)
    }

    /// Counts and logs what a frame held besides events.
    func noted(_ notice: StreamNotice) {
        switch notice {
        case .gap(let from, let to):
            receivedFrom = max(receivedFrom, to)
            metrics.gaps.add()
            metrics.gapEvents.add(Int(clamping: to - from + 1))
            logger.warning("producer no longer had seqs \(from)-\(to) when we resumed: \(to - from + 1) events were not received")
        case .malformed(let line, let reason):
            metrics.malformed.add()
            let which = line > 0 ? "line \(line)" : "line (held for another listener)"
            eventLog.event("malformed", level: .warning, now: loop.nowNanos, "malformed \(which) from the producer skipped: \(reason)")
        }
    }

    /// The producer's seqs started over (a new stream, or a producer without a durable
    /// log that restarted): count from `watermark` in a new live claim scope, since the
    /// old scope's marks speak of the old numbering.
    package func streamRestarted(at watermark: UInt64) {
        logger.warning("the producer's seqs started over (next after \(watermark), had \(tracker.highest)); tracking the new numbering")
        closeLiveScope()
        tracker.restart(at: watermark)
        held.removeAll()
        claimThrough = 0
        receivedFrom = watermark
        arrivals.reset()
    }

    private func closeLiveScope() {
        if !incoming.isEmpty {
            // Received under the old numbering: claimed under the old value, which the
            // old scope's final mark covers.
            pendingRounds.append(ClaimRound(events: incoming, claim: values.live, kind: .live))
            incoming = EventSet()
        }
        closedScopes.append(values.live)
        values.startLiveScope()
    }

    // MARK: claim

    /// Sends this turn's claims: one pipelined `SET event:<id> <claim> PX ttl NX GET` each,
    /// in rounds of at most `maxClaimBatch`.
    func submitClaims() {
        guard redisUp, !stopping else { return }
        while !pendingRounds.isEmpty { sendClaims(pendingRounds.removeLast()) }
        if !rewound.isEmpty {
            var start = 0
            while start < rewound.count {
                let part = start..<min(start + settings.maxClaimBatch, rewound.count)
                var batch = sets.take()
                batch.append(rewound, part)
                claimApart(batch, kind: .rewound)
                start = part.upperBound
            }
            var emptied = sets.take()
            swap(&emptied, &rewound)
            sets.give(&emptied)
        }
        guard !incoming.isEmpty else { return }
        // While a live round is out, what arrives waits for its answers (or for a full
        // round) and goes with the next one: rounds of a few hundred claims cost Redis and
        // the listener more per claim than a round per answer does.
        guard incoming.count >= settings.maxClaimBatch || !claimRounds.contains(where: { $0.kind == .live }) else { return }
        if incoming.count <= settings.maxClaimBatch {
            // The whole set moves on uncopied; `incoming` takes a spare one.
            var batch = sets.take()
            swap(&batch, &incoming)
            sendClaims(ClaimRound(events: batch, claim: values.live, kind: .live))
            return
        }
        var start = 0
        while start < incoming.count {
            let part = start..<min(start + settings.maxClaimBatch, incoming.count)
            var batch = sets.take()
            batch.append(incoming, part)
            sendClaims(ClaimRound(events: batch, claim: values.live, kind: .live))
            start = part.upperBound
        }
        // Only while Redis was down does `incoming` outgrow a round: not kept that large.
        var emptied = sets.take()
        swap(&emptied, &incoming)
        sets.give(&emptied)
    }

    /// The first seq the next classification will see: events are classified as they
    /// arrive, in seq order.
    var nextUnclassifiedSeq: UInt64 { tracker.highest + 1 }

    func sendClaims(_ round: ClaimRound) {
        claimRounds.append(round)
        round.engine = self
        setEach(round.events, to: round.claim, px: settings.lockTTLMillis, nx: true, get: true, sink: round)
    }

    /// One pipelined `SET event:<id> <value> PX <px> [NX] [GET]` per event of `events`,
    /// answered to `sink` by index. The client and the key buffer are held in locals for
    /// the loop: a property read through `self` per event costs a retain and a release of
    /// objects whose counts live in side tables (slow ones).
    func setEach(_ events: EventSet, to value: [UInt8], px: Int, nx: Bool, get: Bool, sink: any RedisReplySink) {
        let redis = self.redis
        var key: [UInt8] = []
        swap(&key, &scratchKey)
        defer { swap(&key, &scratchKey) }
        for i in 0..<events.count {
            events.withID(i) { ClaimValues.eventKey($0, into: &key) }
            redis.set(key, value, px: px, nx: nx, get: get, sink: sink, index: i)
        }
    }

    /// One claim answered (called by its round): the verdict is taken while the holder's
    /// bytes are valid, and a holder becomes an owner index, so nothing is allocated per
    /// event.
    func claimAnswered(_ round: ClaimRound, _ index: Int, claimed: Bool, holder: UnsafeRawBufferPointer?) {
        if let holder {
            switch values.verdict(claimed: claimed, holder: holder, roundClaim: round.claim, attempted: round.events.attempted[index]) {
            case .ours: round.outcomes[index] = .ours
            case .duplicate: round.outcomes[index] = .duplicate(holder: watch.ownerIndex(of: holder))
            case .watch: round.outcomes[index] = .watch(owner: watch.ownerIndex(of: holder))
            }
        } else {
            round.outcomes[index] = claimed ? .ours : .unanswered(mayHaveRun: true)
        }
        round.remaining -= 1
        if round.remaining == 0 { resolve(round) }
    }

    /// In a retried round, each copy of an id whose earlier SET may have run reads this
    /// round's value as its own, and so does a copy of an id another copy of which is
    /// already in our hands under that value: only a first copy, of an id not in hand, is
    /// ours; the others are duplicates of it (a set of ids only for such rounds, which lost
    /// replies make rare).
    private func keepOneCopyOurs(_ round: ClaimRound) {
        var won = Set<[UInt8]>()
        for batch in work where batch.claim == round.claim {
            for i in 0..<batch.events.count { batch.events.withID(i) { _ = won.insert(Array($0)) } }
        }
        for i in 0..<round.events.count {
            guard case .ours = round.outcomes[i] else { continue }
            if !round.events.withID(i, { won.insert(Array($0)).inserted }) {
                round.outcomes[i] = .duplicate(holder: round.claim.withUnsafeBytes { watch.ownerIndex(of: $0) })
            }
        }
    }

    /// A claim that got no verdict; see `ClaimRound.Outcome.unanswered`.
    func claimUnanswered(_ round: ClaimRound, _ index: Int, mayHaveRun: Bool) {
        round.outcomes[index] = .unanswered(mayHaveRun: mayHaveRun)
        round.remaining -= 1
        if round.remaining == 0 { resolve(round) }
    }

    private func resolve(_ round: ClaimRound) {
        claimRounds.removeAll { $0 === round }
        let now = loop.nowNanos
        if round.events.attempted.contains(true) { keepOneCopyOurs(round) }
        // Usually every claim of a round is won: its set then moves on whole, uncopied.
        let allOurs = !round.outcomes.contains { if case .ours = $0 { false } else { true } }
        var mine = allOurs ? EventSet() : sets.take()
        var retry = EventSet()
        var claimed = 0
        defer { metrics.claimed.add(claimed) }
        for i in 0..<round.events.count {
            switch round.outcomes[i] {
            case .ours:
                if !allOurs { mine.append(round.events, i) }
                claimed += 1
                if round.kind == .takeover {
                    metrics.recovered.add()
                    logger.info("recovered seq=\(round.events.seqs[i]) event_id=\(round.events.idString(i)): its owner did not finish it")
                } else if round.kind == .rewound {
                    metrics.recovered.add()
                    eventLog.event("recovered", now: now, "recovered seq=\(round.events.seqs[i]) event_id=\(round.events.idString(i)): the claimer did not vouch for it")
                } else if round.events.attempted[i] {
                    eventLog.event("claimed-on-retry", now: now, "claimed seq=\(round.events.seqs[i]) event_id=\(round.events.idString(i)) (the first answer was lost)")
                } else {
                    eventLog.event("claimed", now: now, "claimed seq=\(round.events.seqs[i]) event_id=\(round.events.idString(i))")
                }
            case .duplicate(let holder):
                duplicate(round.events, i, by: watch.ownerClaims[holder], now: now)
            case .watch(let owner):
                watch.add(round.events, i, owner: owner, now: now)
            case .unanswered(let mayHaveRun):
                // Only a SET that may have run can have left this round's value behind; one
                // Redis refused did not, so its retry treats that value as another copy's.
                retry.append(round.events, i, attempted: mayHaveRun || round.events.attempted[i])
            case .pending:
                retry.append(round.events, i, attempted: true)
            }
        }
        if !retry.isEmpty {
            metrics.claimFailures.add()
            eventLog.event("claim-retry", level: .warning, now: now, "claim round failed for \(retry.count) events (redis: \(redis.lastError ?? "down")); retrying when it is back")
            if round.claim == values.live {
                // Ahead of what arrived since, in seq order as before.
                retry.append(incoming, 0..<incoming.count)
                incoming = retry
            } else {
                pendingRounds.append(ClaimRound(events: retry, claim: round.claim, kind: round.kind))
            }
        }
        if allOurs { swap(&mine, &round.events) } else { sets.give(&round.events) }
        if !mine.isEmpty { start(WorkBatch(events: mine, claim: round.claim)) } else { sets.give(&mine) }
        if claimRounds.isEmpty && watch.isEmpty { watch.forgetOwners() }
        if round.kind == .live { submitClaims() }
    }

    func duplicate(_ events: EventSet, _ index: Int, by holder: [UInt8], now: UInt64) {
        metrics.duplicate.add()
        tracker.finished(events.seqs[index], generation: events.generations[index])
        eventLog.event("duplicate", now: now, "duplicate seq=\(events.seqs[index]) event_id=\(events.idString(index)) (handled by \(ClaimValues.owner(holder)))")
    }
}
