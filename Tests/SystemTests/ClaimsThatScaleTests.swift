import Foundation
import Glibc
import TestSupport
import XCTest

/// Claims that scale: one listener (the oldest) claims while the others hold only seqs,
/// so the Redis work per distinct event stays flat as listeners are added, and every
/// guarantee holds while the members change.
final class ClaimsThatScaleTests: XCTestCase {
    private func commandsProcessed(_ system: SystemHarness) throws -> Int {
        let info = try system.redis.cli("INFO", "stats")
        let line = try XCTUnwrap(info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("total_commands_processed:") })
        return try XCTUnwrap(Int(line.dropFirst("total_commands_processed:".count).trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    /// Starts `ids` and waits until each sees all of them.
    private func startSharing(_ system: SystemHarness, _ ids: [String], _ env: [String: String] = [:]) throws {
        for id in ids { try system.startListener(id, env) }
        XCTAssertTrue(waitUntil(20) { ids.allSatisfy { system.metric($0, "dedup_listeners_sharing") == system.listeners.count } },
                      "sharing: \(ids.map { system.metric($0, "dedup_listeners_sharing") ?? -1 })")
    }

    func testRedisWorkPerDistinctEventDoesNotGrowWithListeners() throws {
        var perEvent: [String] = []
        for count in [1, 2, 4] {
            let system = try SystemHarness()
            try system.startProducer()
            try startSharing(system, (0..<count).map { "n\(count)-\($0)" })
            let before = try commandsProcessed(system)
            let summary = try system.flood(count: 20_000, duplicates: 0.1, prefix: "sc\(count)-", seed: 7)
            let distinct = try XCTUnwrap(summary["distinct"] as? Int)
            XCTAssertTrue(waitUntil(60) { (try? system.rowCount(prefix: "sc\(count)-")) == distinct })
            XCTAssertTrue(waitUntil(10) { system.sum("dedup_events_processed_total") == distinct },
                          "processed \(system.sum("dedup_events_processed_total")) of \(distinct)")
            XCTAssertTrue(waitUntil(10) { system.sum("dedup_events_in_flight") == 0 })
            let commands = try commandsProcessed(system) - before
            let ratio = Double(commands) / Double(distinct)
            perEvent.append("\(count): \(String(format: "%.2f", ratio))")
            XCTAssertLessThanOrEqual(ratio, 2.5, "\(count) listeners: \(commands) Redis commands for \(distinct) distinct events")
            XCTAssertEqual(system.sum("dedup_events_recovered_total"), 0)
        }
        print("Redis commands per distinct event by listener count: \(perEvent.joined(separator: ", "))")
    }

    func testMembersJoiningAndLeavingMidStreamStoreEachEventExactlyOnce() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let env = ["LOCK_TTL_MS": "1500"]
        try startSharing(system, ["m1", "m2", "m3"], env)
        let flood = try system.startFlood(count: 60_000, duplicates: 0.1, prefix: "mc-", rate: 15_000, seed: 9)
        usleep(700_000)
        system.listeners["m2"]!.kill()                              // leaves without a word
        usleep(500_000)
        try system.startListener("m4", env)                         // joins mid-stream
        usleep(500_000)
        system.listeners["m3"]!.pause()                             // paused past its claims and membership
        usleep(2_500_000)
        system.listeners["m3"]!.resume()
        XCTAssertEqual(system.listeners["m1"]!.terminate(), 0)      // leaves cleanly
        let summary = try flood.finish()
        let distinct = try XCTUnwrap(summary["distinct"] as? Int)
        XCTAssertTrue(waitUntil(60) { (try? system.rowCount(prefix: "mc-")) == distinct },
                      "rows: \(String(describing: try? system.rowCount(prefix: "mc-"))) of \(distinct)")
        for id in ["m3", "m4"] {
            XCTAssertTrue(waitUntil(20) { system.metric(id, "dedup_events_in_flight") == 0 }, "\(id) still holds events")
            XCTAssertTrue(waitUntil(10) { system.metric(id, "dedup_listeners_sharing") == 2 }, "\(id) shares with the gone")
        }
        XCTAssertEqual(try system.postgres.psql("SELECT count(*) FROM dead_letters"), "0")
        // The ones left store what comes next between them, exactly once.
        try system.flood(count: 5_000, prefix: "mc-after-", seed: 10)
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "mc-after-")) == 5_000 })
        // The one taking part longest claims them all (m3 came back after its pause, after
        // m4 joined); the other holds.
        XCTAssertEqual(try system.postgres.psql("SELECT count(*) FROM events WHERE event_id LIKE 'mc-after-%' AND processed_by = 'm4'"), "5000")
    }

    /// Events held for a claimer that stops are asked for again from the producer and
    /// claimed by the one left: the good ones are stored once, the malformed ones (right
    /// head, broken rest) counted and passed, as if they had been parsed on arrival. (The
    /// last line is good: a malformed line's seq is not trusted, so the watermark passes
    /// it only with the next event.)
    func testEventsHeldForAPausedClaimerAreAskedForAgainAndStoredGoodAndMalformedAlike() throws {
        let system = try SystemHarness()
        var lines: [(UInt64, String)] = []
        for seq in UInt64(1)...120 {
            let broken = seq % 6 == 3
            let payload = broken ? #"{"n":}"# : #"{"n":\#(seq)}"#
            lines.append((seq, #"{"seq":\#(seq),"ts":1764500000000,"event_id":"tb-\#(seq)","payload":\#(payload)}"#))
        }
        let fake = try PacedFakeProducer(port: system.wsPort, frames: [lines])
        defer { fake.shutdown() }
        try startSharing(system, ["ta", "tb"], ["LOCK_TTL_MS": "3000"])
        XCTAssertTrue(waitUntil(10) { system.sum("dedup_listener_claiming") == 1 })
        let claimer = system.metric("ta", "dedup_listener_claiming") == 1 ? "ta" : "tb"
        let other = claimer == "ta" ? "tb" : "ta"
        let paused = system.listeners[claimer]!
        paused.pause()
        defer { paused.resume() }
        fake.releaseNext()

        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "tb-")) == 100 },
                      "rows: \(String(describing: try? system.rowCount(prefix: "tb-"))): \(system.listeners[other]!.logTail(12))")
        XCTAssertTrue(waitUntil(10) { system.metric(other, "dedup_stream_malformed_lines_total") == 20 },
                      "malformed: \(String(describing: system.metric(other, "dedup_stream_malformed_lines_total")))")
        XCTAssertTrue(waitUntil(10) { system.metric(other, "dedup_stream_watermark_seq") == 120 })
        XCTAssertGreaterThanOrEqual(system.metric(other, "dedup_stream_rewinds_total") ?? 0, 1,
                                    "the held events were not asked for again: \(system.listeners[other]!.logTail(12))")
        XCTAssertEqual(try system.postgres.psql("SELECT count(*) FROM events WHERE event_id LIKE 'tb-%' AND processed_by = '\(other)'"), "100")
        XCTAssertEqual(try system.postgres.psql("SELECT count(*) FROM dead_letters"), "0")
        // The paused claimer wakes to the same frame: it finds every event done, stores none.
        paused.resume()
        XCTAssertTrue(waitUntil(20) { system.metric(claimer, "dedup_stream_watermark_seq") == 120 },
                      "\(claimer) watermark \(String(describing: system.metric(claimer, "dedup_stream_watermark_seq")))")
        XCTAssertEqual(system.sum("dedup_events_stored_total"), 100)
        XCTAssertEqual(system.sum("dedup_events_processed_total"), 100)
        XCTAssertEqual(try system.rowCount(prefix: "tb-"), 100)
    }
}
