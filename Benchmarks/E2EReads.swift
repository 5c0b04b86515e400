import Foundation
import Synchronization
import TestSupport

/// Reads never slow writes: the throughput pass again with readers paging
/// `/api/events?limit=1000` on the first listener all the while; its stored rate is
/// judged against the throughput pass's.
private let readersCount = 20
private let readsShareBar = 0.85

extension E2ERun {
    func readsPhase(after throughput: PassResult, on setup: E2ESetup, into outcome: inout E2EOutcome) throws {
        print("-- reads: \(events) events as fast as the system takes them, \(readersCount) readers of /api/events?limit=1000 --")
        let reads = try pass(PassPlan(name: "reads", events: events, readers: readersCount), on: setup)
        let share = throughput.distinctPerSecond > 0 ? reads.distinctPerSecond / throughput.distinctPerSecond : 0
        outcome.suites.append(SuiteResult(
            name: "e2e_reads",
            figures: passFigures(reads) + [("readers", Double(readersCount)), ("reader_requests", Double(reads.readerRequests)),
                                           ("reader_failures", Double(reads.readerFailures)), ("vs_throughput_pass", share)],
            notes: ["the throughput pass with \(readersCount) threads reading /api/events?limit=1000 from the first listener throughout"]))
        outcome.storedSeries.append(("reads", reads.storedOverTime))
        outcome.row("reads", "distinct events stored/s with \(readersCount) API readers", fmtRate(reads.distinctPerSecond))
        outcome.row("reads", "vs the throughput pass without readers", String(format: "%.2f", share),
                    bar: "bar >= \(readsShareBar): " + bar(share >= readsShareBar))
        outcome.row("reads", "API pages served (failed)", "\(reads.readerRequests) (\(reads.readerFailures))")
        if reads.readerFailures > 0 {
            outcome.checksPassed = false
            outcome.failures.append("reads pass: \(reads.readerFailures) API reads failed")
        }
        outcome.checkExactlyOnce(reads, phase: "reads")
    }
}

/// Threads that read a listener's API in a loop until stopped.
final class APIReaders: Sendable {
    private final class Tally: Sendable {
        let state = Mutex((stop: false, requests: 0, failures: 0))
    }
    private let tally = Tally()
    private let group = DispatchGroup()

    init(port: Int, count: Int, path: String) {
        for _ in 0..<count {
            DispatchQueue.global().async(group: group) { [tally] in
                while !tally.state.withLock({ $0.stop }) {
                    let ok = blockingGet(port: port, path: path, timeoutSeconds: 30)?.status == 200
                    tally.state.withLock { ok ? ($0.requests += 1) : ($0.failures += 1) }
                }
            }
        }
    }

    /// Stops the readers and returns what they did.
    func stop() -> (requests: Int, failures: Int) {
        tally.state.withLock { $0.stop = true }
        group.wait()
        return tally.state.withLock { ($0.requests, $0.failures) }
    }
}
