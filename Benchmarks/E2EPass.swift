import Dedup
import Foundation
import Glibc
import Histogram
import ServiceKit
import TestSupport

/// One flood-and-store pass, as measured.
struct PassResult {
    var events = 0
    var listeners = 0
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
    /// p99 publish -> stored of the events published in each second of the pass, ms.
    var p99PerSecond: [Double] = []
    /// Rows stored (summed over the listeners) against seconds since the pass began.
    var storedOverTime: [(seconds: Double, stored: Int)] = []
    /// API pages the readers got, and the reads that failed.
    var readerRequests = 0
    var readerFailures = 0
    // Cost.
    var producerPeakRSS = 0
    var listenerPeakRSS: [Int] = []
    var producerCPU = 0.0
    var listenerCPU: [Double] = []
    /// Read-only subscribers beside the listeners (`Benchmarks bystander`), and their CPU.
    var bystanders = 0
    var bystanderCPU: [Double] = []
    var redisCPU = 0.0
    var postgresCPU = 0.0
    /// Commands Redis ran over the pass (`INFO stats`), from every client.
    var redisCommands = 0
    /// Event INSERT statements the listeners sent over the pass.
    var insertStatements = 0
    var floodCPU = 0.0
    var benchmarkCPU = 0.0
    var wallSeconds = 0.0
    var listenerAllocations: [(allocations: UInt64, bytes: UInt64)]?

    var distinctPerSecond: Double { seconds > 0 ? Double(rows) / seconds : 0 }
    var totalCPU: Double { producerCPU + listenerCPU.reduce(0, +) + bystanderCPU.reduce(0, +) + redisCPU + postgresCPU + floodCPU + benchmarkCPU }
    /// Share of the machine's cores the measured processes used over the pass.
    var utilization: Double { totalCPU / max(wallSeconds, 1e-9) / Double(ProcessInfo.processInfo.activeProcessorCount) }
    var publishedPerSecond: Double { seconds > 0 ? Double(events) / seconds : 0 }
    var cpuMicrosPerEvent: Double { totalCPU / Double(max(events, 1)) * 1e6 }
    var eventsPerPost: Double { Double(events) / Double(max(httpRequests, 1)) }
    /// Every listener receives every event.
    var eventsPerBroadcastFrame: Double { Double(events * listeners) / Double(max(broadcastFrames, 1)) }

    var exactlyOnce: Bool {
        floodErrors == 0 && accepted == events && rows == distinct && processedSum == distinct && storedSum == distinct
    }

    var checkDescription: String {
        "rows \(rows) == distinct \(distinct): \(rows == distinct ? "ok" : "FAILED"); "
            + "sum processed \(processedSum) == distinct: \(processedSum == distinct ? "ok" : "FAILED"); "
            + "sum stored \(storedSum) == distinct: \(storedSum == distinct ? "ok" : "FAILED"); "
            + "flood accepted \(accepted)/\(events), errors \(floodErrors)"
    }

    mutating func take(_ flood: FloodSummary) {
        distinct = flood.distinct
        accepted = flood.accepted
        floodErrors = flood.errors
        floodSeconds = flood.seconds
        floodRate = flood.eventsPerSecond
    }

    /// The listeners' counters once they are idle.
    mutating func take(listenerMetrics metrics: [[String: Double]]) {
        func sum(_ name: String) -> Int { metrics.reduce(0) { $0 + Int($1[name] ?? 0) } }
        processedSum = sum("dedup_events_processed_total")
        storedSum = sum("dedup_events_stored_total")
        insertStatements = sum("dedup_insert_statements_total")
        duplicateSum = sum("dedup_events_duplicate_total")
        recoveredSum = sum("dedup_events_recovered_total")
        receivedPerListener = metrics.map { Int($0["dedup_events_received_total"] ?? 0) }
    }
}

/// What every pass runs against: the two servers, the benchmark's own SQL session and the
/// producer and listeners, restarted for each pass.
struct E2ESetup {
    let redis: BenchRedisServer
    let postgres: BenchPostgresServer
    let sql: BenchSQL
    let system: E2ESystem
}

