import Foundation
import TestSupport
import XCTest

/// A listener marks events done once PostgreSQL confirms their rows, so it must know when
/// PostgreSQL confirms rows that a crash could still lose (docs/operations.md, "PostgreSQL
/// must commit durably").
final class DurableCommitTests: XCTestCase {
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
}
