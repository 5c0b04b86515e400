import Foundation
import Glibc

/// One second of the run, for the live line and the timeline.
struct Sample: Sendable, Codable {
    /// Seconds since the run began.
    var t: Double
    /// Events in 202 answers so far.
    var acked: Int
    /// Rows in `events` (nil when PostgreSQL did not answer).
    var stored: Int?
    var faultsBegun: Int
}

/// Once a second: checks that no process died by itself, scrapes every listener's
/// counters (so a life later killed still counts what it did), samples memory, counts
/// stored rows, and prints the live line.
final class Monitor: @unchecked Sendable {
    private let cluster: Cluster
    private let history: PublishHistory
    private let clock: RunClock
    private let lock = NSLock()
    private var samples: [Sample] = []
    private var running = false
    private var finished = false
    private var nemesis: Nemesis?
    private var phase = "start"
    private let isTerminal = isatty(STDOUT_FILENO) != 0
    private var lastPrint = -100.0

    init(cluster: Cluster, history: PublishHistory, clock: RunClock) {
        self.cluster = cluster
        self.history = history
        self.clock = clock
    }

    var allSamples: [Sample] {
        lock.lock()
        defer { lock.unlock() }
        return samples
    }

    /// The live line names the phase, and the faults once a nemesis runs.
    func set(phase: String, nemesis: Nemesis? = nil) {
        lock.lock()
        self.phase = phase
        if let nemesis { self.nemesis = nemesis }
        lock.unlock()
    }

    func start() {
        running = true
        let thread = Thread { [self] in
            while isRunning {
                let began = clock.now
                tick()
                let spent = clock.now - began
                if spent < 1 { usleep(UInt32((1 - spent) * 1e6)) }
            }
            lock.lock()
            finished = true
            lock.unlock()
        }
        thread.name = "chaos-monitor"
        thread.start()
    }

    func stop() {
        lock.lock()
        running = false
        lock.unlock()
        while true {
            lock.lock()
            let done = finished
            lock.unlock()
            if done { break }
            usleep(20_000)
        }
        if isTerminal { print("") }
    }

    private var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return running
    }

    /// Rows in `events` right now, or nil when PostgreSQL does not answer.
    func storedCount() -> Int? {
        cluster.postgres.isRunning ? (try? cluster.postgres.psql("SELECT count(*) FROM events")).flatMap { Int($0) } : nil
    }

    private func tick() {
        cluster.checkProcesses()
        cluster.lock.lock()
        for slot in cluster.slots { if let life = slot.current { cluster.scrape(life) } }
        cluster.lock.unlock()
        let stored = storedCount()
        let acked = history.counts.acked
        lock.lock()
        let records = nemesis?.snapshot ?? []
        let phase = self.phase
        lock.unlock()
        let begun = records.filter { $0.began != nil }
        let active = begun.filter { $0.ended == nil && $0.episode.duration > 0 }.map(\.episode.label)
        let sample = Sample(t: clock.now, acked: acked, stored: stored, faultsBegun: begun.count)
        lock.lock()
        samples.append(sample)
        lock.unlock()
        let lastStored = allSamples.last(where: { $0.stored != nil })?.stored
        var line = "[\(formatSeconds(sample.t))] \(phase): published \(acked) acked, stored \(lastStored.map(String.init) ?? "?")"
        line += ", faults \(begun.count)/\(records.count)"
        if !active.isEmpty { line += " (now: \(active.joined(separator: ", ")))" }
        if isTerminal {
            print("\r\u{1B}[K" + String(line.prefix(160)), terminator: "")
            fflush(nil)
        } else if sample.t - lastPrint >= 5 {
            lastPrint = sample.t
            print(line)
            fflush(nil)
        }
    }
}
