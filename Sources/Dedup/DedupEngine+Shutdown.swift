import Logging
import Reactor
import ServiceKit

/// Intake flow (bytes and events held) and the shutdown deadline.
extension DedupEngine {
    /// Seqs from the lowest one held for another member to the highest received: how
    /// far a rewind would go back.
    var heldSpan: UInt64 {
        guard let lowest = held.lowest else { return 0 }
        return tracker.highest &- lowest &+ 1
    }

    /// How far (in seqs) we may read past the lowest seq held for the claimer that it has
    /// not shown finished: how far a rewind may have to go back, and so how much the
    /// producer must still have. Half the lag at which a member leaves the view for
    /// falling behind, so that the claimer, reading behind us, never looks far enough
    /// behind to leave.
    var maxHeldSpan: UInt64 { membership.leaveLag / 2 }

    func updateFlow() {
        let open = !stopping && redisUp && db.canAcceptWork
            && inFlightBytes < settings.maxInFlightBytes && inFlightCount < settings.maxInFlight
            && heldSpan < maxHeldSpan
        guard open != flowOpen else { return }
        flowOpen = open
        onFlowChange?(open)
    }

    /// Stops intake, finishes what finishes within `deadline`, then gives back (compare
    /// and delete) every claim of ours still in hand, so other instances take those events
    /// over at once, and tells watchers so through our progress keys. Calls `done` exactly
    /// once, by the deadline plus a short grace for the release, whatever Redis or
    /// PostgreSQL are doing.
    package func drain(within deadline: Duration, done: @escaping () -> Void) {
        stopping = true
        leaveMembership()
        updateFlow()
        var called = false
        let finish = {
            guard !called else { return }
            called = true
            done()
        }
        let end = loop.nowNanos + deadline.nanoseconds
        // The release gets at most this long after the deadline; then we stop regardless
        // (the claims expire by themselves).
        loop.schedule(in: deadline + .milliseconds(500)) { finish() }
        func check() {
            guard !called else { return }
            let busy = !claimRounds.isEmpty || work.contains { !$0.stage.isFinished || $0.stage == .marking }
            if busy && loop.nowNanos < end {
                loop.schedule(in: .milliseconds(20)) { check() }
                return
            }
            releaseUnfinished(then: finish)
        }
        check()
    }

    private func releaseUnfinished(then finish: @escaping () -> Void) {
        var byClaim: [[UInt8]: EventSet] = [:]
        for batch in work where batch.holdsClaims {
            batch.advance(.shutdownDeadline)
            if let timer = batch.extendTimer { loop.cancel(timer) }
            byClaim[batch.claim, default: EventSet()].append(batch.events, 0..<batch.events.count)
        }
        // Claims still in flight may have been taken: giving back our own value is safe
        // either way.
        for round in claimRounds + pendingRounds {
            byClaim[round.claim, default: EventSet()].append(round.events, 0..<round.events.count)
        }
        guard !byClaim.isEmpty, redisUp else { return finish() }
        let count = byClaim.values.reduce(0) { $0 + $1.count }
        logger.info("releasing \(count) unfinished claims so other instances take them over")
        var remaining = byClaim.count
        for (claim, events) in byClaim {
            ClaimScripts.run(ClaimScripts.releaseAll, redis: redis, events: events, args: [claim]) { [weak self] _ in
                guard let self else { return finish() }
                self.setProgress(ClaimValues.progressKey(forClaim: claim), ClaimValues.releasedMark)
                remaining -= 1
                if remaining == 0 { self.redis.command(["PING"]) { _ in finish() } }
            }
        }
    }
}
