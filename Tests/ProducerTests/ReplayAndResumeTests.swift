import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Producer

/// `?from_seq=`: replay then live without gap or duplicate; what the ring lost is reported.
final class ReplayAndResumeTests: XCTestCase {
    func testResumingMidStreamUnderLoadGetsEverySeqExactlyOnce() throws {
        let producer = try ProducerHarness()
        let loop = try EventLoop()
        let publisher = try Publisher(loop: loop, port: producer.httpPort)
        var published = 0
        func publishSome() {
            let batch = "[" + (0..<50).map { "{\"event_id\":\"r\(published + $0)\"}" }.joined(separator: ",") + "]"
            published += 50
            publisher.post(batch)
        }
        for _ in 0..<40 { publishSome() }
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count == 40 })
        // Resume from the middle while publishing goes on.
        let resumed = try Recorder(loop: loop, port: producer.wsPort, fromSeq: 1234)
        var rounds = 0
        let keepPublishing = loop.schedule(in: .milliseconds(1)) {}
        loop.cancel(keepPublishing)
        while rounds < 40 {
            publishSome()
            rounds += 1
            loop.run(timeout: .milliseconds(5)) { false }
        }
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count == 80 })
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { resumed.seqs.last == 4000 })
        XCTAssertEqual(resumed.seqs, Array(1235...4000), "every seq after from_seq, once, in order")
        XCTAssertFalse(resumed.lines.contains { $0.contains("gap") })
        XCTAssertEqual(producer.metrics.replayRequests.count, 1)
    }

    func testResumingOlderThanTheRingIsServedFromDisk() throws {
        let producer = try ProducerHarness(replayCapacity: 100)
        let loop = try EventLoop()
        let publisher = try Publisher(loop: loop, port: producer.httpPort)
        for i in 0..<30 {
            publisher.post("[" + (0..<10).map { "{\"event_id\":\"g\(i * 10 + $0)\"}" }.joined(separator: ",") + "]")
        }
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count == 30 })
        let resumed = try Recorder(loop: loop, port: producer.wsPort, fromSeq: 50)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { resumed.seqs.last == 300 })
        XCTAssertEqual(resumed.seqs, Array(51...300))
        XCTAssertEqual(resumed.lines.first, "{\"seq\":51,\"event_id\":\"g50\",\"payload\":null}")
        XCTAssertEqual(producer.metrics.gaps.count, 0)
        XCTAssertGreaterThanOrEqual(producer.metrics.diskReplayEvents.count, 150, "seqs 51-200 are no longer in the ring")
    }

    /// Subscribers catching up from disk take turns at a small share of the hub loop (so
    /// publishing never waits behind them): each still gets every seq once, in order,
    /// from where it asked, while publishing goes on.
    func testManySubscribersCatchingUpFromDiskEachGetEverySeqOnceWhilePublishingGoesOn() throws {
        let producer = try ProducerHarness(replayCapacity: 100)
        let loop = try EventLoop()
        let publisher = try Publisher(loop: loop, port: producer.httpPort)
        let pad = String(repeating: "p", count: 200)
        func publish(_ i: Int) {
            publisher.post("[" + (0..<200).map { "{\"event_id\":\"m\(i * 200 + $0)\",\"payload\":\"\(pad)\"}" }.joined(separator: ",") + "]")
        }
        // 20,000 events of about 250 bytes: some 20 disk frames for each subscriber.
        for i in 0..<100 { publish(i) }
        XCTAssertTrue(loop.run(timeout: .seconds(20)) { publisher.answers.count == 100 })
        let subscribers = try (0..<8).map { try Recorder(loop: loop, port: producer.wsPort, fromSeq: UInt64($0 * 1_000)) }
        for i in 100..<120 {
            publish(i)
            loop.run(timeout: .milliseconds(5)) { false }
        }
        XCTAssertTrue(loop.run(timeout: .seconds(20)) { publisher.answers.count == 120 })
        XCTAssertTrue(publisher.answers.allSatisfy { $0.status == 202 })
        XCTAssertTrue(loop.run(timeout: .seconds(30)) { subscribers.allSatisfy { $0.seqs.last == 24_000 } })
        for (k, subscriber) in subscribers.enumerated() {
            XCTAssertEqual(subscriber.seqs, Array(UInt64(k * 1_000 + 1)...24_000), "subscriber \(k): every seq after its from_seq, once, in order")
        }
        XCTAssertGreaterThan(producer.metrics.diskReplayEvents.count, 8 * 12_000, "the catch-up came from disk")
    }

    func testResumingOlderThanRetentionReportsTheGapFirst() throws {
        // 1 MiB retention: 64 KiB segments, so 3 MB of events drop the oldest ones.
        let producer = try ProducerHarness(replayCapacity: 100, retentionBytes: 1 << 20)
        let loop = try EventLoop()
        let publisher = try Publisher(loop: loop, port: producer.httpPort)
        let pad = String(repeating: "r", count: 1000)
        for i in 0..<30 {
            publisher.post("[" + (0..<100).map { "{\"event_id\":\"r\(i * 100 + $0)\",\"payload\":\"\(pad)\"}" }.joined(separator: ",") + "]")
            XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count == i + 1 })
        }
        let resumed = try Recorder(loop: loop, port: producer.wsPort, fromSeq: 50)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { resumed.seqs.last == 3000 })
        let gap = try XCTUnwrap(resumed.lines.first)
        let match = try XCTUnwrap(gap.wholeMatch(of: /\{"gap":\{"from":51,"to":(\d+)\}\}/), gap)
        let to = try XCTUnwrap(UInt64(match.1))
        XCTAssertGreaterThan(to, 1000)
        XCTAssertEqual(resumed.seqs, Array((to + 1)...3000), "everything retained after the gap, once, in order")
        XCTAssertEqual(producer.metrics.gaps.count, 1)
        XCTAssertEqual(producer.metrics.gapEvents.count, Int(to - 50))
        XCTAssertTrue(producer.metrics.registry.render().contains("dedup_producer_replay_gap_events_total \(to - 50)"))
    }

    func testALiveSubscriberGetsOnlyWhatIsPublishedAfterItConnects() throws {
        let producer = try ProducerHarness()
        let loop = try EventLoop()
        let publisher = try Publisher(loop: loop, port: producer.httpPort)
        publisher.post("{\"event_id\":\"before\"}")
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { publisher.answers.count == 1 })
        let live = try Recorder(loop: loop, port: producer.wsPort)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { live.opened })
        loop.run(timeout: .milliseconds(50)) { false }
        publisher.post("{\"event_id\":\"after\"}")
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { live.seqs == [2] })
    }
}
