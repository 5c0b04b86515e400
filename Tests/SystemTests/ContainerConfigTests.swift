import Foundation
import Glibc
import TestSupport
import XCTest

/// The container deployment (Dockerfile, .dockerignore, docker-compose.yml and the Redis
/// Cluster override compose.redis-cluster.yml), checked without a Docker engine:
/// 1. the compose file: a schema check and the wiring (services, env names = documented
///    settings, ports = settings, URLs, depends_on service_healthy, healthchecks); the same
///    for the override merged onto it, plus the cluster nodes, the init and the seed lists
///    (and the init's script run against three local cluster nodes);
/// 2. the Dockerfile: its stages, and the runtime stage's packages against `ldd` of the
///    real binaries (`dpkg -S` maps each library to its Debian package);
/// 3. the real binaries started with exactly the environment the compose file gives each
///    service (service host names mapped to 127.0.0.1), running the seed's demo.
/// 1 and 2 are `scripts/check-containers.py` (Python + PyYAML), which also prints each
/// service's interpolated environment for 3.
final class ContainerConfigTests: XCTestCase {
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    struct Service: Decodable {
        let program: String?
        let command: [String]?
        let environment: [String: String]
        let ports: [[Int?]]
        let profiles: [String]
    }

    struct Report: Decodable {
        let failures: [String]
        let passed: [String]
        let services: [String: Service]
        /// compose.redis-cluster.yml merged onto docker-compose.yml.
        let cluster: [String: Service]
    }

    /// The checker's report, computed once (it runs ldd, dpkg and both binaries' --help).
    private static let report: Result<Report, Error> = Result {
        let binDir = URL(fileURLWithPath: try productPath("listener")).deletingLastPathComponent().path
        let script = try String(contentsOfFile: root + "/scripts/check-containers.py", encoding: .utf8)
        // No --env: compose variables take their defaults, as on a machine with no .env file.
        let out = try runPython(script, arguments: ["--root", root, "--bin", binDir, "--json"])
        return try JSONDecoder().decode(Report.self, from: Data(out.utf8))
    }

    private func checked(_ prefix: String) throws -> Report {
        let report = try Self.report.get()
        let failures = report.failures.filter { $0.hasPrefix(prefix) }
        XCTAssertEqual(failures, [], "\n" + failures.joined(separator: "\n"))
        XCTAssertGreaterThan(report.passed.filter { $0.hasPrefix(prefix) }.count, 0, "nothing checked for \(prefix)")
        return report
    }

    // MARK: 1. docker-compose.yml

    func testComposeFileIsValidAndWiredToTheContractSettings() throws {
        let report = try checked("compose:")
        let services = report.services
        for name in ["redis", "postgres", "producer", "listener-a", "listener-b", "listener", "flood"] {
            XCTAssertNotNil(services[name], "service \(name)")
        }
        XCTAssertEqual(services["producer"]?.program, "producer")
        XCTAssertEqual(services["listener-a"]?.environment["INSTANCE_ID"], "listener-a")
        XCTAssertEqual(services["listener-b"]?.environment["INSTANCE_ID"], "listener-b")
        XCTAssertNil(services["listener"]?.environment["INSTANCE_ID"], "scaled listeners use the default id")
        XCTAssertEqual(services["listener"]?.profiles, ["scale"])
        XCTAssertEqual(services["flood"]?.profiles, ["flood"])
        XCTAssertEqual(services["producer"]?.ports.map { $0.first ?? nil }.compactMap { $0 }.sorted(), [3005, 8080])
        XCTAssertEqual(services["listener-a"]?.ports.first?.first ?? nil, 3000)
        XCTAssertEqual(services["listener-b"]?.ports.first?.first ?? nil, 3001)
    }

    /// The `monitoring` profile (Prometheus, Grafana) is wired to the services: scrape
    /// ports are the services' port settings, files mounted where the programs read them
    /// (MonitoringTests runs the config itself against real processes).
    func testMonitoringProfileIsWiredToTheServices() throws {
        let report = try checked("monitoring:")
        XCTAssertEqual(report.services["prometheus"]?.profiles, ["monitoring"])
        XCTAssertEqual(report.services["grafana"]?.profiles, ["monitoring"])
        for name in ["producer", "listener-a", "listener-b", "listener"] {
            XCTAssertTrue(report.passed.contains { $0.hasPrefix("monitoring: service \(name) is scraped by exactly one job") },
                          "\(name) is not scraped")
        }
        XCTAssertTrue(report.passed.contains("monitoring: profile checked"))
    }

