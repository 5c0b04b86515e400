import Foundation
import TestSupport
import XCTest

/// Reads never slow writes: the API reads on a connection of its own, pages by an index
/// on seq, and a burst of readers during a flood leaves every event stored.
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
        let summary = try system.flood(count: 20_000, prefix: "rd-", seed: 72)
        let expected = (summary["distinct"] as! Int) + 5_000
        XCTAssertTrue(waitUntil(60) { (try? system.rowCount(prefix: "rd-")) == expected })
        failures.finish()
        group.wait()
        XCTAssertEqual(failures.list, [])
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
