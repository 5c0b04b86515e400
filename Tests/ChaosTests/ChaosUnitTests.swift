import Foundation
import XCTest
@testable import Chaos

/// The parts of the chaos tool that decide a verdict, tested without starting anything:
/// the schedule is a pure function of the seed, the stream is valid JSON, and the checker
/// names exactly the lost, duplicated, unexpected and mismatched ids.
final class ChaosScheduleTests: XCTestCase {
    func testTheSameSeedDrawsTheSameScheduleAndAnotherSeedAnother() {
        let kinds = FaultKind.allCases
        let a = FaultSchedule.generate(seed: 42, seconds: 120, kinds: kinds, listeners: 3, lockTTLMillis: 1500)
        let b = FaultSchedule.generate(seed: 42, seconds: 120, kinds: kinds, listeners: 3, lockTTLMillis: 1500)
        let c = FaultSchedule.generate(seed: 43, seconds: 120, kinds: kinds, listeners: 3, lockTTLMillis: 1500)
        XCTAssertEqual(a.episodes, b.episodes)
        XCTAssertNotEqual(a.episodes, c.episodes)
        XCTAssertGreaterThan(a.episodes.count, 20)
    }

    func testFaultsNeverOverlapOnOneResourceAndEndBeforeTheHeal() {
        for seed in UInt64(1)...50 {
            let schedule = FaultSchedule.generate(seed: seed, seconds: 60, kinds: FaultKind.allCases, listeners: 2, lockTTLMillis: 1000)
            var busyUntil: [String: Double] = [:]
            for episode in schedule.episodes {
                XCTAssertGreaterThan(episode.start, busyUntil[episode.resource, default: -1], "seed \(seed): \(episode.label)")
                busyUntil[episode.resource] = episode.start + episode.duration
                XCTAssertLessThanOrEqual(episode.start + episode.duration, 58, "seed \(seed)")
                if episode.kind == .listenerStop { XCTAssertGreaterThan(episode.duration, 1.0, "a zombie outlives its claims") }
                if episode.kind.rawValue.hasPrefix("link-") { XCTAssertNotNil(episode.link) }
                if let listener = episode.listener { XCTAssertTrue((0..<2).contains(listener)) }
            }
        }
    }

    func testOnlyTheChosenKindsAreDrawn() {
        let schedule = FaultSchedule.generate(seed: 9, seconds: 60, kinds: [.linkReset, .listenerStop], listeners: 3, lockTTLMillis: 1500)
        XCTAssertFalse(schedule.episodes.isEmpty)
        XCTAssertTrue(schedule.episodes.allSatisfy { [.linkReset, .listenerStop].contains($0.kind) })
        XCTAssertTrue(FaultSchedule.generate(seed: 9, seconds: 60, kinds: [], listeners: 3, lockTTLMillis: 1500).episodes.isEmpty)
    }

    func testASeedWithoutAClusterDrawsTheScheduleItDrewBeforeClustersExisted() {
        // Seed 6956 of the README's list, as it ran: the kinds a durable producer offered
        // before the pauses of the producer, PostgreSQL and a single Redis (the README's
        // `--faults` list for the seeds run before them).
        guard case .success(let options) = ChaosOptions.parse(["--faults", "listener-kill,listener-stop,listener-term,producer-kill,redis-restart,redis-wipe,postgres-restart,postgres-fast-restart,link-reset,link-blackhole,link-latency,link-cut"])
        else { return XCTFail("the old default kinds refused") }
        let kinds = options.kinds(producerHasDataDir: true)
        let schedule = FaultSchedule.generate(seed: 6956, seconds: 120, kinds: kinds, listeners: 3, lockTTLMillis: 1500)
        XCTAssertEqual(schedule.episodes.count, 42)
        XCTAssertEqual(schedule.episodes.prefix(6).map { "+\(formatSeconds($0.start)) \($0.label)" },
                       ["+1.8s listener-term L1 new-id 1.0s", "+3.3s listener-stop L2 1.8s", "+6.4s link-cut L0/redis 1.0s",
                        "+7.5s redis-wipe 2.2s", "+10.8s link-reset L0/redis", "+13.3s link-blackhole L1/postgres 3.4s"])
    }

    func testARedisClusterScheduleHitsOneMasterAtATimeAndNeverAProxiedRedisLink() {
        var migrations = 0
        for seed in UInt64(1)...40 {
            let schedule = FaultSchedule.generate(seed: seed, seconds: 60, kinds: FaultKind.allCases, listeners: 3,
                                                  lockTTLMillis: 1500, redisNodes: 3)
            for episode in schedule.episodes {
                XCTAssertNotEqual(episode.link, .redis, "seed \(seed): \(episode.label)")
                switch episode.kind {
                case .redisRestart, .redisWipe, .redisFailover, .redisPause:
                    XCTAssertTrue((0..<3).contains(episode.node ?? -1), "seed \(seed): \(episode.label)")
                case .redisSlotMigrate:
                    migrations += 1
                    XCTAssertTrue((0..<3).contains(episode.node ?? -1), "seed \(seed): \(episode.label)")
                    let first = episode.firstSlot ?? -1, count = episode.slotCount ?? 0
                    XCTAssertTrue(first >= 0 && count >= 1 && first + count <= 16_384, "seed \(seed): \(episode.label)")
                default:
                    XCTAssertNil(episode.node)
                }
            }
        }
        XCTAssertGreaterThan(migrations, 20)
    }

