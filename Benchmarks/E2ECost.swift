import Foundation
import Glibc
import TestSupport

/// Every measured process's CPU time, and Redis' command count, at the start of a pass;
/// `charge` books what each used since then, and the peak RSS, into the pass's result.
struct CostSnapshot {
    let redisCommands: Int
    let producer: Double
    let listeners: [Double]
    let bystanders: [Double]
    let redis: Double
    let postgres: [pid_t: Double]
    /// Reaped children: the flood, once it has ended.
    let children: Double
    let me: Double

    /// Redis is asked first and last, so its CPU leaves the INFO calls out.
    init(producer: ServiceProcess, listeners: [ServiceProcess], setup: E2ESetup) throws {
        redisCommands = try setup.redis.commandsProcessed()
        self.producer = ProcStats.cpuSeconds(producer.pid)
        self.listeners = listeners.map { ProcStats.cpuSeconds($0.pid) }
        bystanders = setup.system.bystanders.map { ProcStats.cpuSeconds($0.pid) }
        redis = ProcStats.cpuSeconds(setup.redis.pid)
        postgres = ProcStats.treeCPU(root: setup.postgres.pid)
        children = ProcStats.childrenCPU()
        me = ProcStats.totalCPU()
    }

    func charge(producer: ServiceProcess, listeners: [ServiceProcess], setup: E2ESetup, to result: inout PassResult) throws {
        result.producerCPU = ProcStats.cpuSeconds(producer.pid) - self.producer
        result.listenerCPU = zip(listeners, self.listeners).map { ProcStats.cpuSeconds($0.pid) - $1 }
        result.bystanderCPU = zip(setup.system.bystanders, bystanders).map { ProcStats.cpuSeconds($0.pid) - $1 }
        result.redisCPU = ProcStats.cpuSeconds(setup.redis.pid) - redis
        result.postgresCPU = ProcStats.treeDelta(postgres, ProcStats.treeCPU(root: setup.postgres.pid))
        result.benchmarkCPU = ProcStats.totalCPU() - me
        result.producerPeakRSS = ProcStats.peakRSS(producer.pid)
        result.listenerPeakRSS = listeners.map { ProcStats.peakRSS($0.pid) }
        // Less one: the reading at the start counts itself in this one.
        result.redisCommands = try setup.redis.commandsProcessed() - redisCommands - 1
    }
}

extension PassResult {
    /// CPU seconds over the pass as microseconds per distinct event stored.
    func microsPerDistinct(_ cpuSeconds: Double) -> Double { cpuSeconds / Double(max(distinct, 1)) * 1e6 }

    var redisCommandsPerDistinct: Double { Double(redisCommands) / Double(max(distinct, 1)) }

    /// Each listener's heap allocations per event it received; nil when not counted.
    var allocationsPerEvent: [Double]? {
        listenerAllocations.map { allocations in
            allocations.enumerated().map { Double($0.element.allocations) / Double(max(receivedPerListener[$0.offset], 1)) }
        }
    }

    var allocationsPerEventMean: Double? {
        allocationsPerEvent.map { $0.reduce(0, +) / Double(max($0.count, 1)) }
    }
}

/// The listeners' memory budget (the cost rows and the scaling table).
let listenerRSSBar = 24.0 * 1024 * 1024
/// Heap allocations per event a listener may make, on average.
private let allocationsBar = 2.0

extension E2ERun {
    /// Cost comes from the throughput pass: the most events, at full speed.
    func reportCost(_ throughput: PassResult, counterProblem: String?, into outcome: inout E2EOutcome) {
        outcome.suites.append(costSuite(throughput))
        let mib = 1024.0 * 1024.0
        let listenerRSS = Double(throughput.listenerPeakRSS.max() ?? 0)
        outcome.row("cost", "listener peak RSS (VmHWM, largest), MiB", String(format: "%.1f", listenerRSS / mib),
                    bar: "bar < 24 MiB: " + bar(listenerRSS < listenerRSSBar))
        outcome.row("cost", "producer peak RSS (VmHWM), MiB", String(format: "%.1f", Double(throughput.producerPeakRSS) / mib))
        let per1k = Double(throughput.events) / 1000
        func cpu(_ seconds: Double) -> String { String(format: "%.4f", seconds / per1k) }
        let listenerMean = throughput.listenerCPU.reduce(0, +) / Double(max(throughput.listenerCPU.count, 1))
        outcome.row("cost", "CPU s per 1,000 events: producer", cpu(throughput.producerCPU))
        outcome.row("cost", "CPU s per 1,000 events: each listener (mean)", cpu(listenerMean))
        outcome.row("cost", "CPU s per 1,000 events: redis-server", cpu(throughput.redisCPU))
        outcome.row("cost", "CPU s per 1,000 events: postgres (all processes)", cpu(throughput.postgresCPU))
        outcome.row("cost", "CPU s per 1,000 events: flood generator", cpu(throughput.floodCPU))
        if let mean = throughput.allocationsPerEventMean {
            outcome.row("cost", "listener heap allocations per received event (mean)", String(format: "%.2f", mean),
                        bar: "bar <= 2: " + bar(mean <= allocationsBar))
        } else {
            outcome.row("cost", "listener heap allocations per event", "not measured",
                        bar: "bar <= 2: not judged (\(counterProblem ?? "no counts"))")
        }
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
        figures += [
            ("listeners_total_cpu_sec_per_1k_events", r.listenerCPU.reduce(0, +) / per1k),
            ("redis_cpu_sec_per_1k_events", r.redisCPU / per1k),
            ("postgres_cpu_sec_per_1k_events", r.postgresCPU / per1k),
            ("flood_cpu_sec_per_1k_events", r.floodCPU / per1k),
            ("benchmark_process_cpu_sec_per_1k_events", r.benchmarkCPU / per1k),
            ("all_processes_cpu_sec", r.totalCPU),
            ("wall_sec", r.wallSeconds),
            ("machine_cpu_utilization", r.utilization),
            ("bar_listener_rss_under_24mib_met", Double(r.listenerPeakRSS.max() ?? 0) < listenerRSSBar ? 1 : 0),
        ]
        var notes = ["from the throughput pass; RSS is VmHWM from /proc/PID/status after all \(r.events) events; "
                        + "CPU is utime+stime from /proc/PID/stat over the pass (postgres: postmaster and every live child; "
                        + "flood: getrusage of the reaped child), per 1,000 published events"]
        if let allocations = r.listenerAllocations, let perEvent = r.allocationsPerEvent, let mean = r.allocationsPerEventMean {
            for (i, a) in allocations.enumerated() {
                let received = Double(max(r.receivedPerListener[i], 1))
                figures.append(("listener_\(i)_allocations_per_event", perEvent[i]))
                figures.append(("listener_\(i)_allocated_bytes_per_event", Double(a.bytes) / received))
            }
            figures.append(("listener_allocations_per_event_mean", mean))
            figures.append(("bar_allocations_at_most_2_met", mean <= allocationsBar ? 1 : 0))
            notes.append("listener allocations: every malloc/calloc/realloc/memalign in each listener process during the pass "
                         + "(Sources/CAllocCounter/counter.c preloaded with LD_PRELOAD, counts published every 10 ms), "
                         + "divided by the events that listener received; includes its metrics scrapes and timers")
        } else {
            notes.append("listener allocations: not measured (the preload counter could not be built)")
        }
        return SuiteResult(name: "e2e_cost", figures: figures, notes: notes)
    }
}
