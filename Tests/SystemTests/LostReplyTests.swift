import Foundation
import TestSupport
import XCTest

/// A reply lost on the way back from Redis or PostgreSQL (the command ran, the connection
/// died) loses nothing and stores nothing twice. A TCP fault proxy between the listener
/// and the server lets the command through and resets the connection before the reply.
final class LostReplyTests: XCTestCase {
    /// Runs one listener through proxies, arms `cut` on one of them once events flow, and
    /// checks every event is stored exactly once and processed once.
    private func checkNothingLost(prefix: String, arm: (_ redis: FaultProxy, _ postgres: FaultProxy) -> FaultProxy) throws {
        let system = try SystemHarness()
        let redisProxy = try FaultProxy(upstreamPort: system.redis.port)
        let postgresProxy = try FaultProxy(upstreamPort: system.postgres.port)
        defer { redisProxy.stop(); postgresProxy.stop() }
        try system.startProducer()
        try system.startListener("cut", ["REDIS_URL": "redis://\(redisProxy.address)",
                                         "DATABASE_URL": "postgres://postgres@\(postgresProxy.address)/postgres",
                                         "LOCK_TTL_MS": "60000"])
        try system.publish("{\"event_id\":\"\(prefix)warm\"}")
        XCTAssertTrue(waitUntil(10) { (try? system.rowCount(prefix: prefix)) == 1 })
        let proxy = arm(redisProxy, postgresProxy)
        let summary = try system.flood(count: 2_000, prefix: prefix + "f-", batch: 50, seed: 41)
        XCTAssertTrue(proxy.waitUntil(timeout: .seconds(10)) { $0.cutsFired == 1 }, "the fault never fired: \(proxy.stats)")
        let expected = (summary["distinct"] as! Int) + 1
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: prefix)) == expected },
                      "rows: \(String(describing: try? system.rowCount(prefix: prefix))) of \(expected): \(system.listeners["cut"]!.logTail())")
        XCTAssertTrue(waitUntil(10) { system.metric("cut", "dedup_stream_watermark_seq") == 2_001 })
        // Nothing was taken for a duplicate of itself, and nothing processed twice.
        XCTAssertEqual(system.sum("dedup_events_processed_total"), expected)
        XCTAssertEqual(try system.postgres.psql("SELECT count(*) FROM dead_letters"), "0")
    }

    func testALostClaimReplyLosesNothing() throws {
        try checkNothingLost(prefix: "lr-claim-") { redis, _ in
            // The claim's own arguments: `... NX GET`.
            redis.armCutBeforeReply(matching: "NX\r\n$3\r\nGET")
            return redis
        }
    }

    func testALostDoneMarkReplyLosesNothing() throws {
        try checkNothingLost(prefix: "lr-done-") { redis, _ in
            redis.armCutBeforeReply(matching: "ARGV[2], 'PX'")
            return redis
        }
    }

    func testALostInsertReplyLosesNothing() throws {
        try checkNothingLost(prefix: "lr-insert-") { _, postgres in
            // Bind of the prepared batch insert: its statement runs, its reply is lost.
            postgres.armCutBeforeNextReply()
            return postgres
        }
    }
}
