import Foundation
import TestSupport
import XCTest

/// The chaos tool in the suite: a fixed seed, every fault kind the binaries support, about
/// a minute. It must pass every time: a violation here is a bug in the system (or in the
/// tool), never noise. Its report and logs are kept in a temp dir named in the failure.
final class ChaosSmokeTests: XCTestCase {
    func testAFixedSeedRunsCleanUnderEveryFaultKind() throws {
        let chaos = try productPath("Chaos")
        let binDir = URL(fileURLWithPath: try productPath("producer")).deletingLastPathComponent().path
        let output = TestServers.makeTempDir("chaos-smoke")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chaos)
        process.arguments = ["--seed", "20261130", "--seconds", "40", "--listeners", "3", "--rate", "250",
                             "--bin-dir", binDir, "--output", output, "--drain-seconds", "60"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        TestServers.track(process.processIdentifier)
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        TestServers.untrack(process.processIdentifier)
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0, "chaos found a violation (report and logs in \(output)):\n\(text.suffix(6_000))")
        XCTAssertTrue(text.contains("PASS: no violation"), text.suffix(2_000).description)
        // The run really was under faults and checked something.
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output + "/seed-20261130/report.json"))) as? [String: Any])
        let faults = try XCTUnwrap(report["faults"] as? [[String: Any]])
        XCTAssertGreaterThan(faults.filter { $0["began"] != nil }.count, 8)
        let check = try XCTUnwrap(report["check"] as? [String: Any])
        XCTAssertGreaterThan(check["ackedDistinct"] as? Int ?? 0, 3_000)
        XCTAssertTrue(FileManager.default.fileExists(atPath: output + "/seed-20261130/timeline.svg"))
    }
}
