import Logging
import Reactor
import ServiceKit

/// Progress marks: what we publish for our claims, and what we read of other owners'.
extension DedupEngine {
    /// Our live progress mark: every event claimed under the live value at or below it is
    /// finished. Events received but not yet claimed count as unfinished, because a lost
    /// reply can leave the live value on their keys before we know it.
    var liveProgress: UInt64 {
        var lowest = tracker.highest + 1
        if !incoming.isEmpty { lowest = min(lowest, incoming.seqs[0]) }
        for round in claimRounds where round.claim == values.live { lowest = min(lowest, round.minSeq) }
        for batch in work where batch.holdsClaims && batch.claim == values.live { lowest = min(lowest, batch.minSeq) }
        return lowest - 1
    }

    /// Publishes the live progress mark (per stored batch, and on the poll tick when it
    /// moved without a batch: events we merely received also move it, and a watcher
    /// waiting on the tail of our claims must not wait for a claim to expire), and the
    /// final mark of every closed scope none of whose claims is in our hands any more.
    func publishProgress() {
        guard !stopping else { return }
        let current = liveProgress
        publishedProgress = current
        setProgress(values.liveProgressKey, Array(String(current).utf8))
        closedScopes.removeAll { claim in
            let inHand = pendingRounds.contains { $0.claim == claim } || claimRounds.contains { $0.claim == claim }
                || work.contains { $0.holdsClaims && $0.claim == claim }
            if !inHand { setProgress(ClaimValues.progressKey(forClaim: claim), ClaimValues.finishedMark) }
            return !inHand
        }
    }

    func setProgress(_ key: [UInt8], _ mark: [UInt8]) {
        redis.command([Array("SET".utf8), key, mark, Array("PX".utf8), Array(String(settings.dedupWindowMillis).utf8)]) { _ in }
    }

    func schedulePoll() {
        loop.schedule(in: .milliseconds(20)) { [weak self] in
            guard let self else { return }
            self.pollWatched()
            self.pollMembers()
            if self.redisUp && self.tracker.highest > 0
                && (self.liveProgress != self.publishedProgress || !self.closedScopes.isEmpty) {
                self.publishProgress()
            }
            self.metrics.inFlight.set(self.inFlightCount)
            self.metrics.inFlightBytes.set(self.inFlightBytes)
            self.metrics.watching.set(self.watch.count)
            self.metrics.deferred.set(self.held.count)
            self.metrics.sharing.set(self.membership.view.names.count)
            self.metrics.watermark.set(Int(clamping: self.safeWatermark))
            self.metrics.lag.set(Int(clamping: self.tracker.highest - self.safeWatermark))
            self.reportClusterRouting()
            self.eventLog.tick(now: self.loop.nowNanos)
            self.schedulePoll()
        }
    }

    /// Adds the cluster client's redirections and slot map changes since the last tick to
    /// the metrics (its own counts are plain properties, read on this loop only).
    private func reportClusterRouting() {
        guard let cluster = redis as? RedisClusterClient else { return }
        metrics.redisRedirections.add(cluster.redirections - reportedRedirections)
        metrics.redisSlotMapUpdates.add(cluster.slotMapUpdates - reportedSlotMapUpdates)
        reportedRedirections = cluster.redirections
        reportedSlotMapUpdates = cluster.slotMapUpdates
    }

    /// One pipelined GET per owner's progress mark (not one MGET: on a cluster the marks
    /// live in different slots) drops what the owners finished; events whose claim could
    /// have expired, or whose owner gave them back, are claimed again (a takeover if the
    /// owner died).
    func pollWatched() {
        guard !watch.isEmpty, redisUp, !pollInFlight else { return }
        let owners = watch.activeOwners
        pollInFlight = true
        var remaining = owners.count
        for owner in owners {
            redis.command([Array("GET".utf8), ClaimValues.progressKey(forClaim: watch.ownerClaims[owner])]) { [weak self] result in
                guard let self else { return }
                if case .success(let mark) = result, let bytes = mark.bytes, owner < self.watch.progress.count {
                    if bytes.elementsEqual(ClaimValues.releasedMark) {
                        self.watch.released[owner] = true
                    } else if bytes.elementsEqual(ClaimValues.finishedMark) {
                        self.watch.progress[owner] = .max
                    } else if let seq = bytes.withUnsafeBytes({ StreamLineParser.integer($0, 0..<bytes.count) }) {
                        // One claim value's marks only grow, so the highest read stays true.
                        self.watch.progress[owner] = max(self.watch.progress[owner], seq)
                    }
                }
                remaining -= 1
                guard remaining == 0 else { return }
                self.pollInFlight = false
                self.sweepWatched()
            }
        }
    }

    func sweepWatched() {
        let now = loop.nowNanos
        let expiry = UInt64(settings.lockTTLMillis + 50) * 1_000_000
        var takeOver = EventSet()
        let progress = watch.progress
        let released = watch.released
        let claims = watch.ownerClaims
        var finished: [(EventSet, Int, Int)] = []
        watch.filter(keep: { seq, owner, since in
            seq > progress[owner] && !released[owner] && now &- since < expiry
        }, removed: { events, i, owner in
            if events.seqs[i] <= progress[owner] {
                finished.append((events, i, owner))
            } else {
                takeOver.append(events, i)
            }
        })
        for (events, i, owner) in finished { duplicate(events, i, by: claims[owner], now: now) }
        if !takeOver.isEmpty && !stopping { claimApart(takeOver, kind: .takeover) }
        if claimRounds.isEmpty && watch.isEmpty { watch.forgetOwners() }
    }

    /// Claims `events` under a claim value of their own (they are older than what our live
    /// value's progress mark may already have passed), whose final mark ("finished") is
    /// published once none of them is in our hands.
    func claimApart(_ events: EventSet, kind: ClaimRound.Kind) {
        let claim = values.makeRecoveryClaim()
        closedScopes.append(claim)
        sendClaims(ClaimRound(events: events, claim: claim, kind: kind))
    }
}
