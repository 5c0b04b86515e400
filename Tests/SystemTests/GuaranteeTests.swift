import Foundation
import Glibc
import TestSupport
import XCTest

/// The four guarantees of docs/interface.md, one test per promise, each checked in the `events`
/// table and the listeners' summed metrics, never in log text.
final class GuaranteeTests: XCTestCase {
    /// Stored exactly once, and processed once in normal operation: one row per distinct id; processed once in normal operation.
    func testThreeListenersStoreEachDistinctEventExactlyOnce() throws {
        let system = try SystemHarness()
        try system.startProducer()
        for id in ["a", "b", "c"] { try system.startListener(id) }
        let summary = try system.flood(count: 20_000, duplicates: 0.2, prefix: "g1-", seed: 11)
        let distinct = try XCTUnwrap(summary["distinct"] as? Int)
        XCTAssertTrue(waitUntil(60) { (try? system.rowCount(prefix: "g1-")) == distinct }, "rows: \(String(describing: try? system.rowCount(prefix: "g1-"))) of \(distinct)")
        XCTAssertTrue(waitUntil(10) { system.sum("dedup_events_processed_total") == distinct },
                      "processed \(["a", "b", "c"].map { system.metric($0, "dedup_events_processed_total") ?? -1 }) claimed \(["a", "b", "c"].map { system.metric($0, "dedup_events_claimed_total") ?? -1 }) recovered \(system.sum("dedup_events_recovered_total")) of \(distinct)")
        XCTAssertEqual(system.sum("dedup_events_processed_total"), distinct)
        XCTAssertEqual(system.sum("dedup_events_stored_total"), distinct)
        XCTAssertEqual(system.sum("dedup_events_recovered_total"), 0)
        // A holder reads on as the claimer's state shows what it stored: the last frames
        // may reach it a poll after the last row is in.
        XCTAssertTrue(waitUntil(10) { system.sum("dedup_events_received_total") == 3 * 20_000 },
                      "received \(["a", "b", "c"].map { system.metric($0, "dedup_events_received_total") ?? -1 })")
        // Every copy of every id was either claimed once or skipped as a duplicate.
        XCTAssertTrue(waitUntil(10) {
            system.sum("dedup_events_claimed_total") + system.sum("dedup_events_duplicate_total") == 3 * 20_000
        }, "\(["dedup_events_claimed_total", "dedup_events_duplicate_total", "dedup_events_watching", "dedup_events_in_flight", "dedup_events_received_total"].map { name in ["a", "b", "c"].map { system.metric($0, name) ?? -1 } })")
    }