    /// `docker compose -f docker-compose.yml -f compose.redis-cluster.yml`: three cluster
    /// nodes (the base `redis` is the first) with no host port, the init one-shot, and every
    /// listener service on the seed list, the rest of each service as the base file has it.
    func testRedisClusterOverridePointsEveryListenerAtTheCluster() throws {
        let report = try checked("cluster:")
        let services = report.cluster
        for name in ["redis", "redis-2", "redis-3"] {
            let node = try XCTUnwrap(services[name], name)
            XCTAssertEqual(node.command?.prefix(3), ["redis-server", "--cluster-enabled", "yes"], name)
            XCTAssertEqual(node.ports, [], "\(name) publishes no port")
        }
        XCTAssertEqual(services["redis-cluster-init"]?.command?.first, "sh")
        for name in ["listener-a", "listener-b", "listener"] {
            XCTAssertEqual(services[name]?.environment["REDIS_URL"], "redis://:dedup@redis:6379,redis-2:6379,redis-3:6379", name)
            // Merged, not replaced: the base file's other settings stay.
            XCTAssertEqual(services[name]?.environment["DATABASE_URL"], report.services[name]?.environment["DATABASE_URL"], name)
            XCTAssertEqual(services[name]?.environment.count, report.services[name]?.environment.count, name)
        }
        XCTAssertEqual(services["listener-a"]?.environment["INSTANCE_ID"], "listener-a")
        XCTAssertEqual(services["listener"]?.profiles, ["scale"])
        for name in ["listener-a", "listener-b", "listener"] {
            XCTAssertTrue(report.passed.contains("cluster: \(name) depends on redis-cluster-init (one-shot) with condition service_completed_successfully"), name)
        }
        XCTAssertTrue(report.passed.contains("cluster: redis-cluster-init's script is valid sh"))
        XCTAssertTrue(report.passed.contains("cluster: override checked"))
    }

    /// The init service's script, as the merged file gives it, run by `sh` against three
    /// local Redis 7 nodes started with the cluster nodes' own flags: on 127.0.0.2-4 (one
    /// free port in place of 6379), `getent` stubbed to answer the service names with
    /// those addresses. It creates the cluster; a second run changes nothing; after the
    /// nodes come back (volumes kept) on other addresses, it joins them again.
    func testRedisClusterInitScriptCreatesTheClusterOnce() throws {
        let services = try Self.report.get().cluster
        let initService = try XCTUnwrap(services["redis-cluster-init"])
        var port = TestServers.freePort()
        while port > 55_535 { port = TestServers.freePort() }  // the cluster bus listens on port + 10000
        let script = try XCTUnwrap(initService.command?.last).replacingOccurrences(of: ":6379", with: ":\(port)")
        let password = try XCTUnwrap(initService.environment["REDISCLI_AUTH"])
        let nodeFlags = try XCTUnwrap(services["redis"]?.command).dropFirst()  // after redis-server
        let redisServer = try XCTUnwrap(TestServers.findExecutable("redis-server"), "redis-server is not installed")
        let redisCLI = try XCTUnwrap(TestServers.findExecutable("redis-cli"), "redis-cli is not installed")
        let dir = TestServers.makeTempDir("cluster-init")
        try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
        let getent = "#!/bin/sh\ncase \"$2\" in redis) h=$A;; redis-2) h=$B;; redis-3) h=$C;; *) exit 2;; esac\necho \"127.0.0.$h       $2\"\n"
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/bin/getent", contents: Data(getent.utf8), attributes: [.posixPermissions: 0o755]))
        let path = dir + "/bin:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")

