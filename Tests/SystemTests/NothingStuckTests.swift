import Foundation
import Glibc
import TestSupport
import XCTest

/// Nothing accepted is ever stuck or lost: group resume, the shutdown deadline, memory
/// bounded by bytes, health that tells the truth, and progress trusted only as proof.
final class NothingStuckTests: XCTestCase {
    /// A listener with no watermark of its own (a new INSTANCE_ID, as the default host
    /// name + pid gives after every restart) starts from the highest one any listener
    /// saved: what was published while every listener was down is delivered.
    func testAListenerWithANewInstanceIDResumesFromTheGroupsWatermark() throws {
        let system = try SystemHarness()
        try system.startProducer()
        try system.startListener("before-1")
        let first = try system.flood(count: 3_000, prefix: "gr-a-", seed: 21)
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "gr-a-")) == first["distinct"] as? Int })
        XCTAssertTrue(waitUntil(10) {
            (try? system.postgres.psql("SELECT seq FROM listener_watermarks WHERE instance_id = 'before-1'")) == "3000"
        })
        system.listeners["before-1"]!.kill()
        let missed = try system.flood(count: 3_000, prefix: "gr-b-", seed: 22)
        try system.startListener("after-2")
        let expected = (first["distinct"] as! Int) + (missed["distinct"] as! Int)
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "gr-")) == expected },
                      "rows: \(String(describing: try? system.rowCount(prefix: "gr-"))) of \(expected)")
        // It started after the group's watermark, not from the beginning, not live only.
        XCTAssertEqual(system.metric("after-2", "dedup_events_received_total"), 3_000)
        XCTAssertEqual(system.metric("after-2", "dedup_stream_gap_events_total"), 0)
    }

    /// SIGTERM while PostgreSQL is down: the listener releases its claims and exits 0
    /// within SHUTDOWN_TIMEOUT_MS and a second; another listener stores the events.
    func testSIGTERMWithPostgresDownExitsWithinTheShutdownDeadline() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let leaving = try system.startListener("leaving", ["SHUTDOWN_TIMEOUT_MS": "2000", "PROCESS_DELAY_MS": "300"])
        try system.flood(count: 500, prefix: "sd-", batch: 50)
        XCTAssertTrue(waitUntil(10) { (system.metric("leaving", "dedup_events_claimed_total") ?? 0) > 0 })
        system.postgres.stop()
        defer { try? system.postgres.start() }
        try system.flood(count: 500, prefix: "sd-late-", batch: 50, seed: 2)
        let started = Date()
        XCTAssertEqual(leaving.terminate(grace: 10), 0, leaving.logTail())
        XCTAssertLessThan(Date().timeIntervalSince(started), 3.0, leaving.logTail())
        try system.postgres.start()
        // Released claims are taken over at once by the next listener.
        try system.startListener("staying", ["LOCK_TTL_MS": "30000"])
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "sd-")) == 1_000 },
                      "rows: \(String(describing: try? system.rowCount(prefix: "sd-")))")
    }

    /// Memory is bounded by bytes held, not by a count of events: 2,000 events of
    /// 400 KiB while PostgreSQL is stopped keep the listener under
    /// MAX_IN_FLIGHT_BYTES + 64 MiB, and all of them are stored once it is back.
    func testMemoryIsBoundedByBytesInFlight() throws {
        let system = try SystemHarness()
        try system.startProducer(["MAX_BODY_BYTES": "1048576", "REPLAY_CAPACITY": "4096"])
        let limit = 32 << 20
        let listener = try system.startListener("bounded", ["MAX_IN_FLIGHT_BYTES": "\(limit)"])
        system.postgres.stop()
        defer { try? system.postgres.start() }
        let payload = String(repeating: "x", count: 400 << 10)
        var peak = 0
        for i in 0..<1_000 {
            try system.publish("[{\"event_id\":\"mem-\(2 * i)\",\"payload\":\"\(payload)\"},{\"event_id\":\"mem-\(2 * i + 1)\",\"payload\":\"\(payload)\"}]")
            if i % 50 == 0 { peak = max(peak, rss(listener.pid)) }
        }
        usleep(500_000)
        peak = max(peak, rss(listener.pid), highWater(listener.pid))
        XCTAssertLessThan(peak, limit + (64 << 20), "listener RSS \(peak >> 20) MiB")
        try system.postgres.start()
        XCTAssertTrue(waitUntil(120) { (try? system.rowCount(prefix: "mem-")) == 2_000 },
                      "rows: \(String(describing: try? system.rowCount(prefix: "mem-"))); \(listener.logTail())")
        XCTAssertLessThan(highWater(listener.pid), limit + (64 << 20) + (64 << 20), "peak while catching up")
    }

    /// /health says "stalled" (503) while the oldest unfinished event has waited longer
    /// than LOCK_TTL_MS, and 200 again once work moves.
    func testHealthSaysStalledWhenTheOldestEventWaitedLongerThanAClaimLives() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let listener = try system.startListener("slowpoke", ["LOCK_TTL_MS": "500", "DEDUP_WINDOW_MS": "60000",
                                                            "PROCESS_DELAY_MS": "2500"])
        try system.publish("{\"event_id\":\"st-1\"}")
        XCTAssertTrue(waitUntil(5) {
            guard let (status, body) = try? httpGet(port: listener.port, path: "/health") else { return false }
            return status == 503 && body.contains("\"stalled\"")
        })
        XCTAssertTrue(waitUntil(10) { (try? httpGet(port: listener.port, path: "/health").status) == 200 })
        XCTAssertEqual(try system.rowCount(prefix: "st-"), 1)
    }

    /// O claims events and dies; W recovers them and dies before storing; V, which has
    /// seen W's live progress run far ahead, must still store every one of them.
    func testEventsRecoveredByAListenerThatDiesInTurnAreStillStored() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let slow = ["PROCESS_DELAY_MS": "2000", "LOCK_TTL_MS": "800"]
        for id in ["o", "w", "v"] { try system.startListener(id, slow) }
        // Live traffic first, so every listener has read the others' live marks far ahead.
        try system.flood(count: 3_000, prefix: "rc-warm-", seed: 31)
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "rc-warm-")) == 3_000 })
        let warmClaims = system.metric("o", "dedup_events_claimed_total") ?? 0
        // O claims the next events alone (W and V paused), and is killed while it holds
        // claims it has not stored (its processing takes 2 s).
        for id in ["w", "v"] { system.listeners[id]!.pause() }
        try system.flood(count: 600, prefix: "rc-", batch: 20, seed: 32)
        XCTAssertTrue(waitUntil(10) { (system.metric("o", "dedup_events_claimed_total") ?? 0) > warmClaims })
        system.listeners["o"]!.kill()
        for id in ["w", "v"] { system.listeners[id]!.resume() }
        // Whoever recovers first dies before its processing delay ends.
        var victim: String?
        XCTAssertTrue(waitUntil(20) {
            victim = ["w", "v"].first { (system.metric($0, "dedup_events_recovered_total") ?? 0) > 0 }
            return victim != nil
        })
        if let victim { system.listeners[victim]!.kill() }
        XCTAssertTrue(waitUntil(60) { (try? system.rowCount(prefix: "rc-")) == 3_600 },
                      "rows: \(String(describing: try? system.rowCount(prefix: "rc-"))) of 3600")
    }

    private func rss(_ pid: pid_t) -> Int { statusField(pid, "VmRSS:") }
    private func highWater(_ pid: pid_t) -> Int { statusField(pid, "VmHWM:") }

    private func statusField(_ pid: pid_t, _ name: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name) }) else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) << 10
    }
}

