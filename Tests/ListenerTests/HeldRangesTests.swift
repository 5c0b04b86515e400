@testable import Dedup
import XCTest

/// Seqs held for other members: a range is settled when every member it holds seqs for
/// proves them finished, kept while each either did or still has them in hand in time,
/// and named for a rewind as soon as one member cannot vouch for its seqs.
final class HeldRangesTests: XCTestCase {
    /// Holds `seqs` in one range (one view, one arrival time), each for the member given.
    private func held(_ seqs: [(UInt64, member: Int)], now: UInt64 = 1) -> HeldRanges {
        var ranges = HeldRanges()
        for (seq, member) in seqs { ranges.add(seq: seq, member: member, view: 9, now: now) }
        return ranges
    }

    func testARangeEveryMemberProvesFinishedIsSettledWithOneQuestionPerMember() {
        var ranges = held([(11, 0), (12, 1), (14, 0), (15, 1), (17, 0)])
        var asked: [(Int, ClosedRange<UInt64>)] = []
        let recoverFrom = ranges.sweep { member, view, since, seqs in
            XCTAssertEqual(view, 9)
            XCTAssertEqual(since, 1)
            asked.append((member, seqs))
            return .finished
        }
        XCTAssertNil(recoverFrom)
        XCTAssertEqual(asked.map(\.0), [0, 1])
        XCTAssertEqual(asked.map(\.1), [11...17, 11...17])
        XCTAssertTrue(ranges.isEmpty)
        XCTAssertEqual(ranges.count, 0)
        XCTAssertNil(ranges.lowest)
    }

    func testARangeAMemberStillHasInHandIsKeptAndHoldsTheWatermarkBelowIt() {
        var ranges = held([(11, 0), (12, 1)])
        ranges.add(seq: 20, member: 0, view: 9, now: 2)
        let recoverFrom = ranges.sweep { member, _, since, _ in since == 1 && member == 1 ? .hold : .finished }
        XCTAssertNil(recoverFrom)
        XCTAssertEqual(ranges.lowest, 11, "the first range stays whole")
        XCTAssertEqual(ranges.count, 2, "the second range was settled")
        _ = ranges.sweep { _, _, _, _ in .finished }
        XCTAssertTrue(ranges.isEmpty)
    }

    func testARangeOneMemberCannotVouchForNamesTheSeqToRewindBeforeAndIsKept() {
        var ranges = held([(11, 0), (12, 1)])
        ranges.add(seq: 20, member: 1, view: 9, now: 2)
        ranges.add(seq: 30, member: 0, view: 9, now: 3)
        let recoverFrom = ranges.sweep { _, _, since, _ in
            if since == 2 { return .recover }
            return since == 1 ? .hold : .finished
        }
        XCTAssertEqual(recoverFrom, 20)
        XCTAssertEqual(ranges.lowest, 11)
        XCTAssertEqual(ranges.count, 3, "the ranges at 11 (held) and 20 (to recover) are kept; 30 is settled")
        ranges.removeAll()
        XCTAssertTrue(ranges.isEmpty)
        XCTAssertNil(ranges.lowest)
    }

    func testMembersPastTheSixtyFourthAreAskedToo() {
        var ranges = HeldRanges()
        for member in 0..<70 { ranges.add(seq: UInt64(100 + member), member: member, view: 9, now: 1) }
        var asked = Set<Int>()
        _ = ranges.sweep { member, _, _, _ in
            asked.insert(member)
            return .hold
        }
        XCTAssertEqual(asked, Set(0..<70))
    }
}
