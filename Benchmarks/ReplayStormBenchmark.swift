import Foundation
import Glibc
import TestSupport

/// What subscribers catching up from disk cost everyone else: the release producer with a
/// small ring (1,024 events) and a log of `fill` events, then paced single-event publishes
/// (`producer flood --rate 1000 --batch 1`, one connection, no pipelining) timed while 0,
/// 1, 4 and 16 subscribers (`Benchmarks bystander`, reading as fast as they can) replay the
/// whole log from seq 0. Every publish waits for the producer's hub loop, which also
/// reads those replays from disk: the figures are the publishes' latency percentiles and
/// the events/s all replays together got meanwhile. Before the hub gave disk replays a
/// budget of its time per turn, 4 replaying subscribers raised the publishes' p99 from
/// 0.6 ms to 39 ms and 16 of them to 163 ms.
func runReplayStormBenchmark(quick: Bool) throws -> SuiteResult {
    // Enough log that every replay outlasts the timed publishes: 4 × 3M events at 2-2.5M
    // events/s together take 5-6 s, the publishes 2 s.
    let fill = quick ? 100_000 : 3_000_000
    let probes = quick ? 1_000 : 2_000
    let binaries = try ServiceBinaries.locate(binDir: nil, environment: "DEDUP_BENCH_BIN_DIR")
    let dir = TestServers.makeTempDir("replay-storm")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let http = TestServers.freePort(), ws = TestServers.freePort()
    let producer = try ServiceProcess(binary: binaries.producer, log: dir + "/producer.log",
                                      environment: ["HTTP_PORT": "\(http)", "WS_PORT": "\(ws)", "HOST": "127.0.0.1",
                                                    "DATA_DIR": dir + "/data", "REPLAY_CAPACITY": "1024", "LOG_LEVEL": "warning"],
                                      port: http)
    defer { _ = producer.terminate() }
    guard TestServers.waitForPort(http, timeout: 30) else { throw TestServerError.failed("producer did not listen: \(producer.logTail())") }

    print("  filling the log with \(fill) events")
    _ = try flood(binaries.producer, ["--url", "http://127.0.0.1:\(http)", "--count", "\(fill)", "--batch", "200",
                                       "--id-prefix", "fill-"])
    var figures: [(String, Double)] = [("log_events", Double(fill)), ("publishes_timed", Double(probes))]
    for subscribers in [0, 1, 4, 16] {
        let roundStart = diskReplayed(http)
        var readers: [Process] = []
        for _ in 0..<subscribers {
            let reader = Process()
            reader.executableURL = URL(fileURLWithPath: E2ESystem.ownExecutable)
            reader.arguments = ["bystander", "ws://127.0.0.1:\(ws)/?from_seq=0"]
            reader.standardOutput = FileHandle.nullDevice
            reader.standardError = FileHandle.nullDevice
            try reader.run()
            TestServers.track(reader.processIdentifier)
            readers.append(reader)
        }
        defer {
            for reader in readers {
                reader.terminate()
                reader.waitUntilExit()
                TestServers.untrack(reader.processIdentifier)
            }
        }
        usleep(300_000)
        // When every replay has read all the log held on disk (all but the ring's 1,024).
        let diskEvents = Double(subscribers * (fill - 1_024))
        let started = monotonicSeconds()
        let replayedBefore = diskReplayed(http)
        let replaysEnded = ReplaysEnded()
        let watcher = Thread {
            while !replaysEnded.stop {
                if subscribers > 0 && diskReplayed(http) - roundStart >= diskEvents {
                    replaysEnded.at = monotonicSeconds()
                    return
                }
                usleep(50_000)
            }
        }
        watcher.start()
        let summary = try flood(binaries.producer, ["--url", "http://127.0.0.1:\(http)", "--count", "\(probes)",
                                                   "--rate", "1000", "--batch", "1", "--connections", "1",
                                                   "--pipeline", "1", "--id-prefix", "probe-\(subscribers)-"])
        let window = monotonicSeconds() - started
        replaysEnded.stop = true
        let replayedDuring = diskReplayed(http) - replayedBefore
        let busy = replaysEnded.at.map { min(1, ($0 - started) / window) } ?? 1
        let replayRate = replayedDuring / (busy * window)
        let latency = summary["latency_ms"] as? [String: Double] ?? [:]
        let p50 = latency["p50"] ?? -1, p99 = latency["p99"] ?? -1, worst = latency["max"] ?? -1
        print("  \(subscribers) subscribers replaying from disk: publish p50 \(String(format2: p50)) ms, p99 \(String(format2: p99)) ms, "
              + "max \(String(format2: worst)) ms" + (subscribers == 0 ? "" : "; replays \(formatRate(replayRate)) events/s together, "
              + "running through \(Int(busy * 100)) % of the \(String(format2: window)) s of timed publishes"))
        figures += [("publish_p50_ms_\(subscribers)_replaying", p50), ("publish_p99_ms_\(subscribers)_replaying", p99),
                    ("publish_max_ms_\(subscribers)_replaying", worst)]
        if subscribers > 0 {
            figures += [("disk_replay_events_per_sec_\(subscribers)_replaying", replayRate),
                        ("replays_running_share_\(subscribers)_replaying", busy)]
        }
    }
    return SuiteResult(name: "replay_storm", figures: figures)
}

/// Runs `producer flood --json` with `arguments` and returns its summary.
private func flood(_ producer: String, _ arguments: [String]) throws -> [String: Any] {
    let (status, output) = try TestServers.run(producer, ["flood", "--json"] + arguments, timeout: 600)
    guard status == 0, let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
          let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        throw TestServerError.failed("producer flood failed (status \(status)): \(output.suffix(500))")
    }
    guard (json["errors"] as? Int ?? 1) == 0 else { throw TestServerError.failed("producer flood had errors: \(line)") }
    return json
}

/// `dedup_producer_replay_disk_events_total`.
private func diskReplayed(_ port: Int) -> Double {
    guard let text = blockingGet(port: port, path: "/metrics")?.body else { return 0 }
    return parseMetrics(text)["dedup_producer_replay_disk_events_total"] ?? 0
}

/// When the watcher saw every replay done, shared with the thread that watches.
private final class ReplaysEnded: @unchecked Sendable {
    private let lock = NSLock()
    private var _at: Double?
    private var _stop = false
    var at: Double? {
        get { lock.withLock { _at } }
        set { lock.withLock { _at = newValue } }
    }
    var stop: Bool {
        get { lock.withLock { _stop } }
        set { lock.withLock { _stop = newValue } }
    }
}
