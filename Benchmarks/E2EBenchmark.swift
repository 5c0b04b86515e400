import Foundation
import TestSupport
import Glibc
import Histogram
import Dedup
import Reactor
import ServiceKit

/// `Benchmarks e2e`: the whole system as a user runs it, against its ceilings, in one run.
///
/// 1. Starts its own Redis (no persistence) and PostgreSQL (fsync on, synchronous_commit=off)
///    on free ports in temp dirs.
/// 2. Ceilings on those servers: `redis-benchmark -P 64 -n N -r N SET key:__rand_int__ x PX
///    30000 NX`, and a server-side `INSERT ... SELECT FROM generate_series ... ON CONFLICT DO
///    NOTHING` of N rows into an `events`-shaped table. The lower rate is the ceiling.
/// 3. Throughput: the producer and the listeners as separate processes, `producer flood`
///    publishing N events (10 % duplicate ids, 100-byte payloads, 100 events per POST) as
///    fast as the system takes them. Distinct events stored per second runs from the first
///    publish (the smallest publish timestamp `t` in the stored payloads) to the last row
///    (the largest `processed_at`), then exactly once: rows == distinct ids of the flood, sum
///    of the listeners' dedup_events_processed_total == distinct.
/// 4. Latency: a fresh system, N/2 events paced at half the published rate step 3 sustained;
///    publish -> stored per event (`processed_at` minus the payload's `t`) into an HDR
///    histogram.
/// 5. Durable: step 3 again with N/4 events and the listeners' sessions at the default
///    synchronous_commit=on.
/// Cost (peak RSS, CPU per 1,000 events, listener heap allocations per event) comes from
/// step 3. Every pass starts from a fresh slate (new producer and listeners, empty tables,
/// FLUSHALL, CHECKPOINT).
struct E2EOptions {
    var events = 1_000_000
    var eventsGiven = false
    var listeners = 2
    var duplicates = 0.1
    var quick = false
    var binDir: String?
    /// Published events/s of the latency pass; nil: half of what the throughput pass sustained.
    var latencyRate: Int?

    var effectiveEvents: Int { quick && !eventsGiven ? 20_000 : events }
}

/// The e2e run's outcome: one suite per phase for the JSON report, the closing table, and
/// whether every correctness check passed.
struct E2EOutcome {
    var suites: [SuiteResult] = []
    var table: [(phase: String, label: String, value: String, bar: String)] = []
    var checksPassed = true
    var failures: [String] = []
    var header = ""

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
        for failure in failures { print("FAILED: \(failure)") }
        if failures.isEmpty {
            print(checksPassed ? "exactly-once checks: all passed" : "exactly-once checks: FAILED")
        } else {
            print(checksPassed ? "e2e run: FAILED (see above)" : "e2e run: FAILED, exactly-once checks: FAILED")
        }
    }
}

/// One flood-and-store pass, as measured.
struct PassResult {
    var events = 0
    var distinct = 0
    var accepted = 0
    var floodErrors = 0
    var floodSeconds = 0.0
    var floodRate = 0.0
    var rate = 0
    var rows = 0
    var processedSum = 0
    var storedSum = 0
    var receivedPerListener: [Int] = []
    var duplicateSum = 0
    var recoveredSum = 0
    /// First publish (smallest payload t) to last row (largest processed_at), seconds.
    var seconds = 0.0
    var drainAfterFloodSeconds = 0.0
    var listenerExitStatuses: [Int32] = []
    /// The producer's counters at the end of the pass.
    var broadcastFrames = 0
    var httpRequests = 0
    var latency: Histogram<UInt64>?
    var negativeLatencies = 0
    /// p99 publish -> stored of the events published in each second of the pass, ms.
    var p99PerSecond: [Double] = []
    // Cost.
    var producerPeakRSS = 0
    var listenerPeakRSS: [Int] = []
    var producerCPU = 0.0
    var listenerCPU: [Double] = []
    var redisCPU = 0.0
    var postgresCPU = 0.0
    var floodCPU = 0.0
    var benchmarkCPU = 0.0
    var wallSeconds = 0.0
    var listenerAllocations: [(allocations: UInt64, bytes: UInt64)]?

    var distinctPerSecond: Double { seconds > 0 ? Double(rows) / seconds : 0 }
    var totalCPU: Double { producerCPU + listenerCPU.reduce(0, +) + redisCPU + postgresCPU + floodCPU + benchmarkCPU }
    /// Share of the machine's cores the measured processes used over the pass.
    var utilization: Double { totalCPU / max(wallSeconds, 1e-9) / Double(ProcessInfo.processInfo.activeProcessorCount) }
    var publishedPerSecond: Double { seconds > 0 ? Double(events) / seconds : 0 }

    var exactlyOnce: Bool {
        floodErrors == 0 && accepted == events && rows == distinct && processedSum == distinct && storedSum == distinct
    }

