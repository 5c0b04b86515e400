import Foundation
import Glibc
import TestSupport
import XCTest

/// No single event, whatever it holds, can stop other events from being stored: what
/// PostgreSQL refuses for good lands in `dead_letters`, everything else in `events`.
final class PoisonEventTests: XCTestCase {
    private func goodLine(_ seq: UInt64, _ prefix: String) -> (UInt64, String) {
        (seq, "{\"seq\":\(seq),\"event_id\":\"\(prefix)\(seq)\",\"payload\":{\"n\":\(seq)}}")
    }

    /// 200 good events with a poison one in the middle: every good one is stored, the
    /// poison one is dead-lettered, health stays 200, the watermark passes it, and SIGTERM
    /// exits at once.
    func testAPoisonEventInTheMiddleOfABatchWedgesNothing() throws {
        let system = try SystemHarness()
        var lines = (1...100).map { goodLine($0, "pz-") }
        lines.append((101, "{\"seq\":101,\"event_id\":\"bad\\u0000id\",\"payload\":{\"n\":101}}"))
        lines += (102...201).map { goodLine($0, "pz-") }
        let fake = try FakeProducer(port: system.wsPort, lines: lines)
        defer { fake.shutdown() }
        try system.startListener("pa")
        try system.startListener("pb")
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "pz-")) == 200 },
                      "rows: \(String(describing: try? system.rowCount(prefix: "pz-"))): \(system.listeners["pa"]!.logTail())")
        XCTAssertTrue(waitUntil(10) { (try? system.postgres.psql("SELECT count(*) FROM dead_letters")) == "1" })
        XCTAssertEqual(try system.postgres.psql("SELECT encode(event_id, 'escape') FROM dead_letters"), "bad\\000id")
        XCTAssertTrue(waitUntil(10) { system.sum("dedup_events_dead_lettered_total") == 1 })
        for id in ["pa", "pb"] {
            XCTAssertTrue(waitUntil(10) { system.metric(id, "dedup_stream_watermark_seq") == 201 }, "\(id) watermark \(String(describing: system.metric(id, "dedup_stream_watermark_seq")))")
            XCTAssertEqual(try httpGet(port: system.listeners[id]!.port, path: "/health").status, 200)
        }
        XCTAssertEqual(system.sum("dedup_events_processed_total"), 201)
        let started = Date()
        XCTAssertEqual(system.listeners["pa"]!.terminate(grace: 10), 0)
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
    }

    /// Batches that wait behind two inserts go to PostgreSQL in one statement; a poison
    /// event in one of them fails that statement for all. Each batch is then stored alone:
    /// the poison event is dead-lettered, every other event is stored once.
    func testAPoisonEventInAnInsertOfSeveralBatchesWedgesNothing() throws {
        let system = try SystemHarness()
        var frames: [[(UInt64, String)]] = [[goodLine(1, "pj-")]]
        for frame in 0..<6 {
            let seqs = UInt64(2 + frame * 40)...UInt64(41 + frame * 40)
            frames.append(seqs.map { seq in
                seq == 140 ? (seq, "{\"seq\":140,\"event_id\":\"poison\\u0000140\",\"payload\":{\"n\":140}}") : goodLine(seq, "pj-")
            })
        }
        let fake = try PacedFakeProducer(port: system.wsPort, frames: frames)
        defer { fake.shutdown() }
        let listener = try system.startListener("pj")
        fake.releaseNext()
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "pj-")) == 1 }, listener.logTail())

        // Inserts wait on the lock: the first two frames' batches are sent, the other four
        // wait for them and then go together.
        let lock = try PostgresTableLock(system.postgres, table: "events")
        for frame in 1...6 {
            fake.releaseNext()
            XCTAssertTrue(waitUntil(10) { system.metric("pj", "dedup_events_claimed_total") == 1 + 40 * frame },
                          "frame \(frame): claimed \(String(describing: system.metric("pj", "dedup_events_claimed_total")))")
        }
        XCTAssertTrue(waitUntil(5) { system.metric("pj", "dedup_insert_statements_total") == 3 })
        usleep(200_000)
        XCTAssertEqual(system.metric("pj", "dedup_insert_statements_total"), 3, "batches 3-6 wait while two inserts are out")
        lock.release()

        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "pj-")) == 240 },
                      "rows: \(String(describing: try? system.rowCount(prefix: "pj-"))): \(listener.logTail())")
        XCTAssertTrue(waitUntil(10) { system.metric("pj", "dedup_events_dead_lettered_total") == 1 })
        XCTAssertEqual(try system.postgres.psql("SELECT encode(event_id, 'escape') FROM dead_letters"), "poison\\000140")
        XCTAssertTrue(listener.logText.contains("an insert of 4 batches together (160 events) failed"), listener.logTail(20))
        XCTAssertTrue(waitUntil(10) { system.metric("pj", "dedup_stream_watermark_seq") == 241 })
        XCTAssertEqual(system.metric("pj", "dedup_events_processed_total"), 241)
        XCTAssertEqual(system.metric("pj", "dedup_events_stored_total"), 240)
        XCTAssertEqual(try system.postgres.psql("SELECT count(*) FROM events WHERE event_id LIKE 'pj-%'"), "240")
    }

    /// A row a trigger refuses (an exception raised for one id) may pass once the trigger
    /// changes, so it is retried, never dead-lettered; but after three refusals its part
    /// is split until it stands alone, so every other event of its batch is stored. Once
    /// the trigger is gone it is stored too, exactly once.
    func testARowATriggerRefusesHoldsBackOnlyItself() throws {
        try checkOneRowHeldBackAlone(prefix: "tg", listenerEnv: [:],
                                     trigger: "RAISE EXCEPTION 'tg-poison is not welcome'")
    }

    /// A row whose insert outlasts the listener's `statement_timeout` (a trigger slow for
    /// it) is cancelled each time: like a trigger's refusal, it is split off and waits
    /// behind the rest of its batch instead of holding the whole batch back for ever.
    func testARowSlowerThanTheStatementTimeoutHoldsBackOnlyItself() throws {
        let timeout = PostgresTestServer.shared.url + "?options=-c%20statement_timeout%3D500"
        let log = try checkOneRowHeldBackAlone(prefix: "st", listenerEnv: ["DATABASE_URL": timeout], trigger: "PERFORM pg_sleep(2)")
        XCTAssertTrue(log.contains("57014"), "not cancelled by the statement timeout")
    }

    /// One batch of 99 good events and `<prefix>-poison` in the middle, with a trigger that
    /// runs `trigger` for that row: the 99 are stored, the row waits alone (never
    /// dead-lettered, the stall on /health), and once the trigger is dropped it is stored
    /// and everything is processed once. Returns the listener's log.
    @discardableResult
    private func checkOneRowHeldBackAlone(prefix: String, listenerEnv: [String: String], trigger: String) throws -> String {
        let system = try SystemHarness()
        let function = "hold_\(prefix)_poison"
        defer { _ = try? system.postgres.psql("DROP TRIGGER IF EXISTS \(function) ON events; DROP FUNCTION IF EXISTS \(function)()") }
        try system.startProducer()
        let listener = try system.startListener(prefix, ["LOCK_TTL_MS": "1000"].merging(listenerEnv) { $1 })
        try system.publish("{\"event_id\":\"\(prefix)-warm\"}")
        XCTAssertTrue(waitUntil(10) { (try? system.rowCount(prefix: prefix + "-")) == 1 })
        _ = try system.postgres.psql("""
            CREATE FUNCTION \(function)() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.event_id = '\(prefix)-poison' THEN \(trigger); END IF; RETURN NEW; END $$;
            CREATE TRIGGER \(function) BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION \(function)()
            """)
        // One request, so one batch: 99 good events with the held one in the middle.
        let ids = (1...49).map { "\(prefix)-\($0)" } + ["\(prefix)-poison"] + (50...99).map { "\(prefix)-\($0)" }
        try system.publish("[" + ids.map { "{\"event_id\":\"\($0)\"}" }.joined(separator: ",") + "]")
        XCTAssertTrue(waitUntil(60) { (try? system.rowCount(prefix: prefix + "-")) == 100 },
                      "rows: \(String(describing: try? system.rowCount(prefix: prefix + "-"))): \(listener.logTail())")
        XCTAssertEqual(try system.postgres.psql("SELECT count(*) FROM events WHERE event_id = '\(prefix)-poison'"), "0")
        XCTAssertEqual(try system.postgres.psql("SELECT count(*) FROM dead_letters"), "0", "a refusal for now is not the data's")
        XCTAssertTrue(listener.logText.contains("trying each half on its own"), listener.logTail(20))
        XCTAssertGreaterThanOrEqual(system.metric(prefix, "dedup_store_failures_total") ?? 0, 3)
        XCTAssertTrue(waitUntil(10) { (try? httpGet(port: listener.port, path: "/health").status) == 503 }, "the stuck row is not reported")

        _ = try system.postgres.psql("DROP TRIGGER \(function) ON events")
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: prefix + "-")) == 101 }, listener.logTail())
        XCTAssertTrue(waitUntil(10) { system.metric(prefix, "dedup_stream_watermark_seq") == 101 })
        XCTAssertEqual(system.metric(prefix, "dedup_events_processed_total"), 101)
        XCTAssertEqual(try system.postgres.psql("SELECT count(*) FROM dead_letters"), "0")
        XCTAssertTrue(waitUntil(10) { (try? httpGet(port: listener.port, path: "/health").status) == 200 })
        return listener.logText
    }

    /// Each kind of value PostgreSQL cannot hold, alone among good events.
    func testEachKindOfUnstorableEventIsDeadLetteredAlone() throws {
        let system = try SystemHarness()
        let poison = [
            "{\"event_id\":\"nul\\u0000id\",\"payload\":1}",
            "{\"event_id\":\"nul-payload\",\"payload\":\"a\\u0000b\"}",
            "{\"event_id\":\"huge-number\",\"payload\":1e131072}",
            "{\"event_id\":\"tiny-number\",\"payload\":{\"x\":[1e-16384]}}",
            "{\"event_id\":\"lone-surrogate\",\"payload\":\"\\ud800\"}",
            "{\"event_id\":\"surrogate-id-\\udc00\",\"payload\":2}",
        ]
        var lines: [(UInt64, String)] = []
        var seq: UInt64 = 0
        for line in poison {
            seq += 1
            lines.append(goodLine(seq, "pk-"))
            seq += 1
            lines.append((seq, "{\"seq\":\(seq)," + line.dropFirst()))
        }
        seq += 1
        lines.append(goodLine(seq, "pk-"))
        let fake = try FakeProducer(port: system.wsPort, lines: lines)
        defer { fake.shutdown() }
        let listener = try system.startListener("pk")
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "pk-")) == poison.count + 1 })
        XCTAssertTrue(waitUntil(10) { system.metric("pk", "dedup_events_dead_lettered_total") == poison.count },
                      "dead letters: \(String(describing: try? system.postgres.psql("SELECT event_id, error FROM dead_letters"))); \(listener.logTail())")
        let (status, body) = try httpGet(port: listener.port, path: "/api/dead-letters")
        XCTAssertEqual(status, 200)
        let letters = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]])
        XCTAssertEqual(Set(letters.compactMap { $0["event_id"] as? String }),
                       ["nul\u{0}id", "nul-payload", "huge-number", "tiny-number", "lone-surrogate", "surrogate-id-\u{FFFD}\u{FFFD}\u{FFFD}"])
        XCTAssertEqual(try system.postgres.psql("SELECT encode(event_id, 'hex') FROM dead_letters WHERE encode(event_id, 'escape') LIKE 'surrogate-id-%'"),
                       Array("surrogate-id-".utf8).map { String(format: "%02x", $0) }.joined() + "edb080")
        XCTAssertEqual(try system.postgres.psql("SELECT count(*) FROM events WHERE event_id LIKE 'surrogate-id-%'"), "0")
        let huge = try XCTUnwrap(letters.first { $0["event_id"] as? String == "huge-number" })
        XCTAssertEqual(huge["payload"] as? String, "1e131072")
        XCTAssertEqual(huge["failed_by"] as? String, "pk")
        XCTAssertTrue((huge["error"] as? String ?? "").contains("22003"), "\(huge)")
        XCTAssertTrue(waitUntil(10) { system.metric("pk", "dedup_stream_watermark_seq") == Int(seq) })
        XCTAssertEqual(try httpGet(port: listener.port, path: "/health").status, 200)
    }
}
