import Foundation
import TestSupport
import XCTest
@testable import Producer

/// `producer flood` against a real producer process: every event accepted, the summary
/// tells the truth, and the ids it generates follow --duplicates.
final class FloodTests: XCTestCase {
    func testFloodPublishesEveryEventAndReportsJSON() throws {
        let binary = try productPath("producer")
        let http = freeTCPPort(), ws = freeTCPPort()
        let server = Process()
        let dataDir = TestServers.makeTempDir("producer-log")
        server.executableURL = URL(fileURLWithPath: binary)
        server.arguments = ["--http-port", "\(http)", "--ws-port", "\(ws)", "--host", "127.0.0.1", "--log-level", "warning",
                            "--data-dir", dataDir]
        try server.run()
        defer {
            server.terminate()
            server.waitUntilExit()
            try? FileManager.default.removeItem(atPath: dataDir)
        }
        XCTAssertTrue(waitForTCP(port: http))
        let flood = Process()
        flood.executableURL = URL(fileURLWithPath: binary)
        flood.arguments = ["flood", "--url", "http://127.0.0.1:\(http)", "--count", "20000", "--batch", "50",
                           "--connections", "3", "--duplicates", "0.2", "--seed", "7", "--json"]
        let out = Pipe()
        flood.standardOutput = out
        flood.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try flood.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        flood.waitUntilExit()
        XCTAssertEqual(flood.terminationStatus, 0)
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], String(decoding: data, as: UTF8.self))
        XCTAssertEqual(summary["events"] as? Int, 20_000)
        XCTAssertEqual(summary["accepted"] as? Int, 20_000)
        XCTAssertEqual(summary["errors"] as? Int, 0)
        let distinct = try XCTUnwrap(summary["distinct"] as? Int)
        XCTAssertEqual(Double(distinct), 16_000, accuracy: 600, "about 20 % of the ids are reused")
        XCTAssertNotNil((summary["latency_ms"] as? [String: Any])?["p99"])
    }

    func testBadFloodArgumentsAreRefused() throws {
        let flood = Process()
        flood.executableURL = URL(fileURLWithPath: try productPath("producer"))
        flood.arguments = ["flood", "--url", "ftp://nope", "--count", "1"]
        flood.standardError = FileHandle(forWritingAtPath: "/dev/null")
        flood.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try flood.run()
        flood.waitUntilExit()
        XCTAssertNotEqual(flood.terminationStatus, 0)
    }
}
