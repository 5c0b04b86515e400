import Logging
import Reactor
import ServiceKit

/// Ours: processed, stored (split and dead-lettered where PostgreSQL refuses rows for
/// good), marked done. Claims are extended until the batch is stored.
extension DedupEngine {
    func start(_ batch: WorkBatch) {
        work.append(batch)
        scheduleExtension(batch)
        if settings.processDelayMillis > 0 {
            // Simulated processing runs concurrently for the batch, never blocking the loop.
            loop.schedule(in: .milliseconds(settings.processDelayMillis)) { [weak self] in self?.processed(batch) }
        } else {
            processed(batch)
        }
    }

    func processed(_ batch: WorkBatch) {
        guard !batch.released else { return }
        metrics.processed.add(batch.events.count)
        batch.advance(.processed)
        store(batch)
    }

    /// Times PostgreSQL refuses a part for now (a trigger, a function, a statement
    /// timeout) before its halves are tried apart: once could be a passing state, three
    /// times in a row looks like a row it will not take.
    static let refusalsBeforeSplit = 3

    /// Inserts the batch's next part; when none is left, the batch is stored. A whole batch
    /// on its first try joins the batches waiting for an insert (see `sendWaitingInserts`).
    func store(_ batch: WorkBatch) {
        guard !batch.released else { return }
        guard let part = batch.plan.next else { return stored(batch) }
        if batch.joinsOthers {
            waitingInserts.append(batch)
            return sendWaitingInserts()
        }
        let rows = inserter.makeBatch()
        appendRows(of: batch, part, to: rows)
        metrics.insertStatements.add()
        inserter.insert(rows) { [weak self] result in
            guard let self, !batch.released else { return }
            switch result {
            case .success(let inserted):
                self.metrics.stored.add(inserted.insertedCount)
                batch.plan.inserted()
                batch.retry.reset()
                self.store(batch)
            case .failure(let error) where StoreFailure(error) == .permanent:
                if let row = batch.plan.refused() {
                    batch.advance(.insertRefusedAlone)
                    self.deadLetter(batch, row, error)
                } else {
                    batch.advance(.insertRefusedInPart)
                    self.logger.warning("PostgreSQL refused a part of \(part.count) events for good (\(error)); storing its halves apart to isolate the rows it refuses")
                    self.store(batch)
                }
            case .failure(let error):
                self.metrics.storeFailures.add()
                batch.advance(.insertFailedTransiently)
                let delay = batch.retry.nextDelay()
                if StoreFailure(error) == .refusedForNow, batch.retry.failures >= Self.refusalsBeforeSplit {
                    if batch.plan.split() {
                        self.eventLog.event("store-split", level: .warning, now: self.loop.nowNanos,
                                            "PostgreSQL refused \(part.count) events for now \(batch.retry.failures) times (\(error)); trying each half on its own in \(delay), claims kept alive")
                    } else {
                        batch.plan.postpone()
                        self.eventLog.event("store-retry", level: .warning, now: self.loop.nowNanos,
                                            "PostgreSQL refused seq=\(batch.events.seqs[part.lowerBound]) event_id=\(batch.events.idString(part.lowerBound)) for now \(batch.retry.failures) times (\(error)); the rest of its batch first, then retry in \(delay), claim kept alive")
                    }
                } else {
                    self.eventLog.event("store-retry", level: .warning, now: self.loop.nowNanos,
                                        "storing \(part.count) events failed (\(error)); retry \(batch.retry.failures) in \(delay), claims kept alive")
                }
                self.loop.schedule(in: delay) { [weak self] in self?.store(batch) }
            }
        }
    }

    private func appendRows(of batch: WorkBatch, _ part: Range<Int>, to rows: EventRows) {
        values.instance.withUnsafeBytes { owner in
            for i in part {
                batch.events.withID(i) { id in
                    batch.events.withPayload(i) { payload in
                        rows.append(eventID: id, seq: Int64(clamping: batch.events.seqs[i]),
                                    payload: batch.events.payloadIsNull[i] ? nil : payload,
                                    processedBy: owner)
                    }
                }
            }
        }
    }

