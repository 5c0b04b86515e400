import Foundation
import TestSupport
import XCTest

/// The listener's HTTP API as docs/interface.md describes it.
final class APITests: XCTestCase {
    func testEventsAreListedNewestFirstAndPagedAndFoundByID() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let listener = try system.startListener("api")
        try system.publish("[" + (1...5).map { "{\"event_id\":\"api-\($0)\",\"payload\":{\"n\":\($0)}}" }.joined(separator: ",") + "]")
        XCTAssertTrue(waitUntil(10) { (try? system.rowCount(prefix: "api-")) == 5 })
        let (status, body) = try httpGet(port: listener.port, path: "/api/events?limit=2")
        XCTAssertEqual(status, 200)
        let page = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]])
        XCTAssertEqual(page.map { $0["event_id"] as? String }, ["api-5", "api-4"])
        XCTAssertEqual(page.first?["processed_by"] as? String, "api")
        XCTAssertEqual((page.first?["payload"] as? [String: Any])?["n"] as? Int, 5)
        XCTAssertNotNil(page.first?["processed_at"] as? String)
        let next = try httpGet(port: listener.port, path: "/api/events?limit=2&before_seq=4")
        let second = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(next.body.utf8)) as? [[String: Any]])
        XCTAssertEqual(second.map { $0["event_id"] as? String }, ["api-3", "api-2"])
        let one = try httpGet(port: listener.port, path: "/api/events/api-3")
        XCTAssertEqual(one.status, 200)
        XCTAssertEqual((try JSONSerialization.jsonObject(with: Data(one.body.utf8)) as? [String: Any])?["seq"] as? Int, 3)
        XCTAssertEqual(try httpGet(port: listener.port, path: "/api/events/nope").status, 404)
        for bad in ["/api/events?limit=0", "/api/events?limit=1001", "/api/events?limit=x", "/api/events?before_seq=-1"] {
            let answer = try httpGet(port: listener.port, path: bad)
            XCTAssertEqual(answer.status, 400, bad)
            XCTAssertNotNil((try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any])?["error"], bad)
        }
    }

    func testHealthNamesTheDependencyThatIsDown() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let listener = try system.startListener("health")
        XCTAssertEqual(try httpGet(port: listener.port, path: "/health").status, 200)
        system.producer!.kill()
        XCTAssertTrue(waitUntil(10) { (try? httpGet(port: listener.port, path: "/health").status) == 503 })
        let body = try httpGet(port: listener.port, path: "/health").body
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        XCTAssertEqual(json["down"] as? [String], ["producer"])
        try system.startProducer()
        XCTAssertTrue(waitUntil(15) { (try? httpGet(port: listener.port, path: "/health").status) == 200 })
    }

    func testMetricsCarryTheContractsCountersWithTheInstanceLabel() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let listener = try system.startListener("metrics-1")
        let text = try httpGet(port: listener.port, path: "/metrics").body
        for counter in ["dedup_events_received_total", "dedup_events_claimed_total", "dedup_events_duplicate_total",
                        "dedup_events_processed_total", "dedup_events_stored_total", "dedup_events_recovered_total",
                        "dedup_events_dead_lettered_total"] {
            XCTAssertTrue(text.contains("# TYPE \(counter) counter"), counter)
            XCTAssertTrue(text.contains("\(counter){instance=\"metrics-1\"} "), counter)
        }
    }

    func testStoredEventsFillThePublishToStoredHistogram() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let listener = try system.startListener("latency-1")
        try system.publish("[" + (1...20).map { "{\"event_id\":\"lat-\($0)\"}" }.joined(separator: ",") + "]")
        XCTAssertTrue(waitUntil(10) { (try? system.rowCount(prefix: "lat-")) == 20 })
        XCTAssertTrue(waitUntil(5) { system.metric("latency-1", "dedup_publish_to_stored_seconds_count") == 20 })
        let text = try httpGet(port: listener.port, path: "/metrics").body
        XCTAssertTrue(text.contains("# TYPE dedup_publish_to_stored_seconds histogram"))
        XCTAssertTrue(text.contains("dedup_publish_to_stored_seconds_bucket{instance=\"latency-1\",le=\"+Inf\"} 20"), text)
        XCTAssertTrue(text.contains("dedup_publish_to_stored_seconds_bucket{instance=\"latency-1\",le=\"30.0\"} 20"), text)
        XCTAssertTrue(text.contains("dedup_stream_lag_events{instance=\"latency-1\"} "), text)
    }

    func testSIGTERMFinishesInFlightWorkAndExitsZero() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let listener = try system.startListener("graceful", ["PROCESS_DELAY_MS": "300"])
        try system.publish("[" + (1...50).map { "{\"event_id\":\"term-\($0)\"}" }.joined(separator: ",") + "]")
        XCTAssertTrue(waitUntil(10) { (system.metric("graceful", "dedup_events_claimed_total") ?? 0) == 50 })
        XCTAssertEqual(listener.terminate(), 0)
        XCTAssertEqual(try system.rowCount(prefix: "term-"), 50)
    }
}
