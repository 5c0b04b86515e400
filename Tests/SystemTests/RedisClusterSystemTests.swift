import Foundation
import Glibc
import TestSupport
import XCTest

/// The guarantees with claims in a real 3-master Redis Cluster (with a password): keys
/// spread over every master, slots migrated while events flow, and a single URL that
/// names one cluster node.
final class RedisClusterSystemTests: XCTestCase {
    private static let cluster: RedisClusterTestServer = {
        do { return try RedisClusterTestServer(password: "cluster-secret") } catch { fatalError("\(error)") }
    }()

    private func cleanCluster() throws -> RedisClusterTestServer {
        let cluster = Self.cluster
        for node in 0..<3 { try cluster.cli(node, "FLUSHALL") }
        return cluster
    }

    private func startSharing(_ system: SystemHarness, _ ids: [String], redisURL: String) throws {
        for id in ids { try system.startListener(id, ["REDIS_URL": redisURL, "LOCK_TTL_MS": "2000"]) }
        XCTAssertTrue(waitUntil(20) { ids.allSatisfy { system.metric($0, "dedup_listeners_sharing") == ids.count } },
                      "sharing: \(ids.map { system.metric($0, "dedup_listeners_sharing") ?? -1 })")
    }

    private func checkStoredOnce(_ system: SystemHarness, prefix: String, distinct: Int) throws {
        XCTAssertTrue(waitUntil(60) { (try? system.rowCount(prefix: prefix)) == distinct },
                      "rows: \(String(describing: try? system.rowCount(prefix: prefix))) of \(distinct)")
        XCTAssertTrue(waitUntil(20) { system.sum("dedup_events_in_flight") == 0 }, "events still in flight")
        XCTAssertEqual(try system.postgres.psql("SELECT count(*) FROM dead_letters"), "0")
    }

    func testThreeListenersOnAClusterStoreEachDistinctEventExactlyOnce() throws {
        let cluster = try cleanCluster()
        let system = try SystemHarness()
        try system.startProducer()
        try startSharing(system, ["ca", "cb", "cc"], redisURL: cluster.seedsURL)
        let summary = try system.flood(count: 20_000, duplicates: 0.2, prefix: "rc-", seed: 31)
        let distinct = try XCTUnwrap(summary["distinct"] as? Int)
        try checkStoredOnce(system, prefix: "rc-", distinct: distinct)
        XCTAssertTrue(waitUntil(10) { system.sum("dedup_events_processed_total") == distinct },
                      "processed \(system.sum("dedup_events_processed_total")) of \(distinct)")
        for node in 0..<3 {
            XCTAssertGreaterThan(Int(try cluster.cli(node, "DBSIZE")) ?? 0, 1_000, "node \(node) holds no share of the keys")
        }
    }

    func testSlotsMigratedMidStreamLoseNothing() throws {
        let cluster = try cleanCluster()
        let system = try SystemHarness()
        try system.startProducer()
        try startSharing(system, ["ma", "mb"], redisURL: cluster.seedsURL)
        let flood = try system.startFlood(count: 45_000, duplicates: 0.1, prefix: "rm-", rate: 3_000, seed: 32)
        // The slot of the membership keys, then slots of event keys, each to another master,
        // as many as finish while the flood runs (a loaded machine migrates slower).
        var slots = [try cluster.keySlot("{dedup}")]
        for i in stride(from: 700, to: 16_384, by: 1_500) { slots.append(i) }
        var migratedMidStream = 0
        for (n, slot) in slots.enumerated() where flood.process.isRunning {
            let owner = try cluster.owner(ofSlot: slot)
            try cluster.migrateSlot(slot, to: (owner + 1 + n % 2) % 3)
            if flood.process.isRunning { migratedMidStream += 1 }
        }
        XCTAssertGreaterThanOrEqual(migratedMidStream, 4, "slots migrated while the flood ran, the {dedup} slot first")
        let summary = try flood.finish()
        try checkStoredOnce(system, prefix: "rm-", distinct: try XCTUnwrap(summary["distinct"] as? Int))
        // The migrations show in /metrics: the redirections followed, the maps read again.
        XCTAssertTrue(waitUntil(5) { system.sum("dedup_redis_redirections_total") > 0 },
                      "redirections: \(system.sum("dedup_redis_redirections_total"))")
        XCTAssertGreaterThan(system.sum("dedup_redis_slot_map_updates_total"), 2, "one map each at start, then after migrations")
        try cluster.waitUntilHealthy()
    }

    func testASingleURLNamingAClusterNodeUsesTheCluster() throws {
        let cluster = try cleanCluster()
        let system = try SystemHarness()
        try system.startProducer()
        let listener = try system.startListener("one", ["REDIS_URL": "redis://:cluster-secret@127.0.0.1:\(cluster.ports[1])",
                                                        "LOG_LEVEL": "info"])
        try system.flood(count: 5_000, prefix: "rs-", seed: 33)
        try checkStoredOnce(system, prefix: "rs-", distinct: 5_000)
        XCTAssertTrue(listener.logText.contains("names a Redis Cluster node"), listener.logTail())
        XCTAssertFalse(listener.logText.contains("cluster-secret"), "the password appeared in the log")
    }
}
