import Foundation
import TestSupport
import Glibc

/// What the end-to-end run asks of a service process.
extension ServiceProcess {
    func metrics() -> [String: Double]? {
        guard let (status, body) = blockingGet(port: port, path: "/metrics"), status == 200 else { return nil }
        return parseMetrics(body)
    }

    func healthy() -> Bool { blockingGet(port: port, path: "/health", timeoutSeconds: 1)?.status == 200 }
}

final class E2ESystem {
    /// This benchmark's own binary, which is also the bystander.
    static let ownExecutable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]

    let binaries: ServiceBinaries
    let dir: String
    let redisURL: String
    let databaseURL: String
    private(set) var producer: ServiceProcess?
    private(set) var listeners: [ServiceProcess] = []
    /// Subscribers that only read the stream (`Benchmarks bystander`).
    private(set) var bystanders: [ServiceProcess] = []
    private(set) var httpPort = 0
    private(set) var wsPort = 0

    init(binaries: ServiceBinaries, dir: String, redisURL: String, databaseURL: String) {
        self.binaries = binaries
        self.dir = dir
        self.redisURL = redisURL
        self.databaseURL = databaseURL
    }

    /// Starts the producer and `count` listeners and waits until every listener is healthy
    /// (its producer, Redis and PostgreSQL links all up). `listenerEnvironments[i]` adds to
    /// (or overrides) listener i's settings.
    func start(pass: String, listenerCount: Int, bystanderCount: Int = 0, databaseURL: String?,
               listenerEnvironments: [[String: String]]) throws {
        httpPort = TestServers.freePort()
        wsPort = TestServers.freePort()
        let producer = try ServiceProcess(
            name: "producer", binary: binaries.producer, log: dir + "/\(pass)-producer.log",
            environment: ["HTTP_PORT": "\(httpPort)", "WS_PORT": "\(wsPort)", "HOST": "127.0.0.1", "LOG_LEVEL": "warning"],
            port: httpPort)
        self.producer = producer
        try waitFor(20, what: "the producer to listen on \(httpPort)", service: producer) { TestServers.accepts(self.httpPort) }
        listeners = []
        for i in 0..<listenerCount {
            let id = "bench-\(Character(UnicodeScalar(UInt8(65 + i % 26))))\(i >= 26 ? String(i) : "")"
            let port = TestServers.freePort()
            var env = ["INSTANCE_ID": id, "PORT": "\(port)", "HOST": "127.0.0.1", "PRODUCER_URL": "ws://127.0.0.1:\(wsPort)/",
                       "REDIS_URL": redisURL, "DATABASE_URL": databaseURL ?? self.databaseURL, "LOG_LEVEL": "warning"]
            if i < listenerEnvironments.count { env.merge(listenerEnvironments[i]) { $1 } }
            listeners.append(try ServiceProcess(name: "listener \(id)", binary: binaries.listener,
                                            log: dir + "/\(pass)-listener-\(id).log", environment: env, port: port))
        }
        for listener in listeners {
            try waitFor(30, what: "\(listener.name) to be healthy", service: listener) { listener.healthy() }
        }
        bystanders = try (0..<bystanderCount).map { i in
            try ServiceProcess(name: "bystander \(i)", binary: Self.ownExecutable, arguments: ["bystander", "ws://127.0.0.1:\(wsPort)/"],
                               log: dir + "/\(pass)-bystander-\(i).log", environment: [:])
        }
        if bystanderCount > 0 {
            try waitFor(20, what: "\(bystanderCount) bystanders to subscribe", service: producer) {
                Int(producer.metrics()?["dedup_producer_connected_clients"] ?? 0) >= listenerCount + bystanderCount
            }
        }
    }

    /// Stops the listeners (SIGTERM: they finish or release in-flight work) and the producer.
    /// Returns the listeners' exit statuses.
    @discardableResult
    func stop() -> [Int32] {
        for bystander in bystanders { bystander.kill() }
        bystanders = []
        let statuses = listeners.map { $0.terminate() }
        producer?.terminate()
        producer = nil
        listeners = []
        return statuses
    }

    /// Starts `producer flood` against the producer: `events` events (`rate` per second, 0 as
    /// fast as it is taken), 100-byte payloads stamped with the wall clock, 100 per POST;
    /// its JSON summary and its log go to files in the run's directory.
    func startFlood(pass: String, events: Int, rate: Int, duplicates: Double) throws -> E2EFlood {
        let flood = E2EFlood(output: dir + "/\(pass)-flood.json", log: dir + "/\(pass)-flood.log")
        try flood.run(binaries.producer, [
            "flood", "--url", "http://127.0.0.1:\(httpPort)", "--count", "\(events)", "--rate", "\(rate)",
            "--batch", "100", "--connections", "4", "--pipeline", "4", "--duplicates", "\(duplicates)",
            "--payload-bytes", "100", "--id-prefix", "e2e-\(pass)-", "--seed", "7", "--json",
        ])
        return flood
    }

    private func waitFor(_ seconds: Double, what: String, service: ServiceProcess, _ condition: () -> Bool) throws {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            if condition() { return }
            if !service.isRunning {
                throw TestServerError.failed("\(service.name) exited (status \(service.process.terminationStatus)) while waiting for \(what); its log:\n    \(service.logTail())")
            }
            usleep(50_000)
        }
        throw TestServerError.failed("timed out waiting for \(what); \(service.name)'s log:\n    \(service.logTail())")
    }
}

/// A running `producer flood`, and what it reports when it ends.
final class E2EFlood {
    private let process = Process()
    private let output: String
    private let log: String

    init(output: String, log: String) {
        self.output = output
        self.log = log
    }

    var isRunning: Bool { process.isRunning }

    fileprivate func run(_ producer: String, _ arguments: [String]) throws {
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.executableURL = URL(fileURLWithPath: producer)
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: output)
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        TestServers.track(process.processIdentifier)
    }

    /// Reaps the ended flood and reads its summary; throws when it failed.
    func finish() throws -> FloodSummary {
        process.waitUntilExit()
        TestServers.untrack(process.processIdentifier)
        let ended = wallNanos()
        let data = (try? Data(contentsOf: URL(fileURLWithPath: output))) ?? Data()
        guard process.terminationStatus == 0,
              let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            let err = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw TestServerError.failed("producer flood failed (status \(process.terminationStatus)): "
                                          + "\(String(decoding: data, as: UTF8.self)) \(err.suffix(500))")
        }
        return FloodSummary(
            distinct: json["distinct"] as? Int ?? 0, accepted: json["accepted"] as? Int ?? 0, errors: json["errors"] as? Int ?? 0,
            seconds: (json["seconds"] as? Double) ?? Double(json["seconds"] as? Int ?? 0),
            eventsPerSecond: Double(json["events_per_second"] as? Int ?? 0), endedWallNanos: ended)
    }
}

/// `producer flood --json`'s summary, and when the flood ended (wall clock).
struct FloodSummary {
    let distinct: Int
    let accepted: Int
    let errors: Int
    let seconds: Double
    let eventsPerSecond: Double
    let endedWallNanos: UInt64
}