    func testTheSeededStreamIsRepeatableValidJSONWithDuplicatesAndPoison() throws {
        var a = StreamGenerator(seed: 5)
        var b = StreamGenerator(seed: 5)
        var ids: [String] = []
        var poison = 0
        for _ in 0..<2_000 {
            let x = a.nextBatch(maxBatch: 20), y = b.nextBatch(maxBatch: 20)
            XCTAssertEqual(x.events.map(\.id), y.events.map(\.id))
            let body = StreamGenerator.body(x.events, poison: x.poison)
            if x.poison {
                // Foundation cannot hold 1e131072 either; the producer is meant to refuse it.
                poison += 1
                XCTAssertTrue(body.contains("1e131072") || body.contains("\\u0000"), body)
                continue
            }
            let parsed = try JSONSerialization.jsonObject(with: Data(body.utf8), options: [.fragmentsAllowed])
            let items = (parsed as? [[String: Any]]) ?? [parsed as! [String: Any]]
            XCTAssertEqual(items.map { $0["event_id"] as? String }, x.events.map(\.id))
            ids += x.events.map(\.id)
        }
        XCTAssertGreaterThan(poison, 5)
        XCTAssertLessThan(Set(ids).count, ids.count, "the stream publishes some ids more than once")
        XCTAssertTrue(StreamGenerator.body([PublishedEvent(id: "a\u{0}b", n: 1)], poison: true).contains("\\u0000"))
    }

    func testOptionsRefuseWhatTheyCannotUse() {
        guard case .success(let options) = ChaosOptions.parse(["--seed", "12", "--faults", "link-cut,listener-kill", "--seconds", "30"]) else {
            return XCTFail("valid options refused")
        }
        XCTAssertEqual(options.seed, 12)
        XCTAssertEqual(options.faults, [.linkCut, .listenerKill])
        XCTAssertEqual(options.kinds(producerHasDataDir: false), [.linkCut, .listenerKill])
        XCTAssertFalse(ChaosOptions().kinds(producerHasDataDir: false).contains(.producerKill))
        XCTAssertTrue(ChaosOptions().kinds(producerHasDataDir: true).contains(.producerKill))
        // A failing disk needs the durable log and a compiler for its preload library.
        XCTAssertFalse(ChaosOptions().kinds(producerHasDataDir: false, canCompile: true).contains(.producerDiskFail))
        XCTAssertFalse(ChaosOptions().kinds(producerHasDataDir: true, canCompile: false).contains(.producerDiskFail))
        XCTAssertTrue(ChaosOptions().kinds(producerHasDataDir: true, canCompile: true).contains(.producerDiskFail))
        // Slot migration needs a cluster: refused when named without one, left out of "all"
        // and of the default without one, drawn by default with one.
        XCTAssertFalse(ChaosOptions().kinds(producerHasDataDir: true).contains(.redisSlotMigrate))
        guard case .success(let all) = ChaosOptions.parse(["--faults", "all"]),
              case .success(let clusterAll) = ChaosOptions.parse(["--faults", "all", "--redis-cluster"]),
              case .success(let cluster) = ChaosOptions.parse(["--redis-cluster"]) else { return XCTFail("valid options refused") }
        XCTAssertFalse(all.faults?.contains(where: \.needsRedisCluster) ?? true)
        XCTAssertEqual(clusterAll.faults, FaultKind.allCases)
        XCTAssertTrue(cluster.kinds(producerHasDataDir: true).contains(.redisSlotMigrate))
        XCTAssertEqual(cluster.redisNodes, 3)
        for bad in [["--faults", "meteor"], ["--seconds", "-1"], ["--listeners", "0"], ["--seed"], ["--frobnicate"],
                    ["--faults", "redis-slot-migrate"], ["--faults", "link-reset,redis-failover"]] {
            guard case .failure(let error) = ChaosOptions.parse(bad) else { return XCTFail("\(bad) accepted") }
            XCTAssertFalse(error.message.isEmpty)
        }
    }
}

final class ChaosCheckerTests: XCTestCase {
    private func acked(_ ids: [String], first: Int, n: Int = 0, at: Double = 1) -> PublishAttempt {
        PublishAttempt(batch: first, events: ids.enumerated().map { PublishedEvent(id: $1, n: n + $0) }, poison: false,
                       sentAt: at, answeredAt: at, outcome: .acked(firstSeq: first))
    }