    var checkDescription: String {
        "rows \(rows) == distinct \(distinct): \(rows == distinct ? "ok" : "FAILED"); "
            + "sum processed \(processedSum) == distinct: \(processedSum == distinct ? "ok" : "FAILED"); "
            + "sum stored \(storedSum) == distinct: \(storedSum == distinct ? "ok" : "FAILED"); "
            + "flood accepted \(accepted)/\(events), errors \(floodErrors)"
    }
}

/// Runs the whole end-to-end benchmark.
func runE2EBenchmark(_ options: E2EOptions) -> E2EOutcome {
    var outcome = E2EOutcome()
    let n = options.effectiveEvents
    outcome.header = "\(n) events, \(Int(options.duplicates * 100)) % duplicate ids, 100-byte payloads, \(options.listeners) listeners"
        + (options.quick ? " (quick: correctness only, figures not judged against the bar)" : "")
    print("== e2e: \(outcome.header) ==")
    do {
        try E2ERun(options: options, events: n).run(into: &outcome)
    } catch {
        outcome.failures.append("\(error)")
        print("\n  e2e failed: \(error)")
    }
    for phase in ["e2e_ceiling", "e2e_throughput", "e2e_latency", "e2e_durable", "e2e_cost"]
    where !outcome.suites.contains(where: { $0.name == phase }) {
        outcome.suites.append(SuiteResult(name: phase, figures: [], notes: ["not run: \(outcome.failures.first ?? "an earlier phase failed")"]))
    }
    return outcome
}

private final class E2ERun {
    let options: E2EOptions
    let events: Int
    let dir = TestServers.makeTempDir("e2e")
    var keepDir = false

    init(options: E2EOptions, events: Int) {
        self.options = options
        self.events = events
    }

    deinit {
        if !keepDir { _ = try? FileManager.default.removeItem(atPath: dir) }
    }

    private func bar(_ met: Bool) -> String { options.quick ? "(quick run: not judged)" : (met ? "met" : "NOT met") }

