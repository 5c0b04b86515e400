import Foundation
import TestSupport
import XCTest

/// The chaos tool in the suite: a fixed seed, every fault kind the binaries support, about
/// a minute. It must pass every time: a violation here is a bug in the system (or in the
/// tool), never noise. Its report and logs are kept in a temp dir named in the failure.
final class ChaosSmokeTests: XCTestCase {
    func testAFixedSeedRunsCleanUnderEveryFaultKind() throws {
        let report = try runChaos(seed: 20261130, seconds: 40)
        let faults = try XCTUnwrap(report["faults"] as? [[String: Any]])
        XCTAssertGreaterThan(faults.filter { $0["began"] != nil }.count, 8)
    }

    /// The same on a Redis Cluster of 3 masters and their replicas: masters killed, wiped
    /// and failed over one at a time, slots and their keys moved mid-stream.
    func testAFixedSeedRunsCleanOnARedisClusterWhoseMastersFailAndWhoseSlotsMove() throws {
        let report = try runChaos(seed: 20261203, seconds: 30, extra: ["--redis-cluster", "--faults",
                                                                        "redis-slot-migrate,redis-failover,redis-restart,redis-wipe,listener-kill,listener-stop,link-reset"])
        let faults = try XCTUnwrap(report["faults"] as? [[String: Any]])
        let begun = faults.filter { $0["began"] != nil }
        XCTAssertGreaterThan(begun.count, 6)
        let kinds = begun.compactMap { ($0["episode"] as? [String: Any])?["kind"] as? String }
        for kind in ["redis-slot-migrate", "redis-failover", "redis-wipe", "redis-restart"] {
            XCTAssertTrue(kinds.contains(kind), "\(kind) not among \(kinds)")
        }
    }

    /// The checker's own test: with the listeners' PostgreSQL sessions at
    /// `synchronous_commit=off`, PostgreSQL confirms rows before they are on disk, and each
    /// crash of it forgets the last ones, whose events were already marked done. The run
    /// must fail, and name those events lost; a checker that passed it would pass anything.
    func testTheCheckerFindsTheEventsAPostgreSQLCrashLosesWhenCommitsAreNotDurable() throws {
        // Each crash forgets up to wal_writer_delay (200 ms) of confirmed commits: 100 events
        // in this seed's 5 crashes when it first ran.
        let report = try runChaos(seed: 20261204, seconds: 20, expectPass: false,
                                  extra: ["--postgres-async-commit", "--faults", "postgres-restart", "--gap", "1.5,2.5",
                                          "--drain-seconds", "15"])
        let check = try XCTUnwrap(report["check"] as? [String: Any])
        let lost = try XCTUnwrap(check["lost"] as? [[String: Any]])
        XCTAssertGreaterThan(lost.count, 0)
        XCTAssertEqual((check["duplicated"] as? [Any])?.count, 0)
        XCTAssertEqual((check["unexpected"] as? [Any])?.count, 0)
    }

    /// Runs the chaos tool on the test build's binaries and returns its report, after
    /// checking that it passed (or, with `expectPass` false, failed) and really checked
    /// something.
    private func runChaos(seed: Int, seconds: Int, expectPass: Bool = true, extra: [String] = []) throws -> [String: Any] {
        let chaos = try productPath("Chaos")
        let binDir = URL(fileURLWithPath: try productPath("producer")).deletingLastPathComponent().path
        let output = TestServers.makeTempDir("chaos-smoke")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chaos)
        process.arguments = ["--seed", "\(seed)", "--seconds", "\(seconds)", "--listeners", "3", "--rate", "250",
                             "--bin-dir", binDir, "--output", output, "--drain-seconds", "60"] + extra
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        TestServers.track(process.processIdentifier)
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        TestServers.untrack(process.processIdentifier)
        let text = String(decoding: data, as: UTF8.self)
        if expectPass {
            XCTAssertEqual(process.terminationStatus, 0, "chaos found a violation (report and logs in \(output)):\n\(text.suffix(6_000))")
            XCTAssertTrue(text.contains("PASS: no violation"), text.suffix(2_000).description)
        } else {
            XCTAssertEqual(process.terminationStatus, 1, "chaos found no violation (report and logs in \(output)):\n\(text.suffix(6_000))")
            XCTAssertTrue(text.contains("FAIL: "), text.suffix(2_000).description)
        }
        // The run really was under faults and checked something.
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output + "/seed-\(seed)/report.json"))) as? [String: Any])
        let check = try XCTUnwrap(report["check"] as? [String: Any])
        XCTAssertGreaterThan(check["ackedDistinct"] as? Int ?? 0, seconds * 75)
        XCTAssertTrue(FileManager.default.fileExists(atPath: output + "/seed-\(seed)/timeline.svg"))
        return report
    }
}