        var nodes: [Launched] = []
        defer { for node in nodes { node.kill() } }
        func startNodes(_ hosts: [Int]) throws {
            for (index, host) in hosts.enumerated() {
                let nodeDir = dir + "/node\(index)"  // the node's volume: kept across restarts
                try FileManager.default.createDirectory(atPath: nodeDir, withIntermediateDirectories: true)
                let ip = "127.0.0.\(host)"
                nodes.append(try Launched(binary: redisServer,
                                          arguments: Array(nodeFlags) + ["--port", "\(port)", "--bind", ip, "--bind-source-addr", ip,
                                                                         "--dir", nodeDir, "--save", ""],
                                          environment: [:], log: nodeDir + "/redis.log"))
                XCTAssertTrue(waitUntil(10) { (try? cli(ip, "PING")) == "PONG" }, "node \(ip): \(nodes.last!.logText)")
            }
        }
        func cli(_ ip: String, _ arguments: String...) throws -> String {
            let out = dir + "/cli.out"
            let process = try Launched(binary: redisCLI, arguments: ["-h", ip, "-p", "\(port)"] + arguments,
                                       environment: ["REDISCLI_AUTH": password], log: out)
            process.process.waitUntilExit()
            process.kill()  // untracks it
            return process.logText.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        func runInit(_ hosts: [Int]) throws -> (status: Int32, log: String) {
            let run = try Launched(binary: "/bin/sh", arguments: ["-ec", script],
                                   environment: ["PATH": path, "REDISCLI_AUTH": password,
                                                 "A": "\(hosts[0])", "B": "\(hosts[1])", "C": "\(hosts[2])"],
                                   log: dir + "/init-\(hosts[0]).log")
            XCTAssertTrue(waitUntil(90) { !run.isRunning }, run.logText)
            run.kill()  // untracks it (or stops it after the timeout)
            return (run.isRunning ? -1 : run.status, run.logText)
        }
        func everyNodeSeesEveryAddress(_ hosts: [Int]) throws {
            for host in hosts {
                let table = try cli("127.0.0.\(host)", "CLUSTER", "NODES")
                for other in hosts {
                    XCTAssertTrue(table.split(separator: "\n").contains { $0.contains(" 127.0.0.\(other):\(port)@") && $0.contains(" connected") },
                                  "127.0.0.\(host) does not see 127.0.0.\(other):\n\(table)")
                }
                XCTAssertTrue(try cli("127.0.0.\(host)", "CLUSTER", "INFO").contains("cluster_state:ok"))
            }
        }

        try startNodes([2, 3, 4])
        let created = try runInit([2, 3, 4])
        XCTAssertEqual(created.status, 0, created.log)
        XCTAssertTrue(created.log.contains("Performing hash slots allocation"), created.log)
        try everyNodeSeesEveryAddress([2, 3, 4])

        let again = try runInit([2, 3, 4])
        XCTAssertEqual(again.status, 0, again.log)
        XCTAssertFalse(again.log.contains("Performing hash slots allocation"), again.log)

        // `down` and `up` with the volumes kept: the nodes come back on new addresses.
        for node in nodes { XCTAssertEqual(node.terminate(within: 10), 0, node.logText) }
        nodes = []
        try startNodes([5, 6, 7])
        let rejoined = try runInit([5, 6, 7])
        XCTAssertEqual(rejoined.status, 0, rejoined.log)
        XCTAssertFalse(rejoined.log.contains("Performing hash slots allocation"), rejoined.log)
        try everyNodeSeesEveryAddress([5, 6, 7])
    }

    // MARK: 2. Dockerfile and .dockerignore

    func testDockerfileRuntimeStageHasEveryLibraryTheBinariesLoad() throws {
        let report = try checked("Dockerfile:")
        XCTAssertTrue(report.passed.contains { $0.hasPrefix("Dockerfile: runtime packages cover ldd producer") })
        XCTAssertTrue(report.passed.contains { $0.hasPrefix("Dockerfile: runtime packages cover ldd listener") })
    }

    func testDockerignoreKeepsBuildOutputOut() throws {
        _ = try checked(".dockerignore:")
    }

    // MARK: 3. The compose environment, run for real