    /// At most two of these inserts are in flight (one running, one ready behind it);
    /// the batches that arrive meanwhile go together in the next statement, up to one
    /// claim round's worth of rows (so the pooled insert buffers keep their size): fewer,
    /// larger statements cost PostgreSQL less per row.
    /// If the statement fails, each of its batches is tried alone, the usual way
    /// (retries, halves, dead letters).
    func sendWaitingInserts() {
        let maxRows = settings.maxClaimBatch
        while joinedInsertsInFlight < 2, !waitingInserts.isEmpty {
            var group: [WorkBatch] = []
            var rows: EventRows?
            var count = 0
            while let next = waitingInserts.first, group.isEmpty || count + next.events.count <= maxRows {
                waitingInserts.removeFirst()
                guard !next.released else { continue }
                let into = rows ?? inserter.makeBatch()
                rows = into
                appendRows(of: next, 0..<next.events.count, to: into)
                group.append(next)
                count += next.events.count
            }
            guard let rows else { return }
            joinedInsertsInFlight += 1
            let events = count
            metrics.insertStatements.add()
            inserter.insert(rows) { [weak self] result in
                guard let self else { return }
                self.joinedInsertsInFlight -= 1
                switch result {
                case .success(let inserted): self.metrics.stored.add(inserted.insertedCount)
                case .failure(let error):
                    if StoreFailure(error) != .permanent { self.metrics.storeFailures.add() }
                    guard group.count > 1 else { break }
                    self.eventLog.event("joined-insert-failed", level: .warning, now: self.loop.nowNanos,
                                        "an insert of \(group.count) batches together (\(events) events) failed (\(error)); each batch is stored alone")
                }
                for batch in group where !batch.released {
                    batch.joinsOthers = false
                    if case .success = result {
                        batch.plan.inserted()
                        batch.retry.reset()
                    }
                    self.store(batch)
                }
                self.sendWaitingInserts()
            }
        }
    }

    /// Keeps a row PostgreSQL refuses for good in `dead_letters`, then goes on with the
    /// rest of the batch.
    private func deadLetter(_ batch: WorkBatch, _ row: Int, _ error: PostgresError) {
        batch.events.withID(row) { id in
            batch.events.withPayload(row) { payload in
                deadLetters.insert(eventID: id, seq: batch.events.seqs[row], payload: payload,
                                   error: error.description, failedBy: settings.instance) { [weak self] result in
                    guard let self, !batch.released else { return }
                    switch result {
                    case .success:
                        self.metrics.deadLettered.add()
                        self.logger.warning("dead-lettered seq=\(batch.events.seqs[row]) event_id=\(JSONString.quoted(batch.events.idString(row))): \(error)")
                        if batch.plan.next == nil {
                            batch.advance(.deadLettered)
                            self.stored(batch)
                        } else {
                            batch.advance(.otherRowsPending)
                            self.store(batch)
                        }
                    case .failure(let failure):
                        let delay = batch.retry.nextDelay()
                        self.eventLog.event("dead-letter-retry", level: .warning, now: self.loop.nowNanos,
                                            "keeping a refused event in dead_letters failed (\(failure)); retry in \(delay)")
                        self.loop.schedule(in: delay) { [weak self] in
                            guard let self, !batch.released else { return }
                            self.deadLetter(batch, row, error)
                        }
                    }
                }
            }
        }
    }

    private func stored(_ batch: WorkBatch) {
        if batch.stage == .storing { batch.advance(.inserted) }
        let wall = WallClock.unixMillis()
        metrics.publishToStored.observe(micros: batch.events.acceptedAt.lazy.filter { $0 > 0 }.map { (wall - $0) * 1_000 })
        let now = loop.nowNanos
        for i in 0..<batch.events.count {
            tracker.finished(batch.events.seqs[i], generation: batch.events.generations[i])
            eventLog.event("stored", now: now, "stored seq=\(batch.events.seqs[i]) event_id=\(batch.events.idString(i))")
        }
        markDone(batch)
        if membership.isSharing { heartbeat(now: now) }
    }

    private func markDone(_ batch: WorkBatch) {
        guard batch.events.count > 0 else { return finishWork(batch) }
        let round = DoneMarkRound(count: batch.events.count) { [weak self] failure in
            guard let self else { return }
            if let failure {
                // Idempotent: setting a marker again costs nothing.
                let delay = batch.retry.nextDelay()
                self.eventLog.event("done-retry", level: .warning, now: self.loop.nowNanos, "marking \(batch.events.count) events done failed (\(failure)); retry in \(delay)")
                self.loop.schedule(in: delay) { [weak self] in self?.markDone(batch) }
            } else {
                batch.advance(.markedDone)
                self.finishWork(batch)
            }
        }
        setEach(batch.events, to: values.done, px: settings.dedupWindowMillis, nx: false, get: false, sink: round)
        publishProgress()
    }

    private func finishWork(_ batch: WorkBatch) {
        if let timer = batch.extendTimer { loop.cancel(timer) }
        work.removeAll { $0 === batch }
        sets.give(&batch.events)
    }

    /// Keeps the batch's claims alive until it is stored, so nobody takes over live work.
    private func scheduleExtension(_ batch: WorkBatch) {
        let every = max(settings.lockTTLMillis / 3, 1)
        batch.extendTimer = loop.schedule(in: .milliseconds(every)) { [weak self] in
            guard let self, batch.holdsClaims else { return }
            let ttl = Array(String(self.settings.lockTTLMillis).utf8)
            ClaimScripts.run(ClaimScripts.extendAll, redis: self.redis, events: batch.events, args: [batch.claim, ttl]) { _ in }
            self.scheduleExtension(batch)
        }
    }
}
