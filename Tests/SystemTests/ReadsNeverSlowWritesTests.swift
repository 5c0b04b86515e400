import Foundation
import TestSupport
import XCTest

/// Reads never slow writes: the API reads on a connection of its own, pages by an index
/// on seq, one read at a time under a budget (ReadBudgetTests), and a burst of readers
/// during a flood leaves every event stored.
final class ReadsNeverSlowWritesTests: XCTestCase {
    func testTwentyReadersDuringAFloodLeaveEveryEventStored() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let apiPort = try system.startListener("reader").port
        try system.flood(count: 5_000, prefix: "rd-warm-", seed: 71)
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "rd-warm-")) == 5_000 })
        let stop = Date().addingTimeInterval(60)
        let group = DispatchGroup()
        let failures = ReadFailures()
        for _ in 0..<20 {
            DispatchQueue.global().async(group: group) {
                while Date() < stop {
                    guard let (status, _) = try? httpGet(port: apiPort, path: "/api/events?limit=1000") else {
                        failures.add("no answer")
                        return
                    }
                    if status != 200 { failures.add("status \(status)") }
                    if failures.done { return }
                }
            }
        }
        let busyBefore = system.metric("reader", "dedup_api_read_busy_milliseconds_total") ?? 0
        let floodStarted = Date()
        // Paced to last about 4 s: the share is judged over many reads, not the one or two
        // in flight when the flood starts.
        let summary = try system.flood(count: 40_000, prefix: "rd-", rate: 10_000, seed: 72)
        let expected = (summary["distinct"] as! Int) + 5_000
        XCTAssertTrue(waitUntil(60) { (try? system.rowCount(prefix: "rd-")) == expected })
        // While events flowed, reads kept to their share of the time (10 %; loosely here: under 20 %).
        let busy = Double((system.metric("reader", "dedup_api_read_busy_milliseconds_total") ?? 0) - busyBefore)
        let wall = Date().timeIntervalSince(floodStarted) * 1000
        XCTAssertLessThan(busy / wall, 0.2, "reads busy \(busy) ms of \(wall) ms")
        XCTAssertGreaterThan(system.metric("reader", "dedup_api_reads_delayed_total") ?? 0, 0)
        failures.finish()
        group.wait()
        XCTAssertEqual(failures.list, [])
        // The readers took turns (one read at a time) and none was refused: 20 fit the wait.
        XCTAssertGreaterThan(system.metric("reader", "dedup_api_reads_queued_total") ?? 0, 0)
        XCTAssertEqual(system.metric("reader", "dedup_api_reads_refused_total"), 0)
        let plan = try system.postgres.psql("EXPLAIN SELECT seq FROM events ORDER BY seq DESC, processed_at DESC LIMIT 1000")
        XCTAssertTrue(plan.contains("events_seq"), plan)
    }
}

/// What the readers saw go wrong, shared across their threads.
private final class ReadFailures: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    private var stopped = false

    func add(_ failure: String) { lock.withLock { items.append(failure) } }
    func finish() { lock.withLock { stopped = true } }
    var done: Bool { lock.withLock { stopped } }
    var list: [String] { lock.withLock { items } }
}

/// Answers are bounded: a page of large payloads stops early instead of growing the
/// listener's memory, and paging on with before_seq reaches every event.
final class BoundedPagesTests: XCTestCase {
    func testAPageOfLargePayloadsStopsEarlyAndPagingReachesEveryEvent() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let listener = try system.startListener("pager")
        _ = try system.postgres.psql("""
            INSERT INTO events (event_id, seq, payload, processed_by)
            SELECT 'big-' || i, i, to_jsonb(repeat('x', 1000000)), 'seed' FROM generate_series(1, 30) i
            """)
        var seen = 0
        var before: Int?
        var pages = 0
        while seen < 30 {
            let path = "/api/events?limit=1000" + (before.map { "&before_seq=\($0)" } ?? "")
            let (status, body) = try httpGet(port: listener.port, path: path)
            XCTAssertEqual(status, 200)
            XCTAssertLessThan(body.utf8.count, 10 << 20)
            let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]])
            XCTAssertFalse(rows.isEmpty)
            seen += rows.count
            before = rows.last?["seq"] as? Int
            pages += 1
            XCTAssertLessThan(pages, 10)
        }
        XCTAssertEqual(seen, 30)
        XCTAssertGreaterThan(pages, 1)
    }
}