    func run(into outcome: inout E2EOutcome) throws {
        // Everything it needs, before starting anything.
        for tool in ["redis-server", "redis-benchmark", "redis-cli"] where TestServers.findExecutable(tool) == nil {
            throw TestServerError.missing("\(tool) not found: " + BenchRedisServer.installHint)
        }
        let binaries = try E2EBinaries.locate(binDir: options.binDir)
        print("  producer and listener: \(binaries.origin)")
        let redis = try BenchRedisServer()
        defer { redis.stop() }
        let postgres = try BenchPostgresServer()
        defer { postgres.stop() }
        print("  redis-server \(BenchRedisServer.version()) on 127.0.0.1:\(redis.port), no persistence")
        print("  postgres \(postgres.version) on 127.0.0.1:\(postgres.port), \(BenchPostgresServer.settingsDescription)")
        print("  logs in \(dir)")
        let sql = try BenchSQL(url: postgres.url)
        let collation = try sql.query("SHOW lc_collate").string(0, 0) ?? "?"
        print("  postgres database collation: \(collation) (initdb's default from the environment; event_id is TEXT PRIMARY KEY)")
        outcome.header += "\nPostgreSQL \(postgres.version): \(BenchPostgresServer.settingsDescription), lc_collate \(collation); "
            + "redis-server \(BenchRedisServer.version()): no persistence"
        let system = E2ESystem(binaries: binaries, dir: dir, redisURL: redis.url, databaseURL: postgres.url)
        defer { system.stop() }

        // Allocation counter for the listeners (preloaded; see E2EAllocations.swift).
        let (counter, counterProblem) = ListenerAllocationCounter.build(packageRoot: binaries.packageRoot, dir: dir)
        if let counterProblem { print("  listener allocations: not measured (\(counterProblem))") }

        // MARK: ceilings
        print("-- ceilings: what Redis and PostgreSQL alone do on this machine --")
        try redis.cli("FLUSHALL")
        let redisRate = try redis.redisBenchmark(commands: events, randomKeys: events)
        try redis.cli("FLUSHALL")
        let insertRate = try serverSideInsert(sql, rows: events)
        let ceiling = min(redisRate, insertRate)
        let ceilingSource = redisRate <= insertRate ? "redis-benchmark SET NX" : "server-side insert"
        outcome.suites.append(SuiteResult(
            name: "e2e_ceiling",
            figures: [("commands_and_rows", Double(events)), ("redis_benchmark_set_nx_per_sec", redisRate),
                      ("server_side_insert_rows_per_sec", insertRate), ("ceiling_per_sec", ceiling)],
            notes: ["redis-benchmark -P 64 -n \(events) -r \(events) SET key:__rand_int__ x PX 30000 NX (50 connections)",
                    "server side: INSERT INTO an events-shaped table SELECT FROM generate_series ON CONFLICT DO NOTHING, "
                        + "100-byte JSONB payloads, in chunks of \(insertChunk) rows, one session",
                    "ceiling = the lower of the two: \(ceilingSource)"]))
        outcome.table.append(("ceiling", "redis-benchmark SET NX PX (-P 64), cmds/s", fmtRate(redisRate), ""))
        outcome.table.append(("ceiling", "server-side insert (generate_series), rows/s", fmtRate(insertRate), ""))
        outcome.table.append(("ceiling", "ceiling (the lower: \(ceilingSource)), /s", fmtRate(ceiling), ""))

        // MARK: throughput
        print("-- throughput: \(events) events as fast as the system takes them (synchronous_commit=off) --")
        let throughput = try pass(name: "throughput", events: events, rate: 0, system: system, sql: sql, redis: redis,
                                  postgres: postgres, counter: counter)
        let ratio = ceiling > 0 ? throughput.distinctPerSecond / ceiling : 0
        if !throughput.exactlyOnce { outcome.checksPassed = false; outcome.failures.append("throughput pass: \(throughput.checkDescription)") }
        outcome.suites.append(SuiteResult(
            name: "e2e_throughput",
            figures: passFigures(throughput) + [("vs_ceiling_ratio", ratio),
                                                ("bar_100k_distinct_per_sec_met", throughput.distinctPerSecond >= 100_000 ? 1 : 0),
                                                ("bar_half_of_ceiling_met", ratio >= 0.5 ? 1 : 0)],
            notes: passNotes(throughput, "synchronous_commit=off (fsync on)")))
        outcome.table.append(("throughput", "distinct events stored/s (first publish -> last row)", fmtRate(throughput.distinctPerSecond),
                              "bar >= 100k/s: " + bar(throughput.distinctPerSecond >= 100_000)))
        outcome.table.append(("throughput", "vs ceiling", String(format: "%.2f", ratio), "bar >= 0.50: " + bar(ratio >= 0.5)))
        outcome.table.append(("throughput", "events published/s (flood's own rate)", fmtRate(throughput.floodRate), ""))
        outcome.table.append(("throughput", "events per POST / per broadcast frame",
                              String(format: "%.1f / %.1f", Double(throughput.events) / Double(max(throughput.httpRequests, 1)),
                                     Double(throughput.events * options.listeners) / Double(max(throughput.broadcastFrames, 1))), ""))
        outcome.table.append(("throughput", "CPU us per published event, all processes; machine busy",
                              String(format: "%.1f; %.0f %%", throughput.totalCPU / Double(max(throughput.events, 1)) * 1e6, throughput.utilization * 100), ""))
        outcome.table.append(("throughput", "last row after the flood ended, s", String(format: "%.2f", throughput.drainAfterFloodSeconds), ""))
        outcome.table.append(("throughput", "exactly once (rows \(throughput.rows), processed \(throughput.processedSum), distinct \(throughput.distinct))",
                              throughput.exactlyOnce ? "ok" : "FAILED", ""))

        // MARK: cost (from the throughput pass)
        outcome.suites.append(costSuite(throughput))
        let mib = 1024.0 * 1024.0
        let listenerRSS = throughput.listenerPeakRSS.max() ?? 0
        outcome.table.append(("cost", "listener peak RSS (VmHWM, largest), MiB", String(format: "%.1f", Double(listenerRSS) / mib),
                              "bar < 24 MiB: " + bar(Double(listenerRSS) < 24 * mib)))
        outcome.table.append(("cost", "producer peak RSS (VmHWM), MiB", String(format: "%.1f", Double(throughput.producerPeakRSS) / mib), ""))
        let per1k = Double(throughput.events) / 1000
        outcome.table.append(("cost", "CPU s per 1,000 events: producer", String(format: "%.4f", throughput.producerCPU / per1k), ""))
        outcome.table.append(("cost", "CPU s per 1,000 events: each listener (mean)",
                              String(format: "%.4f", throughput.listenerCPU.reduce(0, +) / Double(max(throughput.listenerCPU.count, 1)) / per1k), ""))
        outcome.table.append(("cost", "CPU s per 1,000 events: redis-server", String(format: "%.4f", throughput.redisCPU / per1k), ""))
        outcome.table.append(("cost", "CPU s per 1,000 events: postgres (all processes)", String(format: "%.4f", throughput.postgresCPU / per1k), ""))
        outcome.table.append(("cost", "CPU s per 1,000 events: flood generator", String(format: "%.4f", throughput.floodCPU / per1k), ""))
        if let allocations = throughput.listenerAllocations {
            let perEvent = allocations.enumerated().map { Double($0.element.allocations) / Double(max(throughput.receivedPerListener[$0.offset], 1)) }
            let mean = perEvent.reduce(0, +) / Double(max(perEvent.count, 1))
            outcome.table.append(("cost", "listener heap allocations per received event (mean)", String(format: "%.2f", mean),
                                  "bar <= 2: " + bar(mean <= 2)))
        } else {
            outcome.table.append(("cost", "listener heap allocations per event", "not measured",
                                  "bar <= 2: not judged (\(counterProblem ?? "no counts"))"))
        }

        // MARK: latency
        let halfRate = options.latencyRate ?? max(Int(throughput.publishedPerSecond / 2), 100)
        let latencyEvents = max(events / 2, 1_000)
        print("-- latency: \(latencyEvents) events at \(halfRate) events/s (\(options.latencyRate == nil ? "half the rate sustained above" : "--latency-rate")) --")
        let latency = try pass(name: "latency", events: latencyEvents, rate: halfRate, system: system, sql: sql, redis: redis,
                               postgres: postgres, counter: nil, measureLatency: true)
        if !latency.exactlyOnce { outcome.checksPassed = false; outcome.failures.append("latency pass: \(latency.checkDescription)") }
        let histogram = latency.latency ?? Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        func ms(_ p: Double) -> Double { Double(histogram.valueAtPercentile(p)) / 1000 }
        let p99 = ms(99)
        outcome.suites.append(SuiteResult(
            name: "e2e_latency",
            figures: [("events", Double(latency.events)), ("target_rate_per_sec", Double(halfRate)),
                      ("published_per_sec", latency.floodRate), ("distinct_stored_per_sec", latency.distinctPerSecond),
                      ("rows", Double(latency.rows)), ("distinct", Double(latency.distinct)),
                      ("processed_sum", Double(latency.processedSum)), ("exactly_once_ok", latency.exactlyOnce ? 1 : 0),
                      ("samples", Double(histogram.totalCount)),
                      ("producer_broadcast_frames", Double(latency.broadcastFrames)),
                      ("events_per_broadcast_frame", Double(latency.events * options.listeners) / Double(max(latency.broadcastFrames, 1))),
                      ("producer_http_requests", Double(latency.httpRequests)),
                      ("events_per_post", Double(latency.events) / Double(max(latency.httpRequests, 1))),
                      ("cpu_us_per_published_event_all_processes", latency.totalCPU / Double(max(latency.events, 1)) * 1e6),
                      ("machine_cpu_utilization", latency.utilization),
                      ("producer_cpu_sec_per_1k_events", latency.producerCPU / Double(latency.events) * 1000),
                      ("listeners_total_cpu_sec_per_1k_events", latency.listenerCPU.reduce(0, +) / Double(latency.events) * 1000),
                      ("redis_cpu_sec_per_1k_events", latency.redisCPU / Double(latency.events) * 1000),
                      ("postgres_cpu_sec_per_1k_events", latency.postgresCPU / Double(latency.events) * 1000),
                      ("p50_ms", ms(50)), ("p90_ms", ms(90)), ("p99_ms", p99), ("p99_9_ms", ms(99.9)),
                      ("max_ms", Double(histogram.max) / 1000), ("mean_ms", histogram.mean / 1000),
                      ("p99_ms_worst_second", latency.p99PerSecond.max() ?? 0),
                      ("p99_ms_median_second", latency.p99PerSecond.sorted().dropFirst(latency.p99PerSecond.count / 2).first ?? 0),
                      ("bar_p99_under_25ms_met", p99 < 25 ? 1 : 0)],
            notes: ["publish -> stored per event: processed_at (now() of the listener's insert transaction, so it leaves "
                        + "out that transaction's own run time and commit) minus the payload's t (wall clock when the flood "
                        + "built the POST), in microseconds, into an HDR histogram (3 significant digits)",
                    "paced with producer flood --rate \(halfRate): "
                        + (options.latencyRate == nil ? "half the published rate of the throughput pass" : "given with --latency-rate"),
                    "p99 of the events published in each second of the pass, ms: "
                        + latency.p99PerSecond.prefix(120).map { String(format: "%.1f", $0) }.joined(separator: " "),
                    latency.checkDescription]))
        outcome.table.append(("latency", "publish -> stored p50 at \(fmtRate(Double(halfRate)))/s published, ms", String(format: "%.2f", ms(50)), ""))
        outcome.table.append(("latency", "publish -> stored p99, ms", String(format: "%.2f", p99), "bar < 25 ms: " + bar(p99 < 25)))
        outcome.table.append(("latency", "publish -> stored p99.9, ms", String(format: "%.2f", ms(99.9)), ""))
        outcome.table.append(("latency", "p99 of the worst / median second of publishing, ms",
                              String(format: "%.1f / %.1f", latency.p99PerSecond.max() ?? 0,
                                     latency.p99PerSecond.sorted().dropFirst(latency.p99PerSecond.count / 2).first ?? 0), ""))
        outcome.table.append(("latency", "publish -> stored max, ms", String(format: "%.2f", Double(histogram.max) / 1000), ""))
        outcome.table.append(("latency", "events per POST / per broadcast frame (flood --rate posts what accrued)",
                              String(format: "%.1f / %.1f", Double(latency.events) / Double(max(latency.httpRequests, 1)),
                                     Double(latency.events * options.listeners) / Double(max(latency.broadcastFrames, 1))), ""))
        outcome.table.append(("latency", "CPU us per published event, all processes; machine busy",
                              String(format: "%.1f; %.0f %%", latency.totalCPU / Double(max(latency.events, 1)) * 1e6, latency.utilization * 100), ""))
        outcome.table.append(("latency", "exactly once (rows \(latency.rows), processed \(latency.processedSum), distinct \(latency.distinct))",
                              latency.exactlyOnce ? "ok" : "FAILED", ""))

        // MARK: durable
        let durableEvents = max(events / 4, 1_000)
        print("-- durable: \(durableEvents) events as fast as the system takes them, listeners at synchronous_commit=on --")
        let durableURL = postgres.url + "?options=-c%20synchronous_commit%3Don"
        let check = try BenchSQL(url: durableURL)
        let setting = try check.query("SHOW synchronous_commit").string(0, 0) ?? "?"
        guard setting == "on" else { throw TestServerError.failed("the durable URL gives synchronous_commit=\(setting), not on") }
        let durable = try pass(name: "durable", events: durableEvents, rate: 0, system: system, sql: sql, redis: redis,
                               postgres: postgres, counter: nil, databaseURL: durableURL)
        if !durable.exactlyOnce { outcome.checksPassed = false; outcome.failures.append("durable pass: \(durable.checkDescription)") }
        outcome.suites.append(SuiteResult(name: "e2e_durable", figures: passFigures(durable),
                                          notes: passNotes(durable, "synchronous_commit=on (the default) for the listeners' sessions")))
        outcome.table.append(("durable", "distinct events stored/s, synchronous_commit=on", fmtRate(durable.distinctPerSecond), ""))
        outcome.table.append(("durable", "exactly once (rows \(durable.rows), processed \(durable.processedSum), distinct \(durable.distinct))",
                              durable.exactlyOnce ? "ok" : "FAILED", ""))
        if !outcome.checksPassed { keepDir = true; print("  logs kept in \(dir)") }
    }

