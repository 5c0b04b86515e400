import Foundation
import Glibc
import TestSupport

/// One chaos run, start to verdict: start the system, a fault-free warm-up whose counters
/// must be exact, the fault phase (publisher, nemesis and monitor at once), heal, drain,
/// check, report.
final class ChaosRun {
    let options: ChaosOptions
    let clock = RunClock()
    let dir: String
    private var violations: [String] = []
    private var warmup = "not run"
    /// The fault kinds drawn from, once the binaries are known.
    private var kindsUsed: [FaultKind]?

    init(options: ChaosOptions) {
        self.options = options
        dir = options.output + "/seed-\(options.seed)"
    }

    var replayCommand: String {
        var parts = ["swift run -c release Chaos --seed \(options.seed)", "--seconds \(Int(options.seconds))",
                     "--listeners \(options.listeners)", "--rate \(options.rate)", "--lock-ttl-ms \(options.lockTTLMillis)"]
        // The kinds are pinned: the default set depends on the binaries, and another set
        // draws another schedule from the same seed.
        if let faults = kindsUsed ?? options.faults { parts.append("--faults " + (faults.isEmpty ? "none" : faults.map(\.rawValue).joined(separator: ","))) }
        if options.maxBatch != ChaosOptions().maxBatch { parts.append("--max-batch \(options.maxBatch)") }
        if options.gap != ChaosOptions().gap { parts.append("--gap \(options.gap.lowerBound),\(options.gap.upperBound)") }
        if options.processDelayMillis != ChaosOptions().processDelayMillis { parts.append("--process-delay-ms \(options.processDelayMillis)") }
        if options.redisCluster { parts.append("--redis-cluster") }
        if options.postgresAsyncCommit { parts.append("--postgres-async-commit") }
        return parts.joined(separator: " ")
    }

