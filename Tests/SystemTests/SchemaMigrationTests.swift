import Foundation
import TestSupport
import XCTest

/// The listener brings the database to its schema version at start-up: an older layout
/// is migrated (and says so in the log), and listeners starting together take turns.
final class SchemaMigrationTests: XCTestCase {
    func testAnOlderLayoutIsMigratedAndLogged() throws {
        let system = try SystemHarness()
        _ = try system.postgres.psql("""
            DROP TABLE IF EXISTS events, dedup_schema, listener_offsets;
            CREATE TABLE events (event_id TEXT PRIMARY KEY, seq BIGINT, payload JSONB, processed_by TEXT NOT NULL,
                                 processed_at TIMESTAMPTZ NOT NULL DEFAULT now());
            INSERT INTO events (event_id, seq, payload, processed_by) VALUES ('mg-old', 1, '{}', 'old');
            CREATE TABLE listener_offsets (instance_id TEXT PRIMARY KEY, seq BIGINT NOT NULL,
                                           updated_at TIMESTAMPTZ NOT NULL DEFAULT now());
            INSERT INTO listener_offsets (instance_id, seq) VALUES ('mg', 0)
            """)
        try system.startProducer()
        let listener = try system.startListener("mg", ["LOG_LEVEL": "info"])
        XCTAssertEqual(try system.postgres.psql("""
            SELECT c.collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation
            WHERE a.attrelid = 'events'::regclass AND a.attname = 'event_id'
            """), "C")
        XCTAssertEqual(try system.postgres.psql("SELECT to_regclass('listener_offsets') IS NULL"), "t")
        XCTAssertEqual(try system.postgres.psql("SELECT seq FROM listener_watermarks WHERE instance_id = 'mg'"), "0")
        XCTAssertEqual(try system.postgres.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM dedup_schema"), "1,2,3,4")
        XCTAssertTrue(listener.logText.contains("schema: applied migration 3 of 4"), listener.logTail())
        try system.publish("{\"event_id\":\"mg-new\"}")
        XCTAssertTrue(waitUntil(10) { (try? system.rowCount(prefix: "mg-")) == 2 })
    }

    func testListenersStartingTogetherOnAnEmptyDatabaseAllComeUp() throws {
        let system = try SystemHarness()
        _ = try system.postgres.psql("DROP TABLE IF EXISTS events, dead_letters, listener_watermarks, dedup_schema")
        try system.startProducer()
        var processes: [ServiceProcess] = []
        for i in 0..<4 {
            let port = TestServers.freePort()
            processes.append(try ServiceProcess(binary: productPath("listener"), log: system.dir + "/together-\(i).log",
                                                environment: ["INSTANCE_ID": "together-\(i)", "PORT": "\(port)", "HOST": "127.0.0.1",
                                                              "PRODUCER_URL": "ws://127.0.0.1:\(system.wsPort)/",
                                                              "REDIS_URL": system.redis.url, "DATABASE_URL": system.postgres.url,
                                                              "LOG_LEVEL": "warning"], port: port))
        }
        defer { for process in processes { process.kill() } }
        for process in processes {
            XCTAssertTrue(waitUntil(20) { (try? httpGet(port: process.port, path: "/health").status) == 200 }, process.logText)
            XCTAssertFalse(process.logText.contains("cannot read the stored watermarks"), process.logText)
        }
        try system.publish("{\"event_id\":\"tg-1\"}")
        XCTAssertTrue(waitUntil(10) { (try? system.rowCount(prefix: "tg-")) == 1 })
    }
}