    func testTheComposeEnvironmentRunsTheDemo() throws {
        let services = try Self.report.get().services
        // Redis with the compose file's password (its default), as the redis service runs.
        let redisURL = try XCTUnwrap(services["listener-a"]?.environment["REDIS_URL"])
        let password = try XCTUnwrap(redisURL.split(separator: "@").first?.split(separator: ":").last.map(String.init))
        let redis = try RedisTestServer(extraArguments: ["--requirepass", password])
        defer { redis.stop() }
        let postgres = PostgresTestServer.shared
        // Other system tests share this server: a clean slate (no stored events or offsets).
        _ = try postgres.psql("DO $$ BEGIN IF to_regclass('events') IS NOT NULL THEN TRUNCATE events; END IF; END $$")
        _ = try postgres.psql("DROP TABLE IF EXISTS listener_offsets, listener_watermarks, dead_letters")

        let producer = try XCTUnwrap(services["producer"])
        let composeHTTP = producer.environment["HTTP_PORT"] ?? "3005"
        let composeWS = producer.environment["WS_PORT"] ?? "8080"
        // Ports: the compose file's fixed ports (3005, 8080, 3000, 3001) may be taken on a
        // test machine (the local demo uses them; so may other work), so each program's own
        // port settings are remapped to free ports, and the URLs that point at them follow.
        // Everything else is the compose file's environment, value for value.
        let httpPort = TestServers.freePort(), wsPort = TestServers.freePort()
        let hosts = ["redis:6379": "127.0.0.1:\(redis.port)",
                     "postgres:5432": "127.0.0.1:\(postgres.port)",
                     "producer:\(composeWS)": "127.0.0.1:\(wsPort)",
                     "producer:\(composeHTTP)": "127.0.0.1:\(httpPort)"]
        func local(_ value: String) -> String {
            var v = value
            for (from, to) in hosts {
                v = v.replacingOccurrences(of: "//" + from, with: "//" + to).replacingOccurrences(of: "@" + from, with: "@" + to)
            }
            // Every URL now points at this machine.
            if let scheme = v.range(of: "://") {
                let authority = v[scheme.upperBound...].prefix { $0 != "/" && $0 != "?" }
                let host = authority.split(separator: "@").last.map { $0.split(separator: ":").first ?? "" } ?? ""
                XCTAssertEqual(host, "127.0.0.1", "unmapped service host in \(value) -> \(v)")
            }
            return v
        }
        func environment(_ service: Service, ports: [String: Int]) -> [String: String] {
            var env = service.environment.mapValues(local)
            for (name, port) in ports { env[name] = "\(port)" }
            env["PATH"] = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"  // an image has a PATH too
            return env
        }

        let dir = TestServers.makeTempDir("compose")
        var started: [Launched] = []
        defer { for process in started.reversed() { process.kill() } }

        // DATA_DIR is the container's volume path; here the log goes to this test's directory.
        var producerEnvironment = environment(producer, ports: ["HTTP_PORT": httpPort, "WS_PORT": wsPort])
        producerEnvironment["DATA_DIR"] = dir + "/producer-data"
        let producerProcess = try Launched(binary: productPath("producer"), arguments: Array((producer.command ?? ["producer"]).dropFirst()),
                                           environment: producerEnvironment,
                                           log: dir + "/producer.log")
        started.append(producerProcess)
        XCTAssertTrue(waitUntil(20) { (try? httpGet(port: httpPort, path: "/health").status) == 200 },
                      "producer not healthy: \(producerProcess.logText)")

        // listener-a, listener-b, and one replica of the scalable `listener` service.
        var listeners: [(name: String, port: Int, process: Launched)] = []
        for name in ["listener-a", "listener-b", "listener"] {
            let service = try XCTUnwrap(services[name])
            XCTAssertEqual(service.program, "listener")
            let port = TestServers.freePort()
            let process = try Launched(binary: productPath("listener"), arguments: Array((service.command ?? ["listener"]).dropFirst()),
                                       environment: environment(service, ports: ["PORT": port]), log: dir + "/\(name).log")
            started.append(process)
            listeners.append((name, port, process))
        }
        for listener in listeners {
            XCTAssertTrue(waitUntil(30) { (try? httpGet(port: listener.port, path: "/health").status) == 200 },
                          "\(listener.name) not healthy: \(listener.process.logText)")
        }

        // The seed's demo.
        let (status, body) = try httpPost(port: httpPort, path: "/publish",
                                          body: #"{"event_id": "test-123", "payload": {"message": "hello"}}"#)
        XCTAssertEqual(status, 202, body)
        XCTAssertTrue(body.contains("\"accepted\":1"), body)

        func events(_ port: Int) -> [[String: Any]] {
            guard let (status, text) = try? httpGet(port: port, path: "/api/events"), status == 200,
                  let array = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]] else { return [] }
            return array
        }
        for listener in listeners {
            XCTAssertTrue(waitUntil(20) { events(listener.port).contains { $0["event_id"] as? String == "test-123" } },
                          "\(listener.name) GET /api/events: \(events(listener.port)) \(listener.process.logText)")
            let event = events(listener.port).first { $0["event_id"] as? String == "test-123" }
            XCTAssertEqual(event?["payload"] as? [String: String], ["message": "hello"], listener.name)
        }
        // Exactly one row, stored by one of the three instances.
        let scaledID = "\(ProcessInfo.processInfo.hostName)-\(listeners[2].process.pid)"
        XCTAssertEqual(try postgres.psql("SELECT count(*) FROM events"), "1")
        let row = try postgres.psql("SELECT event_id || ' ' || (payload->>'message') || ' ' || processed_by FROM events")
        XCTAssertTrue(["listener-a", "listener-b", scaledID].map { "test-123 hello \($0)" }.contains(row), row)