    /// Runs and returns true when no violation was found.
    func run() throws -> Bool {
        print("chaos: seed \(options.seed) (replay: \(replayCommand))")
        let binaries = try ChaosBinaries.locate(binDir: options.binDir)
        let kinds = options.kinds(producerHasDataDir: binaries.producerHasDataDir)
        kindsUsed = kinds
        if let kind = kinds.first(where: \.needsDurableProducer), !binaries.producerHasDataDir {
            throw ChaosUsageError("\(kind.rawValue) needs a producer with a durable log (--data-dir); this one has none")
        }
        print("chaos: replay with: \(replayCommand)")
        let warmupSeconds = min(5, options.seconds / 6)
        let schedule = FaultSchedule.generate(seed: options.seed, seconds: options.seconds, kinds: kinds,
                                              listeners: options.listeners, lockTTLMillis: options.lockTTLMillis, gap: options.gap,
                                              redisNodes: options.redisNodes)
        print("chaos: binaries \(binaries.origin); producer durable log: \(binaries.producerHasDataDir ? "yes" : "no (producer faults off)")")
        print("chaos: redis: \(options.redisCluster ? "a Redis Cluster of \(ChaosOptions.clusterMasters) masters with a replica each, reached directly" : "one redis-server, through each listener's proxy")")
        if options.postgresAsyncCommit {
            print("chaos: NEGATIVE CONTROL: the listeners' PostgreSQL sessions run at synchronous_commit=off; a PostgreSQL crash loses confirmed rows, and this run must find them lost")
        }
        print("chaos: \(schedule.episodes.count) faults over \(Int(options.seconds)) s from \(kinds.count) kinds:")
        for episode in schedule.episodes { print("  #\(episode.index) +\(formatSeconds(episode.start)) \(episode.label)") }
        if options.dryRun { return true }

        try? FileManager.default.removeItem(atPath: dir)
        let logDir = dir + "/logs"
        try FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true)
        let cluster = try Cluster(options: options, binaries: binaries, clock: clock, logDir: logDir,
                                  failingDisk: kinds.contains(.producerDiskFail))
        try cluster.start()
        let history = PublishHistory()
        let publisher = Publisher(seed: options.seed, port: cluster.httpPort, rate: options.rate, maxBatch: options.maxBatch,
                                  history: history, clock: clock)
        let monitor = Monitor(cluster: cluster, history: history, clock: clock)
        monitor.start()

        // Warm-up: no fault, so every counter must be exact (guarantee 3).
        monitor.set(phase: "warm-up")
        let warmStart = clock.now
        publisher.resume()
        usleep(UInt32(warmupSeconds * 1e6))
        publisher.pause()
        let warmDrained = drain(cluster, history: history, seconds: 30)
        checkWarmup(cluster, history: history, drained: warmDrained)

        // The fault phase.
        let nemesis = Nemesis(cluster: cluster, schedule: schedule, clock: clock)
        monitor.set(phase: "faults", nemesis: nemesis)
        let faultStart = clock.now
        nemesis.start()
        publisher.resume()
        while clock.now < faultStart + options.seconds { usleep(100_000) }
        publisher.stop()
        nemesis.cancelAndWait()
        let faultEnd = clock.now

        // Heal and drain.
        monitor.set(phase: "drain")
        cluster.healAll()
        if !drain(cluster, history: history, seconds: options.drainSeconds) {
            violations.append("drain: not everything was finished within \(Int(options.drainSeconds)) s of healing: \(quiescenceState(cluster))")
        }
        let drainEnd = clock.now
        var finalHealth: [String: Int] = [:]
        for slot in cluster.slots {
            let status = waitForHealth(cluster, port: slot.port)
            finalHealth[slot.current?.instanceID ?? slot.baseID] = status ?? 0
            if status != 200 {
                violations.append("final /health of \(slot.current?.instanceID ?? slot.baseID) is \(status.map(String.init) ?? "no answer"): \(healthBody(slot.port))")
            }
        }
        monitor.stop()

        // The verdict: rows read while everything still runs, then an orderly stop (its
        // scrapes are exact: nothing is left to do).
        let (events, deadLetters) = readRows(cluster)
        cluster.shutdown()
        let check = Checker.check(attempts: history.all, events: events, deadLetters: deadLetters)
        for finding in check.lost { violations.append("lost: \(finding.id) (acked seqs \(finding.ackedSeqs))") }
        for finding in check.duplicated { violations.append("duplicated: \(finding.id): \(finding.detail)") }
        for finding in check.unexpected { violations.append("unexpected: \(finding.id): \(finding.detail)") }
        for finding in check.mismatched { violations.append("mismatched: \(finding.id): \(finding.detail)") }
        for line in check.seqErrors { violations.append("seq: " + line) }

        let lives = cluster.slots.flatMap(\.lives)
        let processed = lives.reduce(0) { $0 + Int($1.metrics["dedup_events_processed_total"] ?? 0) }
        let exact = lives.allSatisfy { $0.endedBy == "final sigterm" }
        let storedDistinct = Set(events.map(\.id) + deadLetters.map(\.id)).count
        let faultsBegun = nemesis.snapshot.filter { $0.began != nil }.count
        if exact && processed < storedDistinct {
            violations.append("processed: the listeners processed \(processed) events for \(storedDistinct) distinct ids stored")
        }
        if faultsBegun == 0 && processed != storedDistinct {
            violations.append("processed: with no fault, \(processed) events processed for \(storedDistinct) distinct ids (must be equal)")
        }
        let listenerBound = options.maxListenerRSSMiB << 20
        for life in lives where life.maxRSS > listenerBound {
            violations.append("memory: listener \(life.instanceID) reached \(life.maxRSS >> 20) MiB RSS (bound \(options.maxListenerRSSMiB) MiB)")
        }
        if cluster.producerMaxRSS > options.maxProducerRSSMiB << 20 {
            violations.append("memory: producer reached \(cluster.producerMaxRSS >> 20) MiB RSS (bound \(options.maxProducerRSSMiB) MiB)")
        }
        for incident in cluster.incidents { violations.append("at \(formatSeconds(incident.time)): \(incident.text)") }

        let faults = nemesis.snapshot
        let findings = check.lost + check.duplicated + check.unexpected + check.mismatched
        let evidence = Self.logLines(naming: findings.prefix(20).map(\.id), in: logDir)
        var report = ChaosReport(
            seed: options.seed, command: (["Chaos"] + CommandLine.arguments.dropFirst()).joined(separator: " "),
            replay: replayCommand, binaries: binaries.origin, producerHasDataDir: binaries.producerHasDataDir,
            kinds: kinds.map(\.rawValue),
            settings: ["seconds": "\(options.seconds)", "listeners": "\(options.listeners)", "rate": "\(options.rate)",
                       "max_batch": "\(options.maxBatch)", "lock_ttl_ms": "\(options.lockTTLMillis)", "process_delay_ms": "\(options.processDelayMillis)",
                       "gap": "\(options.gap.lowerBound),\(options.gap.upperBound)",
                       "drain_seconds": "\(options.drainSeconds)", "warmup_seconds": "\(warmupSeconds)"],
            faults: faults, check: check, processedSum: processed, processedExact: exact,
            lives: lives.map { LifeReport(slot: $0.slot, instanceID: $0.instanceID, startedAt: $0.startedAt, endedAt: $0.endedAt,
                                          endedBy: $0.endedBy, exitStatus: $0.exitStatus, counters: $0.metrics, maxRSSBytes: $0.maxRSS) },
            warmup: warmup, finalHealth: finalHealth, producerMaxRSSBytes: cluster.producerMaxRSS,
            incidents: cluster.incidents.map { "\(formatSeconds($0.time)) \($0.text)" }, violations: violations,
            samples: monitor.allSamples, seconds: clock.now, passed: violations.isEmpty)
        report.evidence = evidence
        report.printSummary()
        let svg = TimelineSVG.render(samples: monitor.allSamples, faults: faults,
                                     phases: [("warm-up", warmStart, faultStart), ("faults", faultStart, faultEnd), ("drain", faultEnd, drainEnd)],
                                     title: "chaos seed \(options.seed): stored/s with faults (\(report.passed ? "PASS" : "FAIL: \(violations.count) violations"))")
        try svg.write(toFile: dir + "/timeline.svg", atomically: true, encoding: .utf8)
        let path = try report.write(to: dir)
        print("wrote \(path), \(dir)/timeline.svg, logs in \(logDir)")
        if report.passed { cluster.removeTempDirs() } else {
            print("kept: PostgreSQL data \(cluster.postgres.dir), Redis \(cluster.redisDirs.joined(separator: ", ")), producer data \(cluster.dataDir)")
        }
        return report.passed
    }