/// How one pass runs: `rate` 0 floods as fast as the system takes it.
struct PassPlan {
    let name: String
    let events: Int
    var rate = 0
    var counter: ListenerAllocationCounter?
    /// Listener processes, when not the run's own count (a scaling pass).
    var listeners: Int?
    var bystanders = 0
    /// The listeners' database URL when not the server's own (another synchronous_commit).
    var databaseURL: String?
    var measureLatency = false
    /// Threads reading the first listener's `/api/events?limit=1000` throughout.
    var readers = 0
}

extension E2ERun {
    /// Runs one pass from a fresh slate: starts the system, floods it, follows it until every
    /// distinct event is stored, then reads the counters, the cost and the database's timestamps.
    func pass(_ plan: PassPlan, on setup: E2ESetup) throws -> PassResult {
        try freshSlate(setup)
        let listenerCount = plan.listeners ?? options.listeners
        let countsFiles = plan.counter == nil ? [] : (0..<listenerCount).map { dir + "/\(plan.name)-alloc-\($0).bin" }
        try setup.system.start(pass: plan.name, listenerCount: listenerCount, bystanderCount: plan.bystanders, databaseURL: plan.databaseURL,
                               listenerEnvironments: plan.counter?.environments(countsFiles: countsFiles) ?? [])
        defer { setup.system.stop() }
        guard let producer = setup.system.producer else { throw TestServerError.failed("no producer") }
        let listeners = setup.system.listeners

        var result = PassResult()
        result.events = plan.events
        result.listeners = listenerCount
        result.bystanders = plan.bystanders
        result.rate = plan.rate
        let allocationsBefore = try ListenerAllocationCounter.readAll(countsFiles)
        let costBefore = try CostSnapshot(producer: producer, listeners: listeners, setup: setup)
        let wallStart = monotonicSeconds()

        let readers = plan.readers > 0 ? APIReaders(port: listeners[0].port, count: plan.readers, path: "/api/events?limit=1000") : nil
        let flood = try setup.system.startFlood(pass: plan.name, events: plan.events, rate: plan.rate, duplicates: options.duplicates)
        let floodEnded = try follow(flood, plan: plan, producer: producer, listeners: listeners, costBefore: costBefore,
                                    wallStart: wallStart, result: &result)
        if let readers { (result.readerRequests, result.readerFailures) = readers.stop() }

        result.rows = try awaitRows(result.distinct, sql: setup.sql)
        let listenerMetrics = idleMetrics(listeners)
        result.wallSeconds = monotonicSeconds() - wallStart
        if let metrics = producer.metrics() {
            result.broadcastFrames = Int(metrics["dedup_producer_broadcast_frames_total"] ?? 0)
            result.httpRequests = Int(metrics["dedup_producer_http_requests_total"] ?? 0)
        }
        result.take(listenerMetrics: listenerMetrics)
        try costBefore.charge(producer: producer, listeners: listeners, setup: setup, to: &result)
        result.listenerAllocations = ListenerAllocationCounter.deltas(countsFiles, since: allocationsBefore)
        try measureSpan(setup.sql, floodEndedWallNanos: floodEnded, into: &result)
        if plan.measureLatency { try measureLatency(setup.sql, into: &result) }

        result.listenerExitStatuses = setup.system.stop()
        print("  \(plan.name): \(fmtRate(result.distinctPerSecond)) distinct events/s stored over \(String(format: "%.2f", result.seconds)) s; "
              + result.checkDescription)
        return result
    }

    /// Empty tables, an empty Redis and a checkpoint, so no pass inherits another's work.
    private func freshSlate(_ setup: E2ESetup) throws {
        try setup.sql.execute("DROP TABLE IF EXISTS events")
        try setup.sql.execute("DROP TABLE IF EXISTS listener_offsets, listener_watermarks, dead_letters")
        try setup.sql.execute(EventsTable.createSQL(table: "events"))
        try setup.redis.cli("FLUSHALL")
        try setup.sql.execute("CHECKPOINT")
    }

