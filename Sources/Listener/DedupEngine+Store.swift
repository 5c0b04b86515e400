import Logging
import Reactor
import ServiceKit

extension DedupEngine {
    // MARK: process, store, mark done

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
        store(batch)
    }

    func store(_ batch: WorkBatch) {
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

    func stored(_ batch: WorkBatch, newRows: Int) {
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

    func markDone(_ batch: WorkBatch) {
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

    func finishWork(_ batch: WorkBatch) {
        if let timer = batch.extendTimer { loop.cancel(timer) }
        work.removeAll { $0 === batch }
    }

    /// Keeps the batch's claims alive until it is stored, so nobody takes over live work.
    func scheduleExtension(_ batch: WorkBatch) {
        let every = max(settings.lockTTLMillis / 3, 1)
        batch.extendTimer = loop.schedule(in: .milliseconds(every)) { [weak self] in
            guard let self, batch.stage == .processing || batch.stage == .storing, !batch.released else { return }
            let ttl = Array(String(self.settings.lockTTLMillis).utf8)
            ClaimScripts.run(ClaimScripts.extendAll, redis: self.redis, events: batch.events, args: [self.values.claim, ttl]) { _ in }
            self.scheduleExtension(batch)
        }
    }

    /// Our progress mark: every event we claimed at or below it is stored.
    var progress: UInt64 {
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
    func publishProgress() {
        let current = progress
        publishedProgress = current
        let mark = Array(String(current).utf8)
        redis.command([Array("SET".utf8), values.progressKey, mark, Array("PX".utf8),
                       Array(String(settings.dedupWindowMillis).utf8)]) { _ in }
    }
}
