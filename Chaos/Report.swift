import Foundation

/// What one life of a listener did, as scraped.
struct LifeReport: Sendable, Codable {
    var slot: Int
    var instanceID: String
    var startedAt: Double
    var endedAt: Double?
    var endedBy: String?
    var exitStatus: Int32?
    /// Counters from the last scrape (exact for a life ended by the final SIGTERM after the
    /// drain; a lower bound for one killed or terminated mid-run).
    var counters: [String: Double]
    var maxRSSBytes: Int
}

/// The JSON report of a run: enough to see what happened and to replay it.
struct ChaosReport: Sendable, Codable {
    var seed: UInt64
    var command: String
    var replay: String
    var binaries: String
    var producerHasDataDir: Bool
    var kinds: [String]
    var settings: [String: String]
    var faults: [FaultRecord]
    var check: CheckResult
    /// The sum of `dedup_events_processed_total` over every life, and whether it is exact.
    var processedSum: Int
    var processedExact: Bool
    var lives: [LifeReport]
    var warmup: String
    var finalHealth: [String: Int]
    var producerMaxRSSBytes: Int
    var incidents: [String]
    /// Every violation, one line each (the checker's findings are counted here too).
    var violations: [String]
    /// For the first findings: the log lines that name the id, by file.
    var evidence: [String: [String]] = [:]
    var samples: [Sample]
    var seconds: Double
    var passed: Bool

    /// Writes `report.json` into `dir`; returns its path.
    func write(to dir: String) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let path = dir + "/report.json"
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The summary table, then each violation with the faults around it in time.
    func printSummary() {
        let counters = ["dedup_events_received_total", "dedup_events_claimed_total", "dedup_events_duplicate_total",
                        "dedup_events_processed_total", "dedup_events_stored_total", "dedup_events_recovered_total",
                        "dedup_events_dead_lettered_total", "dedup_claim_failures_total", "dedup_store_failures_total",
                        "dedup_stream_gaps_total"]
        var rows: [(String, String)] = [
            ("seed", "\(seed)"),
            ("run", "\(formatSeconds(seconds)), \(lives.count) listener lives, faults begun \(faults.filter { $0.began != nil }.count)"),
            ("published (acked events)", "\(check.ackedEvents), \(check.ackedDistinct) distinct ids"),
            ("indeterminate ids", "\(check.indeterminateDistinct)"),
            ("refused requests", "\(check.refusedRequests) (poison refused at the door: \(check.refusedPoison))"),
            ("  refused by reason", check.refusedByReason.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")),
            ("rows events / dead_letters", "\(check.eventsRows) / \(check.deadLetterRows)"),
            ("lost / duplicated / unexpected / mismatched", "\(check.lost.count) / \(check.duplicated.count) / \(check.unexpected.count) / \(check.mismatched.count)"),
            ("processed (sum over lives)", "\(processedSum)\(processedExact ? "" : " (lower bound: lives ended by signals)")"),
            ("warm-up (no faults)", warmup),
            ("final /health", finalHealth.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")),
            ("max RSS producer / listener", "\(producerMaxRSSBytes >> 20) MiB / \((lives.map(\.maxRSSBytes).max() ?? 0) >> 20) MiB"),
        ]
        for name in counters {
            let total = lives.reduce(0.0) { $0 + ($1.counters[name] ?? 0) }
            rows.append(("  " + name, "\(Int(total))"))
        }
        var kindCounts: [String: Int] = [:]
        for record in faults where record.began != nil { kindCounts[record.episode.kind.rawValue, default: 0] += 1 }
        rows.append(("faults by kind", kindCounts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
        let width = rows.map(\.0.count).max() ?? 0
        print("\n== chaos summary ==")
        for (name, value) in rows { print(name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value) }
        guard !violations.isEmpty else {
            print("\nPASS: no violation (seed \(seed))")
            return
        }
        print("\nFAIL: \(violations.count) violation(s) (seed \(seed)); replay: \(replay)")
        for line in violations.prefix(30) { print("  - " + line) }
        if violations.count > 30 { print("  ... \(violations.count - 30) more in the JSON report") }
        let findings = check.lost + check.duplicated + check.unexpected + check.mismatched
        for finding in findings.prefix(10) {
            guard let at = finding.firstAckedAt else { continue }
            let near = faults.filter { record in
                guard let began = record.began else { return false }
                return began <= at + 10 && (record.ended ?? began) >= at - 5
            }
            print("  \(finding.id) (acked at \(formatSeconds(at)), seqs \(finding.ackedSeqs)): faults around it: "
                  + (near.isEmpty ? "none" : near.map { "#\($0.episode.index) \($0.episode.label) @\(formatSeconds($0.began ?? 0))" }.joined(separator: ", ")))
            for line in (evidence[finding.id] ?? []).prefix(8) { print("      " + line) }
        }
    }
}