    // MARK: ceiling: server-side insert

    private var insertChunk: Int { min(max(events / 20, 1_000), 100_000) }

    /// Inserts `rows` rows into an `events`-shaped table with the server building them
    /// (same id shape, 100-byte JSONB payloads), in chunks so the live line moves.
    private func serverSideInsert(_ sql: BenchSQL, rows: Int) throws -> Double {
        try sql.execute("DROP TABLE IF EXISTS ceiling_events")
        try sql.execute(PostgresSchemaSQL.events(table: "ceiling_events"))
        try sql.execute("CHECKPOINT")
        let live = LiveRate("server-side insert (INSERT ... SELECT FROM generate_series ... ON CONFLICT DO NOTHING)", unit: "rows")
        let start = monotonicSeconds()
        var done = 0
        while done < rows {
            let end = min(done + insertChunk, rows)
            try sql.execute("""
                INSERT INTO ceiling_events (event_id, seq, payload, processed_by)
                SELECT 'e2e-ceiling-' || g, g,
                       ('{"t":' || (1700000000000000000 + g) || ',"pad":"' || repeat('x', 71) || '"}')::jsonb, 'bench-A'
                FROM generate_series(\(done), \(end - 1)) g ON CONFLICT (event_id) DO NOTHING
                """)
            done = end
            live.update(done, of: rows)
        }
        let rate = Double(rows) / (monotonicSeconds() - start)
        live.finish(done)
        let stored = try sql.int("SELECT count(*) FROM ceiling_events")
        guard stored == rows else { throw TestServerError.failed("server-side insert stored \(stored) of \(rows) rows") }
        try sql.execute("DROP TABLE ceiling_events")
        print("  server-side insert: \(fmtRate(rate)) rows/s")
        return rate
    }