    /// Waits until every listener is healthy, has nothing in flight or watched, and has
    /// finished up to the producer's last seq, and the rows cover every acknowledged id:
    /// twice in a row, a second apart. False when `seconds` pass first.
    private func drain(_ cluster: Cluster, history: PublishHistory, seconds: Double) -> Bool {
        let deadline = clock.now + seconds
        var calm = 0
        while clock.now < deadline {
            calm = isQuiet(cluster, history: history) ? calm + 1 : 0
            if calm >= 2 { return true }
            usleep(1_000_000)
        }
        return false
    }

    private func isQuiet(_ cluster: Cluster, history: PublishHistory) -> Bool {
        guard let lastSeq = producerLastSeq(cluster) else { return false }
        cluster.lock.lock()
        defer { cluster.lock.unlock() }
        for slot in cluster.slots {
            guard let life = slot.current, life.endedAt == nil, !life.stopped,
                  cluster.health(port: slot.port) == 200 else { return false }
            cluster.scrape(life)
            let m = life.metrics
            guard m["dedup_events_in_flight"] == 0, m["dedup_events_watching"] == 0,
                  Int(m["dedup_stream_watermark_seq"] ?? -1) >= lastSeq else { return false }
        }
        let acked = Set(history.all.flatMap { attempt -> [String] in
            if case .acked = attempt.outcome { return attempt.events.map(\.id) } else { return [] }
        })
        guard let stored = try? cluster.postgres.psql("SELECT count(*) FROM events"), let count = Int(stored) else { return false }
        let dead = Int((try? cluster.postgres.psql("SELECT count(*) FROM dead_letters")) ?? "0") ?? 0
        return count + dead >= acked.count
    }

    /// What is not yet quiet, for the drain violation.
    private func quiescenceState(_ cluster: Cluster) -> String {
        var parts = ["producer last_seq \(producerLastSeq(cluster).map(String.init) ?? "?")"]
        cluster.lock.lock()
        for slot in cluster.slots {
            guard let life = slot.current else { continue }
            let m = life.metrics
            parts.append("\(life.instanceID): health \(cluster.health(port: slot.port).map(String.init) ?? "none"), in flight \(Int(m["dedup_events_in_flight"] ?? -1)), watching \(Int(m["dedup_events_watching"] ?? -1)), watermark \(Int(m["dedup_stream_watermark_seq"] ?? -1))")
        }
        cluster.lock.unlock()
        parts.append("rows \((try? cluster.postgres.psql("SELECT count(*) FROM events")) ?? "?")")
        return parts.joined(separator: "; ")
    }

