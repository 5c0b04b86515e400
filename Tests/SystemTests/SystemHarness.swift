import Foundation
import Glibc
import TestSupport
import XCTest

/// The whole system as separate processes: the real producer and listener binaries,
/// against the real Redis and PostgreSQL of this test process, on free ports.
final class SystemHarness {
    let redis = RedisTestServer.shared
    let postgres = PostgresTestServer.shared
    let dir = TestServers.makeTempDir("system")
    private(set) var producer: ServiceProcess?
    private(set) var listeners: [String: ServiceProcess] = [:]
    let httpPort = TestServers.freePort()
    let wsPort = TestServers.freePort()

    /// A clean slate: no events, no offsets, no claims.
    init() throws {
        _ = try postgres.psql("CREATE TABLE IF NOT EXISTS events (event_id TEXT COLLATE \"C\" PRIMARY KEY, seq BIGINT, payload JSONB, processed_by TEXT NOT NULL, processed_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        _ = try postgres.psql("DROP TABLE IF EXISTS listener_offsets, listener_watermarks, dead_letters; TRUNCATE events")
        _ = try redis.cli("FLUSHALL")
    }

    deinit {
        for listener in listeners.values { listener.kill() }
        producer?.kill()
    }

    func startProducer(_ env: [String: String] = [:]) throws {
        producer = try ServiceProcess(binary: productPath("producer"), log: dir + "/producer.log",
                                      environment: ["HTTP_PORT": "\(httpPort)", "WS_PORT": "\(wsPort)", "HOST": "127.0.0.1",
                                                    "LOG_LEVEL": "warning", "THREADS": "1"].merging(env) { $1 })
        XCTAssertTrue(TestServers.waitForPort(httpPort), "producer did not start: \(producer!.logText)")
    }

    /// Starts (or restarts) listener `id` and returns its API port.
    @discardableResult
    func startListener(_ id: String, port: Int? = nil, _ env: [String: String] = [:]) throws -> ServiceProcess {
        let apiPort = port ?? listeners[id]?.port ?? TestServers.freePort()
        let process = try ServiceProcess(binary: productPath("listener"), log: dir + "/\(id).log",
                                         environment: ["INSTANCE_ID": id, "PORT": "\(apiPort)", "HOST": "127.0.0.1",
                                                       "PRODUCER_URL": "ws://127.0.0.1:\(wsPort)/", "REDIS_URL": redis.url,
                                                       "DATABASE_URL": postgres.url, "LOG_LEVEL": ProcessInfo.processInfo.environment["DEDUP_TEST_LOG_LEVEL"] ?? "warning"].merging(env) { $1 },
                                         port: apiPort)
        listeners[id] = process
        XCTAssertTrue(waitUntil(20) { (try? httpGet(port: apiPort, path: "/health").status) == 200 },
                      "listener \(id) not healthy: \(process.logText)")
        return process
    }

    /// Publishes with `producer flood` and returns its JSON summary.
    @discardableResult
    func flood(count: Int, duplicates: Double = 0, prefix: String, rate: Int = 0, batch: Int = 100, seed: UInt64 = 1) throws -> [String: Any] {
        try startFlood(count: count, duplicates: duplicates, prefix: prefix, rate: rate, batch: batch, seed: seed).finish()
    }

    /// Starts `producer flood` and returns at once, for faults injected while it runs.
    func startFlood(count: Int, duplicates: Double = 0, prefix: String, rate: Int = 0, batch: Int = 100, seed: UInt64 = 1) throws -> FloodRun {
        let flood = Process()
        flood.executableURL = URL(fileURLWithPath: try productPath("producer"))
        flood.arguments = ["flood", "--url", "http://127.0.0.1:\(httpPort)", "--count", "\(count)", "--batch", "\(batch)",
                           "--duplicates", "\(duplicates)", "--id-prefix", prefix, "--seed", "\(seed)", "--rate", "\(rate)",
                           "--connections", "2", "--json"]
        let out = Pipe()
        flood.standardOutput = out
        flood.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try flood.run()
        return FloodRun(process: flood, output: out)
    }
    func publish(_ body: String) throws {
        let (status, text) = try httpPost(port: httpPort, path: "/publish", body: body)
        XCTAssertEqual(status, 202, text)
    }

    /// Rows stored, by psql.
    func rowCount(prefix: String = "") throws -> Int {
        Int(try postgres.psql("SELECT count(*) FROM events WHERE event_id LIKE '\(prefix)%'")) ?? -1
    }

    /// A listener's metric, from its /metrics.
    func metric(_ id: String, _ name: String) -> Int? {
        guard let listener = listeners[id], let (status, text) = try? httpGet(port: listener.port, path: "/metrics"),
              status == 200 else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name + "{") {
            return Int(line.split(separator: " ").last ?? "")
        }
        return nil
    }

    /// A metric summed over the listeners that answer.
    func sum(_ name: String) -> Int {
        listeners.keys.compactMap { metric($0, name) }.reduce(0, +)
    }
}

/// A `producer flood` running in the background.
struct FloodRun {
    let process: Process
    let output: Pipe

    /// Waits for it to end and returns its JSON summary (which must report no errors).
    func finish() throws -> [String: Any] {
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let summary = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], String(decoding: data, as: UTF8.self))
        XCTAssertEqual(summary["errors"] as? Int, 0, "flood errors: \(summary)")
        return summary
    }
}

/// Polls `condition` every 50 ms for up to `seconds`.
func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}
