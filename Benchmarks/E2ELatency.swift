import Foundation
import Histogram
import TestSupport

/// The latency budget: publish -> stored p99.
private let p99BarMs = 25.0

/// HDR histogram of publish -> stored, in microseconds (up to 10 minutes, 3 significant digits).
private func latencyHistogram() -> Histogram<UInt64> {
    Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
}

extension PassResult {
    /// The median of the per-second p99s: the typical second, where the worst shows spikes.
    var p99MedianSecond: Double { p99PerSecond.sorted().dropFirst(p99PerSecond.count / 2).first ?? 0 }
}

extension E2ERun {
    /// A fresh system paced below what the throughput pass sustained, so the latency is the
    /// system's own, not a queue's.
    func latencyPhase(after throughput: PassResult, on setup: E2ESetup, into outcome: inout E2EOutcome) throws {
        let rate = options.latencyRate ?? max(Int(throughput.publishedPerSecond / 2), 100)
        let latencyEvents = max(events / 2, 1_000)
        let rateSource = options.latencyRate == nil ? "half the rate sustained above" : "--latency-rate"
        print("-- latency: \(latencyEvents) events at \(rate) events/s (\(rateSource)) --")
        let latency = try pass(PassPlan(name: "latency", events: latencyEvents, rate: rate, measureLatency: true), on: setup)
        let histogram = latency.latency ?? latencyHistogram()
        func ms(_ p: Double) -> Double { Double(histogram.valueAtPercentile(p)) / 1000 }
        outcome.storedSeries.append(("latency", latency.storedOverTime))
        outcome.latencyCurve = E2EChart.percentiles.map { ($0, ms($0)) }
        let p99 = ms(99)
        outcome.suites.append(SuiteResult(
            name: "e2e_latency",
            figures: [("events", Double(latency.events)), ("target_rate_per_sec", Double(rate)),
                      ("published_per_sec", latency.floodRate), ("distinct_stored_per_sec", latency.distinctPerSecond),
                      ("rows", Double(latency.rows)), ("distinct", Double(latency.distinct)),
                      ("processed_sum", Double(latency.processedSum)), ("exactly_once_ok", latency.exactlyOnce ? 1 : 0),
                      ("samples", Double(histogram.totalCount))]
                + latency.trafficFigures
                + [("producer_cpu_sec_per_1k_events", latency.producerCPU / Double(latency.events) * 1000),
                   ("listeners_total_cpu_sec_per_1k_events", latency.listenerCPU.reduce(0, +) / Double(latency.events) * 1000),
                   ("redis_cpu_sec_per_1k_events", latency.redisCPU / Double(latency.events) * 1000),
                   ("postgres_cpu_sec_per_1k_events", latency.postgresCPU / Double(latency.events) * 1000),
                   ("p50_ms", ms(50)), ("p90_ms", ms(90)), ("p99_ms", p99), ("p99_9_ms", ms(99.9)),
                   ("max_ms", Double(histogram.max) / 1000), ("mean_ms", histogram.mean / 1000),
                   ("p99_ms_worst_second", latency.p99PerSecond.max() ?? 0),
                   ("p99_ms_median_second", latency.p99MedianSecond),
                   ("bar_p99_under_25ms_met", p99 < p99BarMs ? 1 : 0)],
            notes: ["publish -> stored per event: processed_at (now() of the listener's insert transaction, so it leaves "
                        + "out that transaction's own run time and commit) minus the payload's t (wall clock when the flood "
                        + "built the POST), in microseconds, into an HDR histogram (3 significant digits)",
                    "paced with producer flood --rate \(rate): "
                        + (options.latencyRate == nil ? "half the published rate of the throughput pass" : "given with --latency-rate"),
                    "p99 of the events published in each second of the pass, ms: "
                        + latency.p99PerSecond.prefix(120).map { String(format: "%.1f", $0) }.joined(separator: " "),
                    latency.checkDescription]))
        outcome.row("latency", "publish -> stored p50 at \(fmtRate(Double(rate)))/s published, ms", String(format: "%.2f", ms(50)))
        outcome.row("latency", "publish -> stored p99, ms", String(format: "%.2f", p99), bar: "bar < 25 ms: " + bar(p99 < p99BarMs))
        outcome.row("latency", "publish -> stored p99.9, ms", String(format: "%.2f", ms(99.9)))
        outcome.row("latency", "p99 of the worst / median second of publishing, ms",
                    String(format: "%.1f / %.1f", latency.p99PerSecond.max() ?? 0, latency.p99MedianSecond))
        outcome.row("latency", "publish -> stored max, ms", String(format: "%.2f", Double(histogram.max) / 1000))
        latency.addTrafficRows("latency", postsLabel: "events per POST / per broadcast frame (flood --rate posts what accrued)",
                               to: &outcome)
        outcome.checkExactlyOnce(latency, phase: "latency")
    }

    /// Publish -> stored of every stored event, from the database: the listener's commit
    /// time (processed_at) minus the flood's wall-clock stamp (the payload's t, nanoseconds).
    func measureLatency(_ sql: BenchSQL, into result: inout PassResult) throws {
        var histogram = latencyHistogram()
        let latencies = try sql.query("SELECT (extract(epoch FROM processed_at) * 1000000)::bigint - (payload->>'t')::bigint / 1000 FROM events")
        for row in 0..<latencies.rowCount {
            guard let text = latencies.string(row, 0), let micros = Int64(text) else { continue }
            // A listener's clock a little behind the flood's reads as 0, not as a wrapped huge value.
            _ = histogram.record(UInt64(max(micros, 0)))
        }
        result.latency = histogram
        let windows = try sql.query("""
            SELECT w, percentile_disc(0.99) WITHIN GROUP (ORDER BY lat) FROM (
              SELECT ((payload->>'t')::bigint - min((payload->>'t')::bigint) OVER ()) / 1000000000 AS w,
                     (extract(epoch FROM processed_at) * 1000000)::bigint - (payload->>'t')::bigint / 1000 AS lat
              FROM events) s
            GROUP BY w ORDER BY w
            """)
        result.p99PerSecond = (0..<windows.rowCount).map { Double(windows.string($0, 1) ?? "0").map { $0 / 1000 } ?? 0 }
        print("  latency: p50 \(String(format: "%.2f", Double(histogram.valueAtPercentile(50)) / 1000)) ms, "
              + "p99 \(String(format: "%.2f", Double(histogram.valueAtPercentile(99)) / 1000)) ms, "
              + "p99.9 \(String(format: "%.2f", Double(histogram.valueAtPercentile(99.9)) / 1000)) ms over \(histogram.totalCount) events")
    }
}
