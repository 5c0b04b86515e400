import Foundation
import TestSupport

/// The scaling bars: adding listeners must not cost rate (every count at least 0.9x the
/// smallest count's), and two listeners, with the producer's durable log on, store at least
/// 150,000 distinct events/s. The listeners' memory bar is the cost rows' (E2ECost).
private let shareOfSmallestBar = 0.9
private let twoListenersRateBar = 150_000.0

extension E2ERun {
    /// The throughput pass once per listener count, ascending, each on fresh services (a new
    /// producer with an empty log, new listeners, the events table created empty, FLUSHALL).
    /// The run's own count is the throughput phase itself, so its rows, cost and picture come
    /// from the same pass as its scaling row; returns that pass.
    func scalingPhase(ceiling: Double, counter: ListenerAllocationCounter?, on setup: E2ESetup,
                      into outcome: inout E2EOutcome) throws -> PassResult {
        var throughput: PassResult?
        for count in options.listenerCounts {
            let result: PassResult
            if count == options.listeners {
                result = try throughputPhase(ceiling: ceiling, counter: counter, on: setup, into: &outcome)
                throughput = result
            } else {
                print("-- scaling: \(events) events as fast as the system takes them, \(listenersText(count)) --")
                // The allocation counter goes into every count's listeners, so all counts run alike.
                result = try pass(PassPlan(name: "scaling-\(count)", events: events, counter: counter, listeners: count), on: setup)
                outcome.failUnlessExactlyOnce(result, phase: "scaling, \(listenersText(count))")
            }
            outcome.scaling.append(result)
        }
        guard let throughput else { throw TestServerError.failed("the run's own listener count is not among the scaling counts") }
        var rates = Dictionary(uniqueKeysWithValues: outcome.scaling.map { ($0.listeners, [$0.distinctPerSecond]) })
        var largestRSS = outcome.scaling.map { $0.listenerPeakRSS.max() ?? 0 }.max() ?? 0
        if options.rounds > 1 {
            for round in 2...options.rounds {
                for count in options.listenerCounts {
                    print("-- scaling, round \(round) of \(options.rounds): \(events) events as fast as the system takes them, \(listenersText(count)) --")
                    let result = try pass(PassPlan(name: "scaling-\(count)-round-\(round)", events: events, counter: counter,
                                                   listeners: count), on: setup)
                    outcome.failUnlessExactlyOnce(result, phase: "scaling, round \(round), \(listenersText(count))")
                    rates[count, default: []].append(result.distinctPerSecond)
                    largestRSS = max(largestRSS, result.listenerPeakRSS.max() ?? 0)
                }
            }
        }
        let repeated = options.rounds > 1 ? Rounds(rates: rates, largestRSS: largestRSS) : nil
        var bystanderRow: PassResult?
        if options.bystanders > 0 {
            print("-- scaling: \(events) events as fast as the system takes them, 1 listener and \(options.bystanders) bystanders --")
            let result = try pass(PassPlan(name: "bystanders-\(options.bystanders)", events: events, counter: counter, listeners: 1,
                                           bystanders: options.bystanders), on: setup)
            outcome.failUnlessExactlyOnce(result, phase: "scaling, 1 listener and \(options.bystanders) bystanders")
            bystanderRow = result
        }
        outcome.suites.append(scalingSuite(outcome.scaling, bystanderRow: bystanderRow, rounds: repeated))
        outcome.scalingTable = scalingTable(outcome.scaling, bystanderRow: bystanderRow, rounds: repeated)
        return throughput
    }

    /// Every round's rate per listener count, when the passes ran more than once.
    struct Rounds {
        let rates: [Int: [Double]]
        let largestRSS: Int

        func median(_ count: Int) -> Double {
            let sorted = (rates[count] ?? []).sorted()
            guard !sorted.isEmpty else { return 0 }
            return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
    }

    private func listenersText(_ count: Int) -> String { "\(count) listener\(count == 1 ? "" : "s")" }

    /// A pass's rate against the smallest count's (the first row).
    private func share(_ r: PassResult, of rows: [PassResult]) -> Double {
        let base = rows[0].distinctPerSecond
        return base > 0 ? r.distinctPerSecond / base : 0
    }

