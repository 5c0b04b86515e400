import TestSupport

/// The bars the throughput pass is judged against: distinct events stored per second, and
/// the share of the ceiling that is.
private let distinctPerSecondBar = 100_000.0
private let ceilingShareBar = 0.5

extension E2ERun {
    /// Every event as fast as the system takes it, PostgreSQL at synchronous_commit=off.
    func throughputPhase(ceiling: Double, counter: ListenerAllocationCounter?, on setup: E2ESetup,
                         into outcome: inout E2EOutcome) throws -> PassResult {
        print("-- throughput: \(events) events as fast as the system takes them (synchronous_commit=off) --")
        let throughput = try pass(PassPlan(name: "throughput", events: events, counter: counter), on: setup)
        outcome.storedSeries.append(("throughput", throughput.storedOverTime))
        let ratio = ceiling > 0 ? throughput.distinctPerSecond / ceiling : 0
        let fastEnough = throughput.distinctPerSecond >= distinctPerSecondBar
        outcome.suites.append(SuiteResult(
            name: "e2e_throughput",
            figures: passFigures(throughput) + [("vs_ceiling_ratio", ratio),
                                                ("bar_100k_distinct_per_sec_met", fastEnough ? 1 : 0),
                                                ("bar_half_of_ceiling_met", ratio >= ceilingShareBar ? 1 : 0)],
            notes: passNotes(throughput, "synchronous_commit=off (fsync on)")))
        outcome.row("throughput", "distinct events stored/s (first publish -> last row)", fmtRate(throughput.distinctPerSecond),
                    bar: "bar >= 100k/s: " + bar(fastEnough))
        outcome.row("throughput", "vs ceiling", String(format: "%.2f", ratio), bar: "bar >= 0.50: " + bar(ratio >= ceilingShareBar))
        outcome.row("throughput", "events published/s (flood's own rate)", fmtRate(throughput.floodRate))
        throughput.addTrafficRows("throughput", postsLabel: "events per POST / per broadcast frame", to: &outcome)
        outcome.row("throughput", "last row after the flood ended, s", String(format: "%.2f", throughput.drainAfterFloodSeconds))
        outcome.checkExactlyOnce(throughput, phase: "throughput")
        return throughput
    }

    /// The throughput pass again, smaller, with the listeners' sessions at PostgreSQL's
    /// default synchronous_commit=on: what waiting for each commit's flush costs.
    func durablePhase(on setup: E2ESetup, into outcome: inout E2EOutcome) throws {
        let durableEvents = max(events / 4, 1_000)
        print("-- durable: \(durableEvents) events as fast as the system takes them, listeners at synchronous_commit=on --")
        let durableURL = setup.postgres.url + "?options=-c%20synchronous_commit%3Don"
        let setting = try BenchSQL(url: durableURL).query("SHOW synchronous_commit").string(0, 0) ?? "?"
        guard setting == "on" else { throw TestServerError.failed("the durable URL gives synchronous_commit=\(setting), not on") }
        let durable = try pass(PassPlan(name: "durable", events: durableEvents, databaseURL: durableURL), on: setup)
        outcome.storedSeries.append(("durable", durable.storedOverTime))
        outcome.suites.append(SuiteResult(name: "e2e_durable", figures: passFigures(durable),
                                          notes: passNotes(durable, "synchronous_commit=on (the default) for the listeners' sessions")))
        outcome.row("durable", "distinct events stored/s, synchronous_commit=on", fmtRate(durable.distinctPerSecond))
        outcome.checkExactlyOnce(durable, phase: "durable")
    }

    func passFigures(_ r: PassResult) -> [(String, Double)] {
        [("events", Double(r.events)), ("distinct", Double(r.distinct)), ("rows", Double(r.rows)),
         ("processed_sum", Double(r.processedSum)), ("stored_sum", Double(r.storedSum)),
         ("duplicate_sum", Double(r.duplicateSum)), ("recovered_sum", Double(r.recoveredSum)),
         ("exactly_once_ok", r.exactlyOnce ? 1 : 0),
         ("distinct_stored_per_sec", r.distinctPerSecond), ("published_per_sec_end_to_end", r.publishedPerSecond),
         ("first_publish_to_last_row_sec", r.seconds), ("flood_published_per_sec", r.floodRate),
         ("flood_seconds", r.floodSeconds), ("last_row_after_flood_end_sec", r.drainAfterFloodSeconds),
         ("flood_errors", Double(r.floodErrors))]
            + r.trafficFigures
    }

    private func passNotes(_ r: PassResult, _ durability: String) -> [String] {
        ["producer flood --count \(r.events) --duplicates \(options.duplicates) --payload-bytes 100 --batch 100 --connections 4 "
            + "--pipeline 4\(r.rate > 0 ? " --rate \(r.rate)" : "") against the producer (THREADS default) and "
            + "\(r.listeners) listeners (LOG_LEVEL=warning), PostgreSQL \(durability)",
         "distinct_stored_per_sec: rows / (largest processed_at - smallest payload t), both from PostgreSQL",
         r.checkDescription,
         "listener exit statuses after SIGTERM: \(r.listenerExitStatuses.map(String.init).joined(separator: ", "))"]
    }
}