        // The scaled replica's instance id is its default, host name + pid (unique per container).
        let (_, metrics) = try httpGet(port: listeners[2].port, path: "/metrics")
        XCTAssertTrue(metrics.contains("instance=\"\(scaledID)\""), "expected instance \(scaledID) in:\n\(metrics.prefix(600))")

        // The flood service's command, as written (URL mapped; a smaller --count than the
        // compose default so the suite stays fast).
        let flood = try XCTUnwrap(services["flood"])
        var command = try XCTUnwrap(flood.command).map(local)
        let countIndex = try XCTUnwrap(command.firstIndex(of: "--count")) + 1
        command[countIndex] = "300"
        let floodProcess = try Launched(binary: productPath("producer"), arguments: Array(command.dropFirst()),
                                        environment: environment(flood, ports: [:]), log: dir + "/flood.log")
        started.append(floodProcess)
        XCTAssertTrue(waitUntil(120) { !floodProcess.isRunning }, "flood did not finish: \(floodProcess.logText)")
        XCTAssertEqual(floodProcess.status, 0, floodProcess.logText)
        let distinct = floodProcess.logText.firstMatch(of: #/\((\d+) distinct ids/#).flatMap { Int($0.1) }
        XCTAssertNotNil(distinct, floodProcess.logText)
        if let distinct {
            XCTAssertTrue(waitUntil(60) { (try? postgres.psql("SELECT count(*) FROM events WHERE event_id LIKE 'flood-%'")) == "\(distinct)" },
                          "flood rows: \((try? postgres.psql("SELECT count(*) FROM events WHERE event_id LIKE 'flood-%'")) ?? "?") of \(distinct)")
        }
        XCTAssertEqual(try postgres.psql("SELECT count(*) FROM events WHERE event_id = 'test-123'"), "1")

        // `docker compose stop` sends SIGTERM: each program exits 0 well within its grace period.
        for listener in listeners {
            XCTAssertEqual(listener.process.terminate(within: 20), 0, "\(listener.name): \(listener.process.logText)")
        }
        XCTAssertEqual(producerProcess.terminate(within: 10), 0, producerProcess.logText)
    }
}

/// A program started with exactly `environment` (nothing inherited), output in a log file.
private final class Launched {
    let process = Process()
    let logPath: String

    init(binary: String, arguments: [String], environment: [String: String], log: String) throws {
        logPath = log
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: log))
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        TestServers.track(process.processIdentifier)
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var status: Int32 { process.terminationStatus }
    var logText: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM; SIGKILL if still running after `seconds`. Returns the exit status (-1 if killed).
    func terminate(within seconds: Double) -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        Glibc.kill(pid, SIGTERM)
        if waitUntil(seconds, { !process.isRunning }) {
            process.waitUntilExit()
            TestServers.untrack(pid)
            return process.terminationStatus
        }
        kill()
        return -1
    }

    func kill() {
        if process.isRunning {
            Glibc.kill(pid, SIGKILL)
            process.waitUntilExit()
        }
        TestServers.untrack(pid)
    }
}
