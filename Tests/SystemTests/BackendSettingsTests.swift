import Foundation
import TestSupport
import XCTest

/// Settings of PostgreSQL and Redis that quietly weaken the guarantees, which a listener
/// reads at every connect and reports (docs/operations.md): PostgreSQL confirming rows a
/// crash could still lose, Redis evicting claims and done markers.
final class BackendSettingsTests: XCTestCase {
    func testAListenerWhosePostgreSQLSessionCommitsAsynchronouslySaysSoAndStillStores() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let asynchronous = try system.startListener("commits-async", ["DATABASE_URL": system.postgres.url + "?options=-c%20synchronous_commit%3Doff"])
        _ = try system.startListener("commits-durable")
        XCTAssertTrue(waitUntil(10) { system.metric("commits-async", "dedup_postgres_durable_commits") == 0 },
                      asynchronous.logTail())
        XCTAssertEqual(system.metric("commits-durable", "dedup_postgres_durable_commits"), 1)
        XCTAssertTrue(asynchronous.logText.contains("synchronous_commit=off"), asynchronous.logTail())
        // A warning, not a refusal: an operator may mean it.
        try system.publish("[" + (1...20).map { "{\"event_id\":\"commits-\($0)\",\"payload\":{}}" }.joined(separator: ",") + "]")
        XCTAssertTrue(waitUntil(15) { (try? system.rowCount(prefix: "commits-")) == 20 })
    }

    func testAListenerOnARedisThatMayEvictItsKeysSaysSoAndStillStoresOnce() throws {
        let system = try SystemHarness()
        let evicting = try RedisTestServer(extraArguments: ["--maxmemory", "256mb", "--maxmemory-policy", "volatile-lru"])
        defer { evicting.stop() }
        try system.startProducer()
        let listener = try system.startListener("evicting", ["REDIS_URL": "redis://127.0.0.1:\(evicting.port)"])
        _ = try system.startListener("keeping")
        XCTAssertTrue(waitUntil(10) { system.metric("evicting", "dedup_redis_may_evict_keys") == 1 }, listener.logTail())
        XCTAssertEqual(system.metric("keeping", "dedup_redis_may_evict_keys"), 0)
        XCTAssertTrue(listener.logText.contains("maxmemory-policy volatile-lru"), listener.logTail())
        try system.publish("[" + (1...20).map { "{\"event_id\":\"evicting-\($0)\",\"payload\":{}}" }.joined(separator: ",") + "]")
        XCTAssertTrue(waitUntil(15) { (try? system.rowCount(prefix: "evicting-")) == 20 })
    }
}
