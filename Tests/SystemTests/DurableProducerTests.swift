import Foundation
import Glibc
import TestSupport
import XCTest

/// Issue 12's scenario: the producer killed with SIGKILL while every listener is paused
/// loses nothing it answered 202 for. After a restart on the same DATA_DIR its seqs
/// continue, and the listeners resume from their watermarks and store every event once.
final class DurableProducerTests: XCTestCase {
    func testEveryAcceptedEventIsStoredOnceAfterTheProducerIsKilledWhileListenersArePaused() throws {
        let system = try SystemHarness()
        let dataDir = system.dir + "/producer-data"
        try system.startProducer(["DATA_DIR": dataDir])
        let a = try system.startListener("durable-a")
        let b = try system.startListener("durable-b")
        a.pause()
        b.pause()
        defer {
            a.resume()
            b.resume()
        }
        // Every POST answered 202 (the flood fails on anything else).
        let summary = try system.flood(count: 20_000, duplicates: 0.1, prefix: "d12-", seed: 12)
        let distinct = try XCTUnwrap(summary["distinct"] as? Int)
        system.producer!.kill()
        try system.startProducer(["DATA_DIR": dataDir])
        let health = try httpGet(port: system.httpPort, path: "/health")
        XCTAssertTrue(health.body.contains("\"last_seq\":20000,"), "seqs continue from the log: \(health.body)")
        a.resume()
        b.resume()
        XCTAssertTrue(waitUntil(60) { (try? system.rowCount(prefix: "d12-")) == distinct },
                      "rows: \(String(describing: try? system.rowCount(prefix: "d12-"))) of \(distinct)")
        try system.publish("{\"event_id\":\"d12-after-restart\"}")
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "d12-")) == distinct + 1 })
        XCTAssertEqual(try system.postgres.psql("SELECT seq FROM events WHERE event_id = 'd12-after-restart'"), "20001")
    }
}
