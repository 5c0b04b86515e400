import Foundation
import Glibc
import TestSupport
import XCTest

/// `Benchmarks e2e --quick --listeners 1,2 --rounds 2` (20,000 events a pass) with the already built
/// producer and listener: its own Redis and PostgreSQL, the ceilings, the throughput pass
/// with 1 and with 2 listeners (the scaling table), the reads, latency and durable passes.
/// Asserts correctness only — exit 0, exactly once in every pass, the JSON report written
/// with every phase and a scaling row per count, the picture with its bars — never speed.
final class BenchmarkQuickTests: XCTestCase {
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    func testQuickEndToEndRunIsExactlyOnceAndReportsEveryPhase() throws {
        let benchmarks = try productPath("Benchmarks")
        let binDir = URL(fileURLWithPath: try productPath("producer")).deletingLastPathComponent().path
        let out = TestServers.makeTempDir("bench-quick")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let logPath = out + "/output.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try XCTUnwrap(FileHandle(forWritingAtPath: logPath))

        let process = Process()
        process.executableURL = URL(fileURLWithPath: benchmarks)
        process.arguments = ["e2e", "--quick", "--listeners", "1,2", "--rounds", "2", "--bin-dir", binDir, "--output", out + "/report"]
        process.currentDirectoryURL = Self.root
        process.standardOutput = log
        process.standardError = log
        try process.run()
        TestServers.track(process.processIdentifier)
        let deadline = Date().addingTimeInterval(200)
        while process.isRunning && Date() < deadline { usleep(100_000) }
        if process.isRunning {
            // SIGTERM: the benchmark kills the servers and services it started, then exits.
            process.terminate()
        }
        process.waitUntilExit()
        TestServers.untrack(process.processIdentifier)
        try log.close()
        let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""

        XCTAssertEqual(process.terminationReason, .exit, "the quick run did not finish in time:\n\(output)")
        XCTAssertEqual(process.terminationStatus, 0, output)
        XCTAssertTrue(output.contains("exactly-once checks: all passed"), output)
        XCTAssertTrue(output.contains("== scaling: 20,000 events per listener count"), output)
        XCTAssertTrue(output.contains("2 listeners: ") && output.contains("× the 1-listener rate"), output)

        // The picture beside the report: one curve per pass and the latency curve.
        let svg = try String(contentsOfFile: out + "/report/latest.svg", encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg"), svg)
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 5, svg)
        for label in ["throughput", "reads", "latency", "durable", "p99"] { XCTAssertTrue(svg.contains(label), label) }
        // The scaling bars: rate and Redis commands per count (2 each), CPU by 4 process kinds
        // per count (8) and their legend (4), on the background rect; the 0.9× line's legend.
        XCTAssertEqual(svg.components(separatedBy: "<rect").count - 1, 1 + 2 + 2 + 8 + 4, svg)
        for label in ["stored per second", "Redis commands", "CPU by process", "0.9× the 1-listener rate"] {
            XCTAssertTrue(svg.contains(label), label)
        }

        let data = try Data(contentsOf: URL(fileURLWithPath: out + "/report/latest.json"))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertNotNil(json["commit"])
        XCTAssertNotNil((json["machine"] as? [String: Any])?["cores"])
        let suites = try XCTUnwrap(json["suites"] as? [String: [String: Any]])
        XCTAssertEqual((json["settings"] as? [String: Any])?["e2e_listener_counts"] as? [Int], [1, 2])
        for phase in ["e2e_ceiling", "e2e_throughput", "e2e_scaling", "e2e_reads", "e2e_latency", "e2e_durable", "e2e_cost"] {
            let suite = try XCTUnwrap(suites[phase], "\(phase) missing from the report")
            let notes = (suite["notes"] as? [String]) ?? []
            XCTAssertFalse(notes.contains { $0.hasPrefix("not run") || $0.hasPrefix("failed") }, "\(phase): \(notes)")
            XCTAssertGreaterThan(suite.count, 2, "\(phase) has no figures: \(suite)")
        }
        XCTAssertGreaterThan(suites["e2e_ceiling"]?["ceiling_per_sec"] as? Double ?? 0, 0)
        for pass in ["e2e_throughput", "e2e_reads", "e2e_latency", "e2e_durable"] {
            let suite = suites[pass] ?? [:]
            XCTAssertEqual(suite["exactly_once_ok"] as? Int, 1, "\(pass): \(suite)")
            let distinct = suite["distinct"] as? Int ?? -1
            XCTAssertGreaterThan(distinct, 0, pass)
            XCTAssertEqual(suite["rows"] as? Int, distinct, pass)
            XCTAssertEqual(suite["processed_sum"] as? Int, distinct, pass)
        }
        XCTAssertEqual(suites["e2e_throughput"]?["events"] as? Int, 20_000)
        XCTAssertEqual(suites["e2e_latency"]?["samples"] as? Int, suites["e2e_latency"]?["distinct"] as? Int)
        XCTAssertNotNil(suites["e2e_latency"]?["p99_ms"] as? Double)
        XCTAssertGreaterThan(suites["e2e_cost"]?["listener_peak_rss_bytes_max"] as? Int ?? 0, 0)

        // A scaling row per count, each pass on an empty table: rows == distinct (the passes
        // publish other ids, so rows left from the other pass would show).
        let scaling = suites["e2e_scaling"] ?? [:]
        let distinct = suites["e2e_throughput"]?["distinct"] as? Int ?? -1
        for count in [1, 2] {
            let row = "listeners_\(count)_"
            XCTAssertEqual(scaling[row + "exactly_once_ok"] as? Int, 1, "\(scaling)")
            XCTAssertEqual(scaling[row + "distinct"] as? Int, distinct, row)
            XCTAssertEqual(scaling[row + "rows"] as? Int, distinct, row)
            XCTAssertGreaterThan(scaling[row + "distinct_stored_per_sec"] as? Double ?? 0, 0, row)
            // At least one claim per distinct event reached Redis.
            XCTAssertGreaterThanOrEqual(scaling[row + "redis_commands_per_distinct_event"] as? Double ?? 0, 1, row)
            XCTAssertGreaterThan(scaling[row + "listener_peak_rss_bytes_max"] as? Int ?? 0, 0, row)
            for kind in ["producer", "listeners", "redis", "postgres"] {
                XCTAssertNotNil(scaling[row + "\(kind)_cpu_us_per_distinct_event"] as? Double, row + kind)
            }
            for listener in 0..<count {
                XCTAssertNotNil(scaling[row + "listener_\(listener)_cpu_us_per_distinct_event"] as? Double, "\(row)\(listener)")
            }
        }
        XCTAssertEqual(scaling["listeners_2_distinct_stored_per_sec"] as? Double,
                       suites["e2e_throughput"]?["distinct_stored_per_sec"] as? Double, "the 2-listener row is the throughput pass")
        for bar in ["bar_2_listeners_at_least_0_9_of_1_met", "bar_2_listeners_150k_distinct_per_sec_met", "bar_listener_rss_under_24mib_met"] {
            XCTAssertNotNil(scaling[bar] as? Int, bar)
        }
        // Two rounds: every count's rate per round, and the bars judged on the medians.
        XCTAssertTrue(output.contains("rounds (the counts alternating") && output.contains("(medians of 2 rounds)"), output)
        XCTAssertEqual(scaling["rounds"] as? Int, 2)
        for count in [1, 2] {
            let row = "listeners_\(count)_"
            let first = try XCTUnwrap(scaling[row + "round_1_distinct_stored_per_sec"] as? Double, row)
            let second = try XCTUnwrap(scaling[row + "round_2_distinct_stored_per_sec"] as? Double, row)
            XCTAssertEqual(first, scaling[row + "distinct_stored_per_sec"] as? Double, "round 1 is the table's row")
            XCTAssertEqual(scaling[row + "median_distinct_stored_per_sec"] as? Double ?? 0, (first + second) / 2, accuracy: 1e-6, row)
        }
        // The timestamped copy next to latest.json.
        let files = try FileManager.default.contentsOfDirectory(atPath: out + "/report")
        XCTAssertEqual(files.filter { $0.hasSuffix(".json") }.count, 2, "\(files)")
    }
}