/// Resume per stream: a listener resumes its producer's stream where it left it, and
/// notices when the producer's log was replaced.
final class StreamResumeTests: XCTestCase {
    func testAListenerNoticesAReplacedLogAndStoresTheNewStreamFromItsStart() throws {
        let system = try SystemHarness()
        let firstLog = TestServers.makeTempDir("first-log")
        try system.startProducer(["DATA_DIR": firstLog])
        try system.startListener("follower")
        let first = try system.flood(count: 1_000, prefix: "rl-a-", seed: 51)
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "rl-a-")) == first["distinct"] as? Int })
        XCTAssertTrue(waitUntil(10) { system.metric("follower", "dedup_stream_watermark_seq") == 1_000 })
        // The same log again: seqs continue, nothing is replayed, nothing replaced.
        system.producer!.kill()
        try system.startProducer(["DATA_DIR": firstLog])
        let second = try system.flood(count: 500, prefix: "rl-b-", seed: 52)
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "rl-b-")) == second["distinct"] as? Int })
        XCTAssertEqual(system.metric("follower", "dedup_stream_replaced_total"), 0)
        XCTAssertEqual(system.metric("follower", "dedup_events_received_total"), 1_500)
        // A new log: a new stream whose seqs start at 1 again, below the watermark.
        system.producer!.kill()
        try system.startProducer(["DATA_DIR": TestServers.makeTempDir("second-log")])
        let third = try system.flood(count: 700, prefix: "rl-c-", seed: 53)
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "rl-c-")) == third["distinct"] as? Int },
                      "rows: \(String(describing: try? system.rowCount(prefix: "rl-c-"))): \(system.listeners["follower"]!.logTail())")
        XCTAssertEqual(system.metric("follower", "dedup_stream_replaced_total"), 1)
        XCTAssertTrue(waitUntil(10) { system.metric("follower", "dedup_stream_watermark_seq") == 700 })
        // Its watermark is saved a few times a second, per stream.
        XCTAssertTrue(waitUntil(10) {
            (try? system.postgres.psql("SELECT count(DISTINCT stream) FROM listener_watermarks WHERE instance_id = 'follower'")) == "2"
        })
    }
}