    // MARK: one pass

    private func pass(name: String, events: Int, rate: Int, system: E2ESystem, sql: BenchSQL, redis: BenchRedisServer,
                      postgres: BenchPostgresServer, counter: ListenerAllocationCounter?, databaseURL: String? = nil,
                      measureLatency: Bool = false) throws -> PassResult {
        // A fresh slate.
        try sql.execute("DROP TABLE IF EXISTS events")
        try sql.execute("DROP TABLE IF EXISTS listener_offsets, listener_watermarks, dead_letters")
        try sql.execute(PostgresSchemaSQL.events(table: "events"))
        try redis.cli("FLUSHALL")
        try sql.execute("CHECKPOINT")

        var countsFiles: [String] = []
        var env: [String: String] = [:]
        if let counter {
            // One counts file per listener: E2ESystem numbers them, so pass them by index.
            countsFiles = (0..<options.listeners).map { dir + "/\(name)-alloc-\($0).bin" }
            env = counter.environment(countsFile: "")
        }
        try startSystem(system, pass: name, databaseURL: databaseURL, env: env, countsFiles: countsFiles)
        defer { system.stop() }
        guard let producer = system.producer else { throw TestServerError.failed("no producer") }
        let listeners = system.listeners

        var result = PassResult()
        result.events = events
        result.rate = rate
        var allocationsBefore: [(allocations: UInt64, bytes: UInt64)] = []
        if !countsFiles.isEmpty {
            for file in countsFiles {
                guard let counts = ListenerAllocationCounter.settledRead(file) else {
                    throw TestServerError.failed("the listener allocation counter does not publish (\(file))")
                }
                allocationsBefore.append(counts)
            }
        }
        let cpuBefore = (producer: ProcStats.cpuSeconds(producer.pid), listeners: listeners.map { ProcStats.cpuSeconds($0.pid) },
                         redis: ProcStats.cpuSeconds(redis.pid), postgres: ProcStats.treeCPU(root: postgres.pid),
                         children: ProcStats.childrenCPU(), me: ProcStats.totalCPU())
        let wallStart = monotonicSeconds()

        // The flood.
        let prefix = "e2e-\(name)-"
        let floodOut = dir + "/\(name)-flood.json", floodErr = dir + "/\(name)-flood.log"
        _ = FileManager.default.createFile(atPath: floodOut, contents: nil)
        _ = FileManager.default.createFile(atPath: floodErr, contents: nil)
        let flood = Process()
        flood.executableURL = URL(fileURLWithPath: system.binaries.producer)
        flood.arguments = ["flood", "--url", "http://127.0.0.1:\(system.httpPort)", "--count", "\(events)", "--rate", "\(rate)",
                           "--batch", "100", "--connections", "4", "--pipeline", "4", "--duplicates", "\(options.duplicates)",
                           "--payload-bytes", "100", "--id-prefix", prefix, "--seed", "7", "--json"]
        flood.standardOutput = FileHandle(forWritingAtPath: floodOut)
        flood.standardError = FileHandle(forWritingAtPath: floodErr)
        try flood.run()
        TestServers.track(flood.processIdentifier)

        // Indented under the phase header, like the other live lines.
        var line = ProgressLine(label: "  " + name)
        var summary: [String: Any]?
        var floodEndedWall: UInt64 = 0
        var lastStored = -1
        var lastProgress = monotonicSeconds()
        let stallLimit = options.quick ? 30.0 : 90.0
        var published = 0.0
        var stored = 0
        while true {
            if summary == nil && !flood.isRunning {
                flood.waitUntilExit()
                TestServers.untrack(flood.processIdentifier)
                floodEndedWall = wallNanos()
                result.floodCPU = ProcStats.childrenCPU() - cpuBefore.children
                let data = (try? Data(contentsOf: URL(fileURLWithPath: floodOut))) ?? Data()
                guard flood.terminationStatus == 0,
                      let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                    let err = (try? String(contentsOfFile: floodErr, encoding: .utf8)) ?? ""
                    throw TestServerError.failed("producer flood failed (status \(flood.terminationStatus)): "
                                                  + "\(String(decoding: data, as: UTF8.self)) \(err.suffix(500))")
                }
                summary = json
                result.distinct = json["distinct"] as? Int ?? 0
                result.accepted = json["accepted"] as? Int ?? 0
                result.floodErrors = json["errors"] as? Int ?? 0
                result.floodSeconds = (json["seconds"] as? Double) ?? Double(json["seconds"] as? Int ?? 0)
                result.floodRate = Double(json["events_per_second"] as? Int ?? 0)
            }
            if let metrics = producer.metrics() { published = metrics["dedup_producer_published_total"] ?? published }
            let listenerMetrics = listeners.map { $0.metrics() }
            stored = listenerMetrics.reduce(0) { $0 + Int($1?["dedup_events_stored_total"] ?? 0) }
            let elapsed = monotonicSeconds() - wallStart
            let storedText = summary == nil ? "\(stored)" : "\(stored)/\(result.distinct)"
            line.update("published \(Int(published))/\(events), stored \(storedText) distinct, "
                        + "\(fmtRate(Double(stored) / max(elapsed, 1e-9)))/s stored, \(String(format1: elapsed))s",
                        nowNanos: DispatchTime.now().uptimeNanoseconds)
            if summary != nil && stored >= result.distinct { break }
            if stored != lastStored {
                lastStored = stored
                lastProgress = monotonicSeconds()
            } else if monotonicSeconds() - lastProgress > stallLimit {
                keepDir = true
                let tails = ([producer] + listeners).map { "\($0.name): \($0.logTail(5))" }.joined(separator: "\n  ")
                throw TestServerError.failed("\(name) pass stalled: \(stored) rows stored, nothing new for \(Int(stallLimit)) s; logs in \(dir)\n  \(tails)")
            }
            for service in [producer] + listeners where !service.isRunning {
                keepDir = true
                throw TestServerError.failed("\(service.name) exited during the \(name) pass: \(service.logTail())")
            }
            usleep(100_000)
        }
        let elapsed = monotonicSeconds() - wallStart
        line.update("published \(Int(published))/\(events), stored \(stored)/\(result.distinct) distinct, "
                    + "\(fmtRate(Double(stored) / elapsed))/s stored, \(String(format1: elapsed))s",
                    nowNanos: DispatchTime.now().uptimeNanoseconds, final: true)

