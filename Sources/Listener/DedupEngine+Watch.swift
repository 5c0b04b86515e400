import Logging
import Reactor
import ServiceKit

extension DedupEngine {
    // MARK: watching other owners

    func schedulePoll() {
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
    func pollWatched() {
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

    func sweepWatched() {
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
}