    /// Nothing lost: a listener killed between claim and store loses nothing; others recover its events.
    func testEventsOfAListenerKilledBetweenClaimAndStoreAreRecovered() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let slow = ["PROCESS_DELAY_MS": "1500", "LOCK_TTL_MS": "1000"]
        // The victim alone first, so it holds claims for certain (two listeners racing for
        // a few claim rounds could leave it none); the survivor then sees them held.
        try system.startListener("victim", slow)
        try system.flood(count: 2_000, prefix: "g2-", batch: 50)
        XCTAssertTrue(waitUntil(10) { (system.metric("victim", "dedup_events_claimed_total") ?? 0) > 0 })
        try system.startListener("survivor", slow)
        system.listeners["victim"]!.kill()
        XCTAssertTrue(waitUntil(60) { (try? system.rowCount(prefix: "g2-")) == 2_000 },
                      "rows: \(String(describing: try? system.rowCount(prefix: "g2-")))")
        XCTAssertGreaterThan(system.metric("survivor", "dedup_events_recovered_total") ?? 0, 0)
        XCTAssertEqual(Int(try system.postgres.psql("SELECT count(*) FROM events WHERE event_id LIKE 'g2-%' AND processed_by = 'victim'")), 0)
    }

    /// Nothing lost: Redis restarted mid-stream: everything stored exactly once when it is back.
    func testRedisRestartMidStreamLosesNothing() throws {
        let system = try SystemHarness()
        try system.startProducer()
        try system.startListener("r1")
        try system.startListener("r2")
        let first = try system.flood(count: 3_000, prefix: "g3-", rate: 3_000, seed: 3)
        system.redis.stop()
        try system.publish("[{\"event_id\":\"g3-during-1\"},{\"event_id\":\"g3-during-2\"}]")
        usleep(500_000)
        try system.redis.start()
        let second = try system.flood(count: 3_000, prefix: "g3-after-", seed: 4)
        let expected = (first["distinct"] as! Int) + 2 + (second["distinct"] as! Int)
        XCTAssertTrue(waitUntil(60) { (try? system.rowCount(prefix: "g3-")) == expected },
                      "rows: \(String(describing: try? system.rowCount(prefix: "g3-"))) of \(expected)")
    }

    /// Nothing lost: a Redis out of memory (past `maxmemory`, every write refused with OOM)
    /// holds every event back, stores none without a claim, and once it takes writes again
    /// each is stored and processed exactly once.
    func testARedisRefusingWritesForWantOfMemoryLosesNothing() throws {
        let system = try SystemHarness()
        defer { _ = try? system.redis.cli("CONFIG", "SET", "maxmemory", "0") }
        try system.startProducer()
        try system.startListener("m1")
        try system.startListener("m2")
        let before = try system.flood(count: 2_000, prefix: "g7-a-", seed: 12)
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "g7-a-")) == before["distinct"] as? Int })
        let failuresBefore = system.sum("dedup_claim_failures_total")
        XCTAssertEqual(try system.redis.cli("CONFIG", "SET", "maxmemory", "1"), "OK")
        let during = try system.flood(count: 2_000, duplicates: 0.2, prefix: "g7-b-", seed: 13)
        XCTAssertTrue(waitUntil(10) { system.sum("dedup_claim_failures_total") > failuresBefore })
        usleep(500_000)
        XCTAssertEqual(try system.rowCount(prefix: "g7-b-"), 0, "stored without a claim while Redis refused writes")
        XCTAssertEqual(try system.redis.cli("CONFIG", "SET", "maxmemory", "0"), "OK")
        let expected = (before["distinct"] as! Int) + (during["distinct"] as! Int)
        XCTAssertTrue(waitUntil(60) { (try? system.rowCount(prefix: "g7-")) == expected },
                      "rows: \(String(describing: try? system.rowCount(prefix: "g7-"))) of \(expected)")
        XCTAssertTrue(waitUntil(10) { system.sum("dedup_events_processed_total") == expected },
                      "processed \(system.sum("dedup_events_processed_total")) of \(expected)")
        XCTAssertTrue(waitUntil(20) { system.listeners.values.allSatisfy { (try? httpGet(port: $0.port, path: "/health").status) == 200 } })
    }

    /// Nothing lost: PostgreSQL restarted mid-stream: everything stored exactly once when it is back.
    func testPostgresRestartMidStreamLosesNothing() throws {
        let system = try SystemHarness()
        try system.startProducer()
        try system.startListener("p1")
        try system.startListener("p2")
        let first = try system.flood(count: 3_000, prefix: "g4-", seed: 5)
        system.postgres.stop()
        try system.publish("[{\"event_id\":\"g4-during-1\"},{\"event_id\":\"g4-during-2\"}]")
        let during = try system.flood(count: 2_000, prefix: "g4-down-", seed: 6)
        usleep(500_000)
        try system.postgres.start()
        let expected = (first["distinct"] as! Int) + 2 + (during["distinct"] as! Int)
        XCTAssertTrue(waitUntil(60) { (try? system.rowCount(prefix: "g4-")) == expected },
                      "rows: \(String(describing: try? system.rowCount(prefix: "g4-"))) of \(expected)")
        XCTAssertTrue(waitUntil(20) { system.listeners.values.allSatisfy { (try? httpGet(port: $0.port, path: "/health").status) == 200 } })
    }

    /// Nothing lost: the only listener, killed and restarted with its INSTANCE_ID while events flow,
    /// resumes from its watermark and misses nothing.
    func testARestartedListenerResumesFromItsWatermark() throws {
        let system = try SystemHarness()
        try system.startProducer()
        try system.startListener("solo", ["LOCK_TTL_MS": "1000"])
        let first = try system.flood(count: 5_000, prefix: "g5-a-", seed: 8)
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "g5-a-")) == first["distinct"] as? Int })
        // Its watermark is persisted a few times a second; kill it once it has caught up.
        XCTAssertTrue(waitUntil(10) {
            (try? system.postgres.psql("SELECT seq FROM listener_watermarks WHERE instance_id = 'solo'")) == "5000"
        })
        system.listeners["solo"]!.kill()
        let missed = try system.flood(count: 5_000, prefix: "g5-b-", seed: 9)
        try system.startListener("solo", ["LOCK_TTL_MS": "1000"])
        let after = try system.flood(count: 2_000, prefix: "g5-c-", seed: 10)
        let expected = (first["distinct"] as! Int) + (missed["distinct"] as! Int) + (after["distinct"] as! Int)
        XCTAssertTrue(waitUntil(60) { (try? system.rowCount(prefix: "g5-")) == expected },
                      "rows: \(String(describing: try? system.rowCount(prefix: "g5-"))) of \(expected)")
        // It resumed rather than replaying the whole ring: it did not receive the first batch again.
        XCTAssertEqual(system.metric("solo", "dedup_events_received_total"), 5_000 + 2_000)
    }

    /// Processed once in normal operation: an id published again after it was stored, inside the dedup window, is not processed again.
    func testAnIDRepublishedInsideTheWindowIsNotProcessedAgain() throws {
        let system = try SystemHarness()
        try system.startProducer()
        try system.startListener("w1")
        try system.startListener("w2")
        try system.publish("{\"event_id\":\"g6-once\",\"payload\":{\"n\":1}}")
        XCTAssertTrue(waitUntil(10) { (try? system.rowCount(prefix: "g6-")) == 1 })
        XCTAssertTrue(waitUntil(5) { system.sum("dedup_events_processed_total") == 1 })
        try system.publish("{\"event_id\":\"g6-once\",\"payload\":{\"n\":2}}")
        XCTAssertTrue(waitUntil(10) { system.sum("dedup_events_duplicate_total") == 3 })
        XCTAssertEqual(system.sum("dedup_events_processed_total"), 1)
        XCTAssertEqual(try system.postgres.psql("SELECT payload->>'n' FROM events WHERE event_id = 'g6-once'"), "1")
    }
}
