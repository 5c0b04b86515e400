import Foundation
import TestSupport

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
/// Scaling (`--listeners 1,2,4`): step 3 once per listener count, each from a fresh slate,
/// then a table of rate, Redis commands, CPU and RSS per count; the other steps run once,
/// with the run's own count (`E2EOptions.listeners`).
///
/// One file a phase: E2ECeilings, E2EThroughput (throughput and durable), E2EScaling,
/// E2EReads, E2ELatency, E2ECost; E2EPass runs one pass, E2EServices starts the system and
/// the flood, E2EReport holds the table, E2EChart the picture.
struct E2EOptions {
    static let defaultListeners = 2

    var events = 1_000_000
    var eventsGiven = false
    /// Listener counts, ascending; more than one runs the scaling passes.
    var listenerCounts = [defaultListeners]
    var duplicates = 0.1
    var quick = false
    var binDir: String?
    /// Published events/s of the latency pass; nil: half of what the throughput pass sustained.
    var latencyRate: Int?
    /// Read-only subscribers beside one listener in an extra scaling pass (0: none).
    var bystanders = 0
    /// How many times the scaling passes run, the counts alternating; more than one judges
    /// each count by its median rate.
    var rounds = 1

    var effectiveEvents: Int { quick && !eventsGiven ? 20_000 : events }

    /// The count every phase but scaling runs with: the default when listed, so a scaling run's
    /// other figures stay comparable with a plain run's; otherwise the smallest.
    var listeners: Int { listenerCounts.contains(Self.defaultListeners) ? Self.defaultListeners : listenerCounts[0] }

    var scaling: Bool { listenerCounts.count > 1 }
}

/// Runs the whole end-to-end benchmark.
func runE2EBenchmark(_ options: E2EOptions) -> E2EOutcome {
    var outcome = E2EOutcome()
    let n = options.effectiveEvents
    outcome.header = "\(n) events, \(Int(options.duplicates * 100)) % duplicate ids, 100-byte payloads, \(options.listeners) listeners"
        + (options.scaling ? " (scaling: \(options.listenerCounts.map(String.init).joined(separator: ", ")))" : "")
        + (options.quick ? " (quick: correctness only, figures not judged against the bar)" : "")
    print("== e2e: \(outcome.header) ==")
    do {
        try E2ERun(options: options, events: n).run(into: &outcome)
    } catch {
        outcome.failures.append("\(error)")
        print("\n  e2e failed: \(error)")
    }
    let phases = ["e2e_ceiling", "e2e_throughput"] + (options.scaling ? ["e2e_scaling"] : [])
        + ["e2e_reads", "e2e_latency", "e2e_durable", "e2e_cost"]
    for phase in phases where !outcome.suites.contains(where: { $0.name == phase }) {
        outcome.suites.append(SuiteResult(name: phase, figures: [], notes: ["not run: \(outcome.failures.first ?? "an earlier phase failed")"]))
    }
    return outcome
}

/// One run: its temp dir (kept when something failed) and the phases in order.
final class E2ERun {
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

    /// A bar's verdict for the table; a quick run is too short to judge.
    func bar(_ met: Bool) -> String { options.quick ? "(quick run: not judged)" : (met ? "met" : "NOT met") }

    func run(into outcome: inout E2EOutcome) throws {
        // Everything it needs, before starting anything.
        for tool in ["redis-server", "redis-benchmark", "redis-cli"] where TestServers.findExecutable(tool) == nil {
            throw TestServerError.missing("\(tool) not found: " + BenchRedisServer.installHint)
        }
        let binaries = try ServiceBinaries.locate(binDir: options.binDir, environment: "DEDUP_BENCH_BIN_DIR")
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
        print("  postgres database collation: \(collation) (initdb's default from the environment; event_id itself is TEXT COLLATE \"C\" PRIMARY KEY)")
        outcome.header += "\nPostgreSQL \(postgres.version): \(BenchPostgresServer.settingsDescription), lc_collate \(collation); "
            + "redis-server \(BenchRedisServer.version()): no persistence"
        let system = E2ESystem(binaries: binaries, dir: dir, redisURL: redis.url, databaseURL: postgres.url)
        defer { system.stop() }
        let setup = E2ESetup(redis: redis, postgres: postgres, sql: sql, system: system)

        // Allocation counter for the listeners (preloaded; see E2EAllocations.swift).
        let (counter, counterProblem) = ListenerAllocationCounter.build(packageRoot: binaries.packageRoot, dir: dir)
        if let counterProblem { print("  listener allocations: not measured (\(counterProblem))") }

        let ceiling = try ceilings(setup, into: &outcome)
        let throughput = options.scaling
            ? try scalingPhase(ceiling: ceiling, counter: counter, on: setup, into: &outcome)
            : try throughputPhase(ceiling: ceiling, counter: counter, on: setup, into: &outcome)
        reportCost(throughput, counterProblem: counterProblem, into: &outcome)
        try readsPhase(after: throughput, on: setup, into: &outcome)
        try latencyPhase(after: throughput, on: setup, into: &outcome)
        try durablePhase(on: setup, into: &outcome)
        if !outcome.checksPassed { keepDir = true; print("  logs kept in \(dir)") }
    }
}