    private func producerLastSeq(_ cluster: Cluster) -> Int? {
        guard let (status, body) = try? httpRequest(port: cluster.httpPort, method: "GET", path: "/health", timeoutSeconds: 2),
              status == 200, let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else { return nil }
        return object["last_seq"] as? Int
    }

    private func waitForHealth(_ cluster: Cluster, port: Int) -> Int? {
        var status: Int?
        _ = waitFor(15) {
            status = cluster.health(port: port)
            return status == 200
        }
        return status
    }

    private func healthBody(_ port: Int) -> String {
        ((try? httpRequest(port: port, method: "GET", path: "/health", timeoutSeconds: 2))?.body ?? "").prefix(300).description
    }

    /// The fault-free window: the counters must match the rows exactly.
    private func checkWarmup(_ cluster: Cluster, history: PublishHistory, drained: Bool) {
        cluster.lock.lock()
        let lives = cluster.slots.compactMap(\.current)
        for life in lives { cluster.scrape(life) }
        cluster.lock.unlock()
        let processed = lives.reduce(0) { $0 + Int($1.metrics["dedup_events_processed_total"] ?? 0) }
        // Dead-lettered events were processed too (a producer that takes poison at the door
        // sends them on): they count with the rows.
        let stored = Int((try? cluster.postgres.psql("SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM dead_letters)")) ?? "") ?? -1
        let acked = history.counts.acked
        warmup = "\(acked) events acked, \(stored) rows (events + dead_letters), \(processed) processed\(drained ? "" : ", NOT drained in 30 s")"
        if !drained { violations.append("warm-up (no faults): not drained within 30 s: \(quiescenceState(cluster))") }
        if processed != stored {
            violations.append("warm-up (no faults): \(processed) events processed for \(stored) distinct ids stored (must be equal)")
        }
    }

    /// Every row of `events` and `dead_letters` (ids as text; dead-letter ids from their bytes).
    private func readRows(_ cluster: Cluster) -> ([StoredRow], [StoredRow]) {
        var events: [StoredRow] = []
        var dead: [StoredRow] = []
        do {
            let text = try cluster.postgres.psql("SELECT event_id, coalesce(seq::text, ''), coalesce(payload->>'n', '') FROM events")
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: "|", omittingEmptySubsequences: false)
                guard fields.count >= 3 else { continue }
                let id = fields.dropLast(2).joined(separator: "|")
                events.append(StoredRow(id: id, seq: Int(fields[fields.count - 2]), n: Int(fields[fields.count - 1])))
            }
            let deadText = try cluster.postgres.psql("SELECT encode(event_id, 'hex'), coalesce(seq::text, '') FROM dead_letters")
            for line in deadText.split(separator: "\n") {
                let fields = line.split(separator: "|", omittingEmptySubsequences: false)
                guard fields.count == 2 else { continue }
                dead.append(StoredRow(id: String(decoding: hexBytes(fields[0]), as: UTF8.self), seq: Int(fields[1]), n: nil))
            }
        } catch {
            violations.append("could not read the rows: \(error)")
        }
        return (events, dead)
    }
}

extension ChaosRun {
    /// The log lines naming each id (the id not followed by another digit, so `c1-12`
    /// does not match `c1-123`), as "file: line", at most 50 per id.
    static func logLines(naming ids: [String], in logDir: String) -> [String: [String]] {
        guard !ids.isEmpty, let files = try? FileManager.default.contentsOfDirectory(atPath: logDir) else { return [:] }
        var found: [String: [String]] = [:]
        for file in files.sorted() {
            guard let text = try? String(contentsOfFile: logDir + "/" + file, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n") {
                for id in ids where found[id, default: []].count < 50 {
                    var rest = line[...]
                    while let range = rest.range(of: id) {
                        let next = rest[range.upperBound...].first
                        if next == nil || !(next!.isNumber) {
                            found[id, default: []].append("\(file): \(line)")
                            break
                        }
                        rest = rest[range.upperBound...]
                    }
                }
            }
        }
        return found
    }
}

/// "6162" -> [0x61, 0x62].
func hexBytes(_ hex: Substring) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex, let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex) {
        if let byte = UInt8(hex[index..<next], radix: 16) { bytes.append(byte) }
        index = next
    }
    return bytes
}
