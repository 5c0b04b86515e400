@testable import Dedup
import XCTest

/// A watcher drops an event only on proof that its owner finished it: a mark read for
/// exactly the claim value that holds the event.
final class ProgressProofTests: XCTestCase {
    private func events(_ seqs: [UInt64]) -> EventSet {
        var set = EventSet()
        for seq in seqs {
            Array("id-\(seq)".utf8).withUnsafeBytes { id in
                Array("null".utf8).withUnsafeBytes { set.append(seq: seq, id: id, payload: $0) }
            }
        }
        return set
    }

    /// O claims X (seq 50) and dies; W recovers X; V, which cached W's live mark as
    /// 10,000, must not drop X: W recovered it under a value of its own, whose mark V
    /// has never read.
    func testAMarkOfTheOwnersLiveClaimsSaysNothingOfWhatItRecovered() {
        var w = ClaimValues(instance: "w", run: "1")
        let wLive = w.live
        let wRecovery = w.makeRecoveryClaim()
        var watch = WatchList()
        let live = wLive.withUnsafeBytes { watch.ownerIndex(of: $0) }
        watch.progress[live] = 10_000
        let x = events([50])
        let recovered = wRecovery.withUnsafeBytes { watch.ownerIndex(of: $0) }
        XCTAssertNotEqual(live, recovered)
        watch.add(x, 0, owner: recovered, now: 0)
        var dropped: [UInt64] = []
        let progress = watch.progress
        watch.filter(keep: { seq, owner, _ in seq > progress[owner] }, removed: { set, i, _ in dropped.append(set.seqs[i]) })
        XCTAssertEqual(dropped, [])
        XCTAssertEqual(watch.count, 1)
    }

    func testTheWatermarkNeverPassesAnUnfinishedEventOfTheCurrentNumbering() {
        var tracker = SeqTracker()
        for seq in 1...10 as ClosedRange<UInt64> { XCTAssertTrue(tracker.received(seq)) }
        for seq in [1, 2, 3, 5] as [UInt64] { tracker.finished(seq, generation: 0) }
        XCTAssertEqual(tracker.watermark, 3)
        // The producer's seqs start over: an event of the old numbering finishing later
        // must not finish seq 4 of the new one.
        tracker.restart(at: 0)
        for seq in 1...5 as ClosedRange<UInt64> { XCTAssertTrue(tracker.received(seq)) }
        tracker.finished(4, generation: 0)
        tracker.finished(1, generation: 1)
        XCTAssertEqual(tracker.watermark, 1)
    }

    func testARewindAsksAgainForEverySeqNotInHandAndTheWatermarkWaitsForThem() {
        var tracker = SeqTracker()
        // 1-10 held for others (finished at once), 11-12 ours in hand, 13-14 held.
        for seq in 1...10 as ClosedRange<UInt64> { XCTAssertTrue(tracker.receivedFinished(seq)) }
        XCTAssertTrue(tracker.received(11))
        XCTAssertTrue(tracker.received(12))
        XCTAssertTrue(tracker.receivedFinished(13))
        XCTAssertTrue(tracker.receivedFinished(14))
        XCTAssertEqual(tracker.watermark, 10)
        XCTAssertTrue(tracker.rewind(to: 4))
        XCTAssertEqual(tracker.watermark, 4)
        XCTAssertEqual(tracker.arrival(of: 4), .seen)
        XCTAssertEqual(tracker.arrival(of: 5), .replayed)
        XCTAssertEqual(tracker.arrival(of: 11), .seen, "in hand: its claim goes on")
        XCTAssertEqual(tracker.arrival(of: 13), .replayed)
        XCTAssertEqual(tracker.arrival(of: 15), .new)
        for seq in 5...8 as ClosedRange<UInt64> { XCTAssertTrue(tracker.received(seq)) }
        for seq in 5...8 as ClosedRange<UInt64> { tracker.finished(seq, generation: 0) }
        XCTAssertEqual(tracker.watermark, 8, "9 and 10 are still asked for")
        // The producer skips 9 and 10 (they were lost from its log): passed, as a gap is.
        XCTAssertFalse(tracker.received(11), "in hand")
        XCTAssertEqual(tracker.watermark, 10, "11 is in hand")
        XCTAssertTrue(tracker.received(13))
        tracker.finished(11, generation: 0)
        tracker.finished(12, generation: 0)
        tracker.finished(13, generation: 0)
        XCTAssertEqual(tracker.watermark, 13, "14 is still asked for")
        XCTAssertTrue(tracker.isReplaying)
        XCTAssertTrue(tracker.received(15))
        XCTAssertFalse(tracker.isReplaying, "a new seq came: 14 was skipped")
        tracker.finished(15, generation: 0)
        XCTAssertEqual(tracker.watermark, 15)
    }

    func testARewindFarBackGrowsTheRingAndKeepsEverySeqInHand() {
        var tracker = SeqTracker()
        for seq in 1...5_000 as ClosedRange<UInt64> {
            XCTAssertTrue(seq % 1_000 == 0 ? tracker.received(seq) : tracker.receivedFinished(seq))
        }
        XCTAssertTrue(tracker.rewind(to: 0))
        for seq in 1...5_000 as ClosedRange<UInt64> {
            XCTAssertEqual(tracker.arrival(of: seq), seq % 1_000 == 0 ? .seen : .replayed, "seq \(seq)")
        }
        for seq in 1...5_000 as ClosedRange<UInt64> where seq % 1_000 != 0 { XCTAssertTrue(tracker.received(seq)) }
        for seq in 1...5_000 as ClosedRange<UInt64> { tracker.finished(seq, generation: 0) }
        XCTAssertEqual(tracker.watermark, 5_000)
    }

    func testTheOldestUnfinishedEventsArrivalIsKnown() {
        var clock = ArrivalClock()
        clock.arrived(seq: 1, now: 100)
        clock.arrived(seq: 11, now: 200)
        clock.arrived(seq: 21, now: 300)
        XCTAssertEqual(clock.oldestUnfinished(watermark: 0, highest: 30), 100)
        XCTAssertEqual(clock.oldestUnfinished(watermark: 9, highest: 30), 100)
        XCTAssertEqual(clock.oldestUnfinished(watermark: 10, highest: 30), 200)
        XCTAssertEqual(clock.oldestUnfinished(watermark: 25, highest: 30), 300)
        XCTAssertNil(clock.oldestUnfinished(watermark: 30, highest: 30))
    }

    func testEventSizesFromTheNetworkAreNeverTruncated() {
        var set = EventSet()
        let big = [UInt8](repeating: UInt8(ascii: "1"), count: 3 << 20)
        Array("big".utf8).withUnsafeBytes { id in big.withUnsafeBytes { set.append(seq: 1, id: id, payload: $0) } }
        XCTAssertEqual(set.byteCount, 3 + (3 << 20))
        set.withPayload(0) { XCTAssertEqual($0.count, 3 << 20) }
    }
}