    /// Every bar of the scaling table: its JSON key, whether it is met, and what it says.
    /// With several rounds the rates are each count's median, and the RSS the largest of any pass.
    private func scalingBars(_ rows: [PassResult], rounds: Rounds?) -> [(key: String, met: Bool, text: String)] {
        let base = rows[0].listeners
        let over = rounds.map { " (medians of \($0.rates[base]?.count ?? 0) rounds)" } ?? ""
        func rate(_ r: PassResult) -> Double { rounds?.median(r.listeners) ?? r.distinctPerSecond }
        var bars: [(key: String, met: Bool, text: String)] = rows.dropFirst().map { r in
            let ratio = rate(rows[0]) > 0 ? rate(r) / rate(rows[0]) : 0
            return ("bar_\(r.listeners)_listeners_at_least_0_9_of_\(base)_met", ratio >= shareOfSmallestBar,
                    "\(listenersText(r.listeners)): \(String(format: "%.2f", ratio))× the \(base)-listener rate\(over) (bar ≥ 0.9×)")
        }
        if let two = rows.first(where: { $0.listeners == 2 }) {
            bars.append(("bar_2_listeners_150k_distinct_per_sec_met", rate(two) >= twoListenersRateBar,
                         "2 listeners: \(fmtRate(rate(two))) distinct events/s\(over) (bar ≥ \(fmtRate(twoListenersRateBar)))"))
        }
        let largest = rows.max { ($0.listenerPeakRSS.max() ?? 0) < ($1.listenerPeakRSS.max() ?? 0) } ?? rows[0]
        let rss = Double(max(largest.listenerPeakRSS.max() ?? 0, rounds?.largestRSS ?? 0))
        bars.append(("bar_listener_rss_under_24mib_met", rss < listenerRSSBar,
                     "listener peak RSS: \(String(format: "%.1f", rss / 1_048_576)) MiB, the largest ("
                        + (rounds == nil ? "with \(listenersText(largest.listeners))" : "of every pass") + ") (bar < \(Int(listenerRSSBar / 1_048_576)) MiB)"))
        return bars
    }

    /// One line per count: every round's rate, the median, and the median against the base's.
    private func roundLines(_ rows: [PassResult], _ rounds: Rounds) -> [String] {
        let base = rounds.median(rows[0].listeners)
        return ["rounds (the counts alternating, each pass on fresh services):"] + rows.map { r in
            let all = (rounds.rates[r.listeners] ?? []).map(fmtRate).joined(separator: ", ")
            let median = rounds.median(r.listeners)
            return "  \(listenersText(r.listeners)): \(all); median \(fmtRate(median)), "
                + String(format: "%.2f", base > 0 ? median / base : 0) + "× the \(rows[0].listeners)-listener median"
        }
    }

    /// The table printed after the run's other figures: one row per count, then each bar.
    private func scalingTable(_ rows: [PassResult], bystanderRow: PassResult?, rounds: Rounds?) -> [String] {
        func f1(_ value: Double) -> String { String(format: "%.1f", value) }
        var cells = [["listeners", "distinct/s", "vs \(rows[0].listeners)", "Redis cmds/event", "rows/INSERT", "producer µs",
                      "listeners µs (each)", "redis µs", "postgres µs", "listener peak RSS MiB", "exactly once"]]
        for r in rows + [bystanderRow].compactMap({ $0 }) {
            let each = (r.listenerCPU + r.bystanderCPU).map { f1(r.microsPerDistinct($0)) }.joined(separator: " ")
            cells.append([r.bystanders > 0 ? "1 + \(r.bystanders) bystanders" : "\(r.listeners)", fmtRate(r.distinctPerSecond), String(format: "%.2f", share(r, of: rows)),
                          String(format: "%.2f", r.redisCommandsPerDistinct),
                          String(format: "%.0f", Double(r.storedSum) / Double(max(r.insertStatements, 1))), f1(r.microsPerDistinct(r.producerCPU)),
                          "\(f1(r.microsPerDistinct(r.listenerCPU.reduce(0, +) + r.bystanderCPU.reduce(0, +)))) (\(each))", f1(r.microsPerDistinct(r.redisCPU)),
                          f1(r.microsPerDistinct(r.postgresCPU)), f1(Double(r.listenerPeakRSS.max() ?? 0) / 1_048_576),
                          r.exactlyOnce ? "ok" : "FAILED"])
        }
        let widths = cells[0].indices.map { column in cells.map { $0[column].count }.max() ?? 0 }
        let lines = cells.map { row in
            "  " + zip(row, widths).map { String(repeating: " ", count: $1 - $0.count) + $0 }.joined(separator: "  ")
        }
        return ["\n== scaling: \(fmtRate(Double(events))) events per listener count, each on fresh services =="]
            + lines
            + ["  µs: CPU (utime+stime) over the pass per distinct event stored, per process kind; postgres: all its processes",
               "  Redis cmds/event: INFO stats total_commands_processed over the pass (every client) ÷ distinct events",
               "  rows/INSERT: rows the listeners stored ÷ the INSERT statements they sent (dedup_insert_statements_total)",
               bystanderRow.map { "  1 + \($0.bystanders) bystanders: one listener, and \($0.bystanders) subscribers that only read every frame "
                                  + "(their CPU in the listeners column): what every added subscriber costs though it claims nothing" },
               ].compactMap { $0 }
            + (rounds.map { roundLines(rows, $0) } ?? []) + ["bars:"]
            + scalingBars(rows, rounds: rounds).map { "  " + (options.quick ? "–" : $0.met ? "✓" : "✗") + " " + $0.text
                                          + (options.quick ? " (quick run: not judged)" : "") }
    }

