import Logging
import Reactor
import ServiceKit

extension DedupEngine {
    // MARK: flow and shutdown

    func updateFlow() {
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
