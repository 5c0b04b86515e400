import Foundation

/// The e2e run's outcome: one suite per phase for the JSON report, the closing table, and
/// whether every correctness check passed.
struct E2EOutcome {
    var suites: [SuiteResult] = []
    var table: [(phase: String, label: String, value: String, bar: String)] = []
    var checksPassed = true
    var failures: [String] = []
    var header = ""
    /// Stored rows over time, per pass, for the picture.
    var storedSeries: [(pass: String, samples: [(seconds: Double, stored: Int)])] = []
    /// Publish -> stored latency by percentile (ms), for the picture.
    var latencyCurve: [(percentile: Double, ms: Double)] = []
    /// The throughput pass per listener count, ascending (a scaling run), and its table.
    var scaling: [PassResult] = []
    var scalingTable: [String] = []

    mutating func row(_ phase: String, _ label: String, _ value: String, bar: String = "") {
        table.append((phase, label, value, bar))
    }

    /// The pass's exactly-once row; a failed check also fails the run.
    mutating func checkExactlyOnce(_ pass: PassResult, phase: String) {
        failUnlessExactlyOnce(pass, phase: phase)
        row(phase, "exactly once (rows \(pass.rows), processed \(pass.processedSum), distinct \(pass.distinct))",
            pass.exactlyOnce ? "ok" : "FAILED")
    }

    /// Fails the run when the pass stored anything but every distinct event exactly once.
    mutating func failUnlessExactlyOnce(_ pass: PassResult, phase: String) {
        guard !pass.exactlyOnce else { return }
        checksPassed = false
        failures.append("\(phase) pass: \(pass.checkDescription)")
    }

    func printTable() {
        print("\n== end-to-end results ==")
        print(header)
        let labelWidth = table.map { $0.label.count }.max() ?? 0
        let valueWidth = table.map { $0.value.count }.max() ?? 0
        var phase = ""
        for row in table {
            if row.phase != phase {
                phase = row.phase
                print("[\(phase)]")
            }
            let label = row.label + String(repeating: " ", count: labelWidth - row.label.count)
            let value = String(repeating: " ", count: valueWidth - row.value.count) + row.value
            print("  \(label)  \(value)\(row.bar.isEmpty ? "" : "   " + row.bar)")
        }
        for line in scalingTable { print(line) }
        for failure in failures { print("FAILED: \(failure)") }
        if failures.isEmpty {
            print(checksPassed ? "exactly-once checks: all passed" : "exactly-once checks: FAILED")
        } else {
            print(checksPassed ? "e2e run: FAILED (see above)" : "e2e run: FAILED, exactly-once checks: FAILED")
        }
    }
}

/// The traffic and CPU figures every pass reports, in the JSON and in the table.
extension PassResult {
    var trafficFigures: [(String, Double)] {
        [("producer_broadcast_frames", Double(broadcastFrames)),
         ("events_per_broadcast_frame", eventsPerBroadcastFrame),
         ("producer_http_requests", Double(httpRequests)),
         ("events_per_post", eventsPerPost),
         ("redis_commands", Double(redisCommands)),
         ("redis_commands_per_distinct_event", redisCommandsPerDistinct),
         ("cpu_us_per_published_event_all_processes", cpuMicrosPerEvent),
         ("machine_cpu_utilization", utilization)]
    }

    func addTrafficRows(_ phase: String, postsLabel: String, to outcome: inout E2EOutcome) {
        outcome.row(phase, postsLabel, String(format: "%.1f / %.1f", eventsPerPost, eventsPerBroadcastFrame))
        outcome.row(phase, "Redis commands per distinct event (all clients)", String(format: "%.2f", redisCommandsPerDistinct))
        outcome.row(phase, "CPU us per published event, all processes; machine busy",
                    String(format: "%.1f; %.0f %%", cpuMicrosPerEvent, utilization * 100))
    }
}

/// 1234567.8 -> "1,234,568".
func fmtRate(_ value: Double) -> String {
    let rounded = Int(value.rounded())
    var digits = Array(String(abs(rounded)))
    var i = digits.count - 3
    while i > 0 {
        digits.insert(",", at: i)
        i -= 3
    }
    return (rounded < 0 ? "-" : "") + String(digits)
}