        // The rows, counted in PostgreSQL.
        var rows = 0
        let deadline = monotonicSeconds() + 10
        repeat {
            rows = try sql.int("SELECT count(*) FROM events")
            if rows >= result.distinct { break }
            usleep(50_000)
        } while monotonicSeconds() < deadline
        // Let the listeners finish what is in flight (marking done, watching), then read them.
        let idleDeadline = monotonicSeconds() + 30
        var finalMetrics: [[String: Double]] = []
        repeat {
            finalMetrics = listeners.compactMap { $0.metrics() }
            if finalMetrics.count == listeners.count && finalMetrics.allSatisfy({ ($0["dedup_events_in_flight"] ?? 1) == 0 }) { break }
            usleep(50_000)
        } while monotonicSeconds() < idleDeadline
        result.wallSeconds = monotonicSeconds() - wallStart
        if let metrics = producer.metrics() {
            result.broadcastFrames = Int(metrics["dedup_producer_broadcast_frames_total"] ?? 0)
            result.httpRequests = Int(metrics["dedup_producer_http_requests_total"] ?? 0)
        }
        result.rows = rows
        result.processedSum = finalMetrics.reduce(0) { $0 + Int($1["dedup_events_processed_total"] ?? 0) }
        result.storedSum = finalMetrics.reduce(0) { $0 + Int($1["dedup_events_stored_total"] ?? 0) }
        result.duplicateSum = finalMetrics.reduce(0) { $0 + Int($1["dedup_events_duplicate_total"] ?? 0) }
        result.recoveredSum = finalMetrics.reduce(0) { $0 + Int($1["dedup_events_recovered_total"] ?? 0) }
        result.receivedPerListener = finalMetrics.map { Int($0["dedup_events_received_total"] ?? 0) }