    /// Shows the pass live until the flood has ended and every distinct event it published is
    /// stored (by the listeners' own counts); fails fast when the pass stalls or a service
    /// exits. Returns when the flood ended (wall clock, nanoseconds).
    private func follow(_ flood: E2EFlood, plan: PassPlan, producer: ServiceProcess, listeners: [ServiceProcess],
                        costBefore: CostSnapshot, wallStart: Double, result: inout PassResult) throws -> UInt64 {
        var line = ProgressLine(label: "  " + plan.name)  // indented under the phase header, like the other live lines
        var stall = StallWatch(limit: options.quick ? 30 : 90)
        var floodEnded: UInt64?
        var published = 0.0
        var stored = 0
        func progress() -> String {
            let elapsed = monotonicSeconds() - wallStart
            return "published \(Int(published))/\(plan.events), stored \(stored)\(floodEnded == nil ? "" : "/\(result.distinct)") distinct, "
                + "\(fmtRate(Double(stored) / max(elapsed, 1e-9)))/s stored, \(String(format1: elapsed))s"
        }
        while true {
            if floodEnded == nil && !flood.isRunning {
                let summary = try flood.finish()
                floodEnded = summary.endedWallNanos
                result.floodCPU = ProcStats.childrenCPU() - costBefore.children
                result.take(summary)
            }
            if let metrics = producer.metrics() { published = metrics["dedup_producer_published_total"] ?? published }
            stored = listeners.reduce(0) { $0 + Int($1.metrics()?["dedup_events_stored_total"] ?? 0) }
            line.update(progress(), nowNanos: monotonicNanos())
            result.storedOverTime.append((monotonicSeconds() - wallStart, stored))
            if let floodEnded, stored >= result.distinct {
                line.update(progress(), nowNanos: monotonicNanos(), final: true)
                return floodEnded
            }
            if stall.isStalled(stored) {
                keepDir = true
                let tails = ([producer] + listeners).map { "\($0.name): \($0.logTail(5))" }.joined(separator: "\n  ")
                throw TestServerError.failed("\(plan.name) pass stalled: \(stored) rows stored, nothing new for \(Int(stall.limit)) s; "
                                              + "logs in \(dir)\n  \(tails)")
            }
            for service in [producer] + listeners where !service.isRunning {
                keepDir = true
                throw TestServerError.failed("\(service.name) exited during the \(plan.name) pass: \(service.logTail())")
            }
            usleep(100_000)
        }
    }

    /// The rows, counted in PostgreSQL (the listeners' counts may run a commit ahead).
    private func awaitRows(_ distinct: Int, sql: BenchSQL) throws -> Int {
        var rows = 0
        let deadline = monotonicSeconds() + 10
        repeat {
            rows = try sql.int("SELECT count(*) FROM events")
            if rows >= distinct { break }
            usleep(50_000)
        } while monotonicSeconds() < deadline
        return rows
    }

    /// The listeners' metrics once they have finished what is in flight (marking done,
    /// watching), so their counters are final.
    private func idleMetrics(_ listeners: [ServiceProcess]) -> [[String: Double]] {
        let deadline = monotonicSeconds() + 30
        var metrics: [[String: Double]] = []
        repeat {
            metrics = listeners.compactMap { $0.metrics() }
            if metrics.count == listeners.count && metrics.allSatisfy({ ($0["dedup_events_in_flight"] ?? 1) == 0 }) { break }
            usleep(50_000)
        } while monotonicSeconds() < deadline
        return metrics
    }

    /// First publish -> last row, from the database's own timestamps.
    private func measureSpan(_ sql: BenchSQL, floodEndedWallNanos: UInt64, into result: inout PassResult) throws {
        let span = try sql.ints("SELECT (extract(epoch FROM max(processed_at)) * 1000000)::bigint, min((payload->>'t')::bigint) / 1000 FROM events")
        if span.count == 2, span[0] > span[1] { result.seconds = Double(span[0] - span[1]) / 1e6 }
        result.drainAfterFloodSeconds = max(0, Double(span.first ?? 0) / 1e6 - Double(floodEndedWallNanos) / 1e9)
    }
}

/// Notices a pass that stopped storing: no new row for `limit` seconds.
private struct StallWatch {
    let limit: Double
    private var lastStored = -1
    private var lastProgress = monotonicSeconds()

    init(limit: Double) { self.limit = limit }

    mutating func isStalled(_ stored: Int) -> Bool {
        if stored != lastStored {
            lastStored = stored
            lastProgress = monotonicSeconds()
            return false
        }
        return monotonicSeconds() - lastProgress > limit
    }
}
