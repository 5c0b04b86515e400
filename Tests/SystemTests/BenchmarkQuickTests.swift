import Foundation
import Glibc
import TestSupport
import XCTest

/// `Benchmarks e2e --quick` (20,000 events) with the already built producer and listener:
/// its own Redis and PostgreSQL, the ceilings, the throughput, latency and durable passes.
/// Asserts correctness only — exit 0, exactly once in every pass, the JSON report written
/// with every phase — never speed.
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
        process.arguments = ["e2e", "--quick", "--bin-dir", binDir, "--output", out + "/report"]
        process.currentDirectoryURL = Self.root
        process.standardOutput = log
        process.standardError = log
        try process.run()
        TestServers.track(process.processIdentifier)
        let deadline = Date().addingTimeInterval(150)
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

        // The picture beside the report: one curve per pass and the latency curve.
        let svg = try String(contentsOfFile: out + "/report/latest.svg", encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg"), svg)
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 5, svg)
        for label in ["throughput", "reads", "latency", "durable", "p99"] { XCTAssertTrue(svg.contains(label), label) }

        let data = try Data(contentsOf: URL(fileURLWithPath: out + "/report/latest.json"))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertNotNil(json["commit"])
        XCTAssertNotNil((json["machine"] as? [String: Any])?["cores"])
        let suites = try XCTUnwrap(json["suites"] as? [String: [String: Any]])
        for phase in ["e2e_ceiling", "e2e_throughput", "e2e_reads", "e2e_latency", "e2e_durable", "e2e_cost"] {
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
        // The timestamped copy next to latest.json.
        let files = try FileManager.default.contentsOfDirectory(atPath: out + "/report")
        XCTAssertEqual(files.filter { $0.hasSuffix(".json") }.count, 2, "\(files)")
    }
}
