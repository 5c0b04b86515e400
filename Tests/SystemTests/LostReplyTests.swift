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

    /// One listener whose Redis link loses every reply of the claim round that `body`
    /// starts, after `before` ran: checks `rows` rows under `prefix`, the watermark at
    /// `lastSeq`, each id processed once and one copy counted a duplicate.
    private func checkOneCopyProcessed(prefix: String, environment: [String: String] = [:], before: (SystemHarness) throws -> Void,
                                       body: String, rows: Int, lastSeq: Int) throws {
        let system = try SystemHarness()
        let redisProxy = try FaultProxy(upstreamPort: system.redis.port)
        defer { redisProxy.stop() }
        try system.startProducer()
        try system.startListener("cut", ["REDIS_URL": "redis://\(redisProxy.address)", "LOCK_TTL_MS": "60000"].merging(environment) { $1 })
        try before(system)
        redisProxy.armCutBeforeReply(matching: "NX\r\n$3\r\nGET")
        try system.publish(body)
        XCTAssertTrue(redisProxy.waitUntil(timeout: .seconds(10)) { $0.cutsFired == 1 }, "the fault never fired: \(redisProxy.stats)")
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: prefix)) == rows })
        XCTAssertTrue(waitUntil(10) { system.metric("cut", "dedup_stream_watermark_seq") == lastSeq })
        XCTAssertEqual(system.sum("dedup_events_processed_total"), rows, "a copy was processed again")
        XCTAssertEqual(system.sum("dedup_events_duplicate_total"), 1)
    }

    func testALostClaimReplyOverTwoCopiesOfAnIDProcessesItOnce() throws {
        // One request, one frame, one claim round: both copies' SETs run, every reply is lost.
        try checkOneCopyProcessed(prefix: "lr-copies-", before: { system in
            try system.publish("{\"event_id\":\"lr-copies-warm\"}")
            XCTAssertTrue(waitUntil(10) { (try? system.rowCount(prefix: "lr-copies-")) == 1 })
        }, body: "[{\"event_id\":\"lr-copies-x\"},{\"event_id\":\"lr-copies-x\"},{\"event_id\":\"lr-copies-y\"}]",
           rows: 3, lastSeq: 4)
    }

    func testALostClaimReplyOverACopyOfAnIDInHandProcessesItOnce() throws {
        // The first copy stays in hand (processing) while the second copy's SET runs, finds
        // the first one's claim, and loses its reply.
        try checkOneCopyProcessed(prefix: "lr-inhand-", environment: ["PROCESS_DELAY_MS": "2000"], before: { system in
            try system.publish("{\"event_id\":\"lr-inhand-x\"}")
            XCTAssertTrue(waitUntil(10) { system.metric("cut", "dedup_events_claimed_total") == 1 })
        }, body: "{\"event_id\":\"lr-inhand-x\"}", rows: 1, lastSeq: 2)
    }

    func testALostDoneMarkReplyLosesNothing() throws {
        try checkNothingLost(prefix: "lr-done-") { redis, _ in
            // A done marker's own arguments: `SET event:<id> d|cut PX <window>`.
            redis.armCutBeforeReply(matching: "d|cut\r\n$2\r\nPX")
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

/// A half-open producer link (traffic silently dropped, no FIN, no RST) is noticed by its
/// silence, reported by /health, and resumed without loss once the path heals.
final class ProducerLivenessTests: XCTestCase {
    func testABlackHoledProducerLinkIsNoticedAndResumedWithoutLoss() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let proxy = try FaultProxy(upstreamPort: system.wsPort)
        defer { proxy.stop() }
        let listener = try system.startListener("quiet", ["PRODUCER_URL": "ws://\(proxy.address)/",
                                                          "PRODUCER_SILENCE_TIMEOUT_MS": "1500"])
        try system.flood(count: 500, prefix: "bh-a-", seed: 61)
        XCTAssertTrue(waitUntil(20) { (try? system.rowCount(prefix: "bh-a-")) == 500 })
        proxy.blackhole(true)
        try system.flood(count: 500, prefix: "bh-b-", seed: 62)
        XCTAssertTrue(waitUntil(10) {
            guard let (status, body) = try? httpGet(port: listener.port, path: "/health") else { return false }
            return status == 503 && body.contains("nothing heard from the producer")
        }, listener.logTail())
        proxy.blackhole(false)
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "bh-")) == 1_000 },
                      "rows: \(String(describing: try? system.rowCount(prefix: "bh-"))): \(listener.logTail())")
        XCTAssertTrue(waitUntil(20) { (try? httpGet(port: listener.port, path: "/health").status) == 200 })
    }
}