    func testACleanHistoryPasses() {
        let attempts = [acked(["a", "b", "a"], first: 1, n: 10), acked(["b"], first: 4, n: 20)]
        let rows = [StoredRow(id: "a", seq: 1, n: 10), StoredRow(id: "b", seq: 4, n: 20)]
        let result = Checker.check(attempts: attempts, events: rows, deadLetters: [])
        XCTAssertEqual(result.violations, 0, "\(result)")
        XCTAssertEqual(result.ackedDistinct, 2)
        XCTAssertEqual(result.ackedEvents, 4)
    }

    func testItNamesLostDuplicatedUnexpectedAndMismatchedIds() {
        var refused = acked(["r"], first: 0)
        refused.outcome = .refused("400")
        var unknown = acked(["u", "u2"], first: 0)
        unknown.outcome = .unknown("timeout")
        let attempts = [acked(["a", "b", "c", "d"], first: 1, n: 100), refused, unknown]
        let events = [StoredRow(id: "a", seq: 1, n: 100), StoredRow(id: "c", seq: 2, n: 101),
                      StoredRow(id: "d", seq: 4, n: 999), StoredRow(id: "x", seq: 9, n: 1), StoredRow(id: "r", seq: 5, n: 1),
                      StoredRow(id: "u", seq: 77, n: 1)]
        let dead = [StoredRow(id: "a", seq: 1, n: nil)]
        let result = Checker.check(attempts: attempts, events: events, deadLetters: dead)
        XCTAssertEqual(result.lost.map(\.id), ["b"])
        XCTAssertEqual(result.duplicated.map(\.id), ["a"])
        XCTAssertEqual(result.unexpected.map(\.id).sorted(), ["r", "x"])
        XCTAssertEqual(result.mismatched.map(\.id).sorted(), ["c", "d"], "c has b's seq; d has another payload")
        XCTAssertEqual(result.indeterminateDistinct, 2)
        XCTAssertEqual(result.refusedRequests, 1)
    }

    func testADeadLetterCountsAsStoredAndASeqGivenTwiceIsNamed() {
        let attempts = [acked(["p\u{0}x"], first: 1), acked(["q"], first: 1)]
        let dead = [StoredRow(id: String(decoding: hexBytes("700078"), as: UTF8.self), seq: 1, n: nil)]
        let result = Checker.check(attempts: attempts, events: [StoredRow(id: "q", seq: 1, n: 0)], deadLetters: dead)
        XCTAssertTrue(result.lost.isEmpty, "\(result.lost)")
        XCTAssertEqual(result.seqErrors.count, 1)
    }

    func testRefusalsAreCountedByTheirReason() {
        var attempts: [PublishAttempt] = []
        for (i, why) in ["400 {\"error\": \"event 2: event_id is empty\"}",
                         "503 {\"error\": \"event log unavailable: fdatasync 00000000000000000001.log: Input/output error (EIO); nothing was accepted, retry later\"}",
                         "503 {\"error\": \"event log unavailable: fdatasync 00000000000000000001.log: Input/output error (EIO)\"}",
                         "503 {\"error\": \"event log disk full: write x: No space left on device (ENOSPC)\"}",
                         "connect 127.0.0.1:1: Connection refused"].enumerated() {
            var attempt = acked(["r\(i)"], first: 0)
            attempt.outcome = .refused(why)
            attempts.append(attempt)
        }
        let result = Checker.check(attempts: attempts, events: [], deadLetters: [])
        XCTAssertEqual(result.refusedByReason, ["400": 1, "503 event log unavailable": 2, "503 event log disk full": 1, "no connection": 1])
        XCTAssertEqual(result.violations, 0)
    }

    func testMetricsAndAnswersParse() {
        let metrics = parseMetrics("# HELP x\ndedup_events_processed_total{instance=\"L0\"} 42\ndedup_events_in_flight{instance=\"L0\"} 0\n")
        XCTAssertEqual(metrics["dedup_events_processed_total"], 42)
        XCTAssertEqual(metrics["dedup_events_in_flight"], 0)
        XCTAssertEqual(Publisher.firstSeq("{\"accepted\":3,\"first_seq\":10,\"last_seq\":12,\"stream\":\"s\"}", count: 3), 10)
        XCTAssertNil(Publisher.firstSeq("{\"accepted\":2,\"first_seq\":10,\"last_seq\":11}", count: 3))
    }

    func testEvidenceIsTheLogLinesNamingTheIdAndNotALongerOne() throws {
        let dir = NSTemporaryDirectory() + "chaos-evidence-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "received seq=1 event_id=c1-12\nreceived seq=2 event_id=c1-123\nstored c1-12 done\n"
            .write(toFile: dir + "/listener-L0.log", atomically: true, encoding: .utf8)
        let lines = ChaosRun.logLines(naming: ["c1-12"], in: dir)
        XCTAssertEqual(lines["c1-12"], ["listener-L0.log: received seq=1 event_id=c1-12", "listener-L0.log: stored c1-12 done"])
    }
}
