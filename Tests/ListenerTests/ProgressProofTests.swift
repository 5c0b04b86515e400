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
