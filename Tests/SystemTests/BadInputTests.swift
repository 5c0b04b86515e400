import Foundation
import Reactor
import Synchronization
import TestSupport
import XCTest

/// Bad input is refused, never fatal: malformed lines, unknown fields, an oversized frame and plain garbage from
/// the producer are counted and logged; the listener keeps serving and stores the good events.
final class BadInputTests: XCTestCase {
    func testAListenerSurvivesAProducerThatSendsGarbage() throws {
        let system = try SystemHarness()
        let connections = Mutex(0)
        let port = system.wsPort
        // A fake producer: the first connection gets bad frames, then one that announces a
        // 100 MiB message; later connections get good events.
        let fake = try EventLoopGroup(threads: 1) { loop, _ in
            let server = try WebSocketServer(loop: loop, host: "127.0.0.1", port: port, reusePort: false) { socket in
                let n = connections.withLock { $0 += 1; return $0 }
                if n == 1 {
                    socket.send(text: "{\"seq\":1,\"event_id\":\"bad-ok-1\",\"payload\":{\"x\":1}}\n{not json\n{\"seq\":2,\"payload\":3}\n{\"seq\":3,\"event_id\":\"bad-ok-2\",\"payload\":null,\"extra\":{\"unknown\":[1,2]}}")
                    socket.send(text: "\u{01}garbage garbage\n]]]")
                    socket.send(binary: [0xde, 0xad, 0xbe, 0xef])
                    // A frame header announcing 100 MiB: refused (1009) before anything is buffered.
                    socket.connection.write([0x81, 0x7F, 0, 0, 0, 0, 0x06, 0x40, 0, 0])
                } else {
                    socket.send(text: "{\"seq\":4,\"event_id\":\"bad-ok-3\",\"payload\":\"fine\"}")
                }
            }
            loop.keepAlive(server)
        }
        defer { fake.shutdown() }
        let listener = try system.startListener("sturdy")
        XCTAssertTrue(waitUntil(20) { (try? system.rowCount(prefix: "bad-ok-")) == 3 },
                      "rows: \(String(describing: try? system.rowCount(prefix: "bad-ok-"))); log: \(listener.logText)")
        XCTAssertGreaterThanOrEqual(system.metric("sturdy", "dedup_stream_malformed_lines_total") ?? 0, 3)
        XCTAssertGreaterThanOrEqual(connections.withLock { $0 }, 2, "the listener reconnected after the oversized frame")
        XCTAssertTrue(listener.isRunning)
        XCTAssertEqual(try httpGet(port: listener.port, path: "/health").status, 200)
        XCTAssertTrue(listener.logText.contains("malformed line"))
    }
}

/// Bad settings exit at once, non-zero, with one line naming the setting; --help lists them.
final class SettingsTests: XCTestCase {
    private func run(_ binary: String, _ arguments: [String], _ env: [String: String]) throws -> (Int32, String) {
        try TestServers.run(try productPath(binary), arguments, environment: env)
    }

    func testBadSettingsAreRefusedWithOneLineNamingThem() throws {
        let cases: [(String, [String], [String: String], String)] = [
            ("producer", [], ["HTTP_PORT": "99999"], "HTTP_PORT"),
            ("producer", ["--ws-port", "abc"], [:], "WS_PORT"),
            ("producer", [], ["REPLAY_CAPACITY": "-1"], "REPLAY_CAPACITY"),
            ("producer", [], ["MAX_BODY_BYTES": "lots"], "MAX_BODY_BYTES"),
            ("producer", [], ["RETENTION_BYTES": "4096"], "RETENTION_BYTES"),
            ("producer", ["--data-dir", "/dev/null/log"], ["HTTP_PORT": "\(TestServers.freePort())", "WS_PORT": "\(TestServers.freePort())"], "DATA_DIR"),
            ("listener", [], ["PORT": "0"], "PORT"),
            ("listener", [], ["LOCK_TTL_MS": "-5"], "LOCK_TTL_MS"),
            ("listener", [], ["REDIS_URL": "http://127.0.0.1:6379"], "REDIS_URL"),
            ("listener", [], ["PRODUCER_URL": "wss://example:8080/"], "PRODUCER_URL"),
            ("listener", ["--database-url", "postgres://[bad"], [:], "DATABASE_URL"),
            ("listener", [], ["LOG_LEVEL": "loud"], "LOG_LEVEL"),
            ("listener", [], ["LOCK_TTL_MS": "5000", "DEDUP_WINDOW_MS": "2000"], "DEDUP_WINDOW_MS"),
            ("listener", [], ["MAX_IN_FLIGHT_BYTES": "12"], "MAX_IN_FLIGHT_BYTES"),
            ("listener", [], ["SHUTDOWN_TIMEOUT_MS": "-1"], "SHUTDOWN_TIMEOUT_MS"),
        ]
        for (binary, arguments, env, name) in cases {
            let (status, output) = try run(binary, arguments, env)
            XCTAssertNotEqual(status, 0, "\(binary) \(env) was accepted")
            let lines = output.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(binary) \(env): \(output)")
            XCTAssertTrue(output.contains(name), "\(binary) \(env): \(output)")
        }
    }

    func testHelpListsEverySettingWithItsDefault() throws {
        let (_, producer) = try run("producer", ["serve", "--help"], [:])
        for setting in ["--http-port", "HTTP_PORT", "3005", "--ws-port", "8080", "--host", "0.0.0.0", "--replay-capacity",
                        "1048576", "--max-body-bytes", "--data-dir", "DATA_DIR", "producer-data",
                        "--retention-bytes", "RETENTION_BYTES", "1073741824"] {
            XCTAssertTrue(producer.contains(setting), "producer --help lacks \(setting)")
        }
        let (_, listener) = try run("listener", ["--help"], [:])
        for setting in ["--instance-id", "INSTANCE_ID", "--port", "3000", "--producer-url", "ws://127.0.0.1:8080/", "--redis-url",
                        "redis://127.0.0.1:6379", "--database-url", "--lock-ttl-ms", "30000", "--dedup-window-ms", "600000",
                        "--process-delay-ms", "--log-level", "--max-in-flight-bytes", "268435456", "--shutdown-timeout-ms",
                        "10000"] {
            XCTAssertTrue(listener.contains(setting), "listener --help lacks \(setting)")
        }
    }
}