    private func scalingSuite(_ rows: [PassResult], bystanderRow: PassResult?, rounds: Rounds?) -> SuiteResult {
        var figures: [(String, Double)] = [("events_per_count", Double(events))]
        for r in rows + [bystanderRow].compactMap({ $0 }) {
            let p = r.bystanders > 0 ? "listeners_1_bystanders_\(r.bystanders)_" : "listeners_\(r.listeners)_"
            figures += [(p + "distinct", Double(r.distinct)), (p + "rows", Double(r.rows)),
                        (p + "exactly_once_ok", r.exactlyOnce ? 1 : 0),
                        (p + "distinct_stored_per_sec", r.distinctPerSecond),
                        (p + "vs_\(rows[0].listeners)_listeners_ratio", share(r, of: rows)),
                        (p + "redis_commands", Double(r.redisCommands)),
                        (p + "redis_commands_per_distinct_event", r.redisCommandsPerDistinct),
                        (p + "rows_per_insert_statement", Double(r.storedSum) / Double(max(r.insertStatements, 1))),
                        (p + "producer_cpu_us_per_distinct_event", r.microsPerDistinct(r.producerCPU)),
                        (p + "listeners_cpu_us_per_distinct_event", r.microsPerDistinct(r.listenerCPU.reduce(0, +)))]
            for (i, cpu) in r.listenerCPU.enumerated() {
                figures.append((p + "listener_\(i)_cpu_us_per_distinct_event", r.microsPerDistinct(cpu)))
            }
            figures += [(p + "redis_cpu_us_per_distinct_event", r.microsPerDistinct(r.redisCPU)),
                        (p + "postgres_cpu_us_per_distinct_event", r.microsPerDistinct(r.postgresCPU)),
                        (p + "listener_peak_rss_bytes_max", Double(r.listenerPeakRSS.max() ?? 0)),
                        (p + "machine_cpu_utilization", r.utilization)]
        }
        if let rounds {
            figures.append(("rounds", Double(options.rounds)))
            for r in rows {
                let p = "listeners_\(r.listeners)_"
                for (i, rate) in (rounds.rates[r.listeners] ?? []).enumerated() {
                    figures.append((p + "round_\(i + 1)_distinct_stored_per_sec", rate))
                }
                figures += [(p + "median_distinct_stored_per_sec", rounds.median(r.listeners)),
                            (p + "median_vs_\(rows[0].listeners)_listeners_ratio",
                             rounds.median(rows[0].listeners) > 0 ? rounds.median(r.listeners) / rounds.median(rows[0].listeners) : 0)]
            }
        }
        figures += scalingBars(rows, rounds: rounds).map { ($0.key, $0.met ? 1 : 0) }
        return SuiteResult(name: "e2e_scaling", figures: figures, notes: [
            "listener counts: \(rows.map { String($0.listeners) }.joined(separator: ", ")); the throughput pass per count, "
                + "each on fresh services: a new producer with an empty durable log (its own DATA_DIR), new listeners, "
                + "the events table created empty, FLUSHALL, CHECKPOINT; the \(options.listeners)-listener row is the throughput pass",
            "distinct_stored_per_sec: rows / (largest processed_at - smallest payload t), as the throughput pass",
            "redis_commands: INFO stats total_commands_processed after the pass minus before, less the first INFO "
                + "(the only one of the two counted): whatever the listeners sent, per distinct event stored",
            "cpu_us_per_distinct_event: utime+stime from /proc/PID/stat over the pass, microseconds per distinct event stored; "
                + "postgres: the postmaster and every live child",
            "listener_peak_rss_bytes_max: VmHWM from /proc/PID/status of each listener after the pass, the largest",
        ] + rows.map { "\(listenersText($0.listeners)): " + $0.checkDescription }
          + [bystanderRow].compactMap { $0.map { "1 listener and \($0.bystanders) bystanders: " + $0.checkDescription } })
    }
}
