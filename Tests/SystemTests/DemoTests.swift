import Foundation
import TestSupport
import XCTest

/// The README's run command, end to end: both listeners log the demo event (one claims and
/// stores it, the other skips it as a duplicate) and both APIs return it; twice in a row.
final class DemoTests: XCTestCase {
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    private func demo(_ arguments: [String], dir: String) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = Self.root.appendingPathComponent("scripts/demo")
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["DEDUP_DEMO_DIR"] = dir
        env["DEDUP_BIN"] = URL(fileURLWithPath: try productPath("producer")).deletingLastPathComponent().path
        process.environment = env
        // A file, not a pipe: the services the demo leaves running must not hold our read open.
        let outputPath = dir + "-output-\(arguments.first ?? "start").log"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let output = FileHandle(forWritingAtPath: outputPath)!
        process.standardOutput = output
        process.standardError = output
        try process.run()
        process.waitUntilExit()
        try output.close()
        return (process.terminationStatus, (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
    }

    func testTheRunCommandShowsOneClaimAndOneDuplicateAndWorksTwice() throws {
        let dir = TestServers.makeTempDir("demo")
        defer { _ = try? demo(["stop"], dir: dir) }
        for run in 1...2 {
            let (status, output) = try demo([], dir: dir)
            XCTAssertEqual(status, 0, "run \(run): \(output)")
            // Each run starts a fresh log (the demo wipes its directory): a new stream, seq 1.
            XCTAssertTrue(output.contains("{\"accepted\":1,\"first_seq\":1,\"last_seq\":1,\"stream\":\""), output)
            let claimed = output.components(separatedBy: "claimed seq=1 event_id=test-123").count - 1
            let stored = output.components(separatedBy: "stored seq=1 event_id=test-123").count - 1
            let duplicate = output.components(separatedBy: "duplicate seq=1 event_id=test-123").count - 1
            XCTAssertEqual([claimed, stored, duplicate], [1, 1, 1], "run \(run): \(output)")
            XCTAssertEqual(output.components(separatedBy: "\"event_id\":\"test-123\",\"seq\":1,\"payload\":{\"message\": \"hello\"}").count - 1, 2,
                           "both listeners' /api/events show the event: \(output)")
            XCTAssertTrue(output.contains("scripts/demo stop"))
        }
        let (status, output) = try demo(["stop"], dir: dir)
        XCTAssertEqual(status, 0, output)
        XCTAssertFalse(TestServers.waitForPort(3005, timeout: 0.2), "the producer is still running after stop")
    }
}