        // Cost.
        result.producerCPU = ProcStats.cpuSeconds(producer.pid) - cpuBefore.producer
        result.listenerCPU = zip(listeners, cpuBefore.listeners).map { ProcStats.cpuSeconds($0.pid) - $1 }
        result.redisCPU = ProcStats.cpuSeconds(redis.pid) - cpuBefore.redis
        result.postgresCPU = ProcStats.treeDelta(cpuBefore.postgres, ProcStats.treeCPU(root: postgres.pid))
        result.benchmarkCPU = ProcStats.totalCPU() - cpuBefore.me
        result.producerPeakRSS = ProcStats.peakRSS(producer.pid)
        result.listenerPeakRSS = listeners.map { ProcStats.peakRSS($0.pid) }
        if !countsFiles.isEmpty {
            var deltas: [(allocations: UInt64, bytes: UInt64)] = []
            for (file, before) in zip(countsFiles, allocationsBefore) {
                guard let after = ListenerAllocationCounter.settledRead(file) else { break }
                deltas.append((after.allocations - before.allocations, after.bytes - before.bytes))
            }
            if deltas.count == countsFiles.count { result.listenerAllocations = deltas }
        }

        // First publish -> last row, from the database's own timestamps.
        let span = try sql.ints("SELECT (extract(epoch FROM max(processed_at)) * 1000000)::bigint, min((payload->>'t')::bigint) / 1000 FROM events")
        if span.count == 2, span[0] > span[1] { result.seconds = Double(span[0] - span[1]) / 1e6 }
        result.drainAfterFloodSeconds = max(0, Double(span.first ?? 0) / 1e6 - Double(floodEndedWall) / 1e9)

        if measureLatency {
            var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
            let latencies = try sql.query("SELECT (extract(epoch FROM processed_at) * 1000000)::bigint - (payload->>'t')::bigint / 1000 FROM events")
            for row in 0..<latencies.rowCount {
                guard let text = latencies.string(row, 0), let micros = Int64(text) else { continue }
                if micros < 0 { result.negativeLatencies += 1 }
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
        result.listenerExitStatuses = system.stop()
        print("  \(name): \(fmtRate(result.distinctPerSecond)) distinct events/s stored over \(String(format: "%.2f", result.seconds)) s; "
              + result.checkDescription)
        return result
    }

    /// Starts the system; with allocation counting, each listener gets its own counts file.
    private func startSystem(_ system: E2ESystem, pass: String, databaseURL: String?, env: [String: String], countsFiles: [String]) throws {
        if countsFiles.isEmpty {
            try system.start(pass: pass, listenerCount: options.listeners, databaseURL: databaseURL)
        } else {
            try system.start(pass: pass, listenerCount: options.listeners, databaseURL: databaseURL,
                             listenerEnvironment: env, perListenerEnvironment: countsFiles.map { ["DEDUP_ALLOC_COUNTS": $0] })
        }
    }

    // MARK: figures

    private func passFigures(_ r: PassResult) -> [(String, Double)] {
        [("events", Double(r.events)), ("distinct", Double(r.distinct)), ("rows", Double(r.rows)),
         ("processed_sum", Double(r.processedSum)), ("stored_sum", Double(r.storedSum)),
         ("duplicate_sum", Double(r.duplicateSum)), ("recovered_sum", Double(r.recoveredSum)),
         ("exactly_once_ok", r.exactlyOnce ? 1 : 0),
         ("distinct_stored_per_sec", r.distinctPerSecond), ("published_per_sec_end_to_end", r.publishedPerSecond),
         ("first_publish_to_last_row_sec", r.seconds), ("flood_published_per_sec", r.floodRate),
         ("flood_seconds", r.floodSeconds), ("last_row_after_flood_end_sec", r.drainAfterFloodSeconds),
         ("flood_errors", Double(r.floodErrors)),
         ("producer_broadcast_frames", Double(r.broadcastFrames)),
         ("events_per_broadcast_frame", Double(r.events * options.listeners) / Double(max(r.broadcastFrames, 1))),
         ("producer_http_requests", Double(r.httpRequests)),
         ("events_per_post", Double(r.events) / Double(max(r.httpRequests, 1))),
         ("cpu_us_per_published_event_all_processes", r.totalCPU / Double(max(r.events, 1)) * 1e6),
         ("machine_cpu_utilization", r.utilization)]
    }

    private func passNotes(_ r: PassResult, _ durability: String) -> [String] {
        ["producer flood --count \(r.events) --duplicates \(options.duplicates) --payload-bytes 100 --batch 100 --connections 4 "
            + "--pipeline 4\(r.rate > 0 ? " --rate \(r.rate)" : "") against the producer (THREADS default) and "
            + "\(options.listeners) listeners (LOG_LEVEL=warning), PostgreSQL \(durability)",
         "distinct_stored_per_sec: rows / (largest processed_at - smallest payload t), both from PostgreSQL",
         r.checkDescription,
         "listener exit statuses after SIGTERM: \(r.listenerExitStatuses.map(String.init).joined(separator: ", "))"]
    }

    private func costSuite(_ r: PassResult) -> SuiteResult {
        let per1k = Double(r.events) / 1000
        var figures: [(String, Double)] = [
            ("events", Double(r.events)),
            ("producer_peak_rss_bytes", Double(r.producerPeakRSS)),
            ("listener_peak_rss_bytes_max", Double(r.listenerPeakRSS.max() ?? 0)),
        ]
        for (i, rss) in r.listenerPeakRSS.enumerated() { figures.append(("listener_\(i)_peak_rss_bytes", Double(rss))) }
        figures.append(("producer_cpu_sec_per_1k_events", r.producerCPU / per1k))
        for (i, cpu) in r.listenerCPU.enumerated() { figures.append(("listener_\(i)_cpu_sec_per_1k_events", cpu / per1k)) }
        figures.append(("listeners_total_cpu_sec_per_1k_events", r.listenerCPU.reduce(0, +) / per1k))
        figures.append(("redis_cpu_sec_per_1k_events", r.redisCPU / per1k))
        figures.append(("postgres_cpu_sec_per_1k_events", r.postgresCPU / per1k))
        figures.append(("flood_cpu_sec_per_1k_events", r.floodCPU / per1k))
        figures.append(("benchmark_process_cpu_sec_per_1k_events", r.benchmarkCPU / per1k))
        let total = r.producerCPU + r.listenerCPU.reduce(0, +) + r.redisCPU + r.postgresCPU + r.floodCPU + r.benchmarkCPU
        figures.append(("all_processes_cpu_sec", total))
        figures.append(("wall_sec", r.wallSeconds))
        figures.append(("machine_cpu_utilization", total / max(r.wallSeconds, 1e-9) / Double(ProcessInfo.processInfo.activeProcessorCount)))
        let rssMet = Double(r.listenerPeakRSS.max() ?? 0) < 24 * 1024 * 1024
        figures.append(("bar_listener_rss_under_24mib_met", rssMet ? 1 : 0))
        var notes = ["from the throughput pass; RSS is VmHWM from /proc/PID/status after all \(r.events) events; "
                        + "CPU is utime+stime from /proc/PID/stat over the pass (postgres: postmaster and every live child; "
                        + "flood: getrusage of the reaped child), per 1,000 published events"]
        if let allocations = r.listenerAllocations {
            var perEvent: [Double] = []
            for (i, a) in allocations.enumerated() {
                let received = Double(max(r.receivedPerListener[i], 1))
                perEvent.append(Double(a.allocations) / received)
                figures.append(("listener_\(i)_allocations_per_event", Double(a.allocations) / received))
                figures.append(("listener_\(i)_allocated_bytes_per_event", Double(a.bytes) / received))
            }
            let mean = perEvent.reduce(0, +) / Double(max(perEvent.count, 1))
            figures.append(("listener_allocations_per_event_mean", mean))
            figures.append(("bar_allocations_at_most_2_met", mean <= 2 ? 1 : 0))
            notes.append("listener allocations: every malloc/calloc/realloc/memalign in each listener process during the pass "
                         + "(Sources/CAllocCounter/counter.c preloaded with LD_PRELOAD, counts published every 10 ms), "
                         + "divided by the events that listener received; includes its metrics scrapes and timers")
        } else {
            notes.append("listener allocations: not measured (the preload counter could not be built)")
        }
        return SuiteResult(name: "e2e_cost", figures: figures, notes: notes)
    }
}

/// The documented events table, via the reactor's schema (the same SQL the listener runs).
enum PostgresSchemaSQL {
    static func events(table: String) -> String { EventsTable.createSQL(table: table) }
}

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
