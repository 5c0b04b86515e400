@testable import Dedup
import XCTest

/// Events held for other members: a chunk is settled whole when every member it holds
/// events for proves its seqs finished, kept whole when every one still has them in
/// hand, and decided event by event otherwise.
final class DeferListTests: XCTestCase {
    /// Holds `seqs` in one chunk (one view, one arrival time), each for the member given.
    private func held(_ seqs: [(UInt64, member: Int)]) -> DeferList {
        var list = DeferList()
        for (seq, member) in seqs {
            let line = Array(#""e\#(seq)","payload":{}}"#.utf8)
            line.withUnsafeBytes { raw in
                let id = UnsafeRawBufferPointer(rebasing: raw[1..<(raw.firstIndex(of: UInt8(ascii: ",")))! - 1])
                list.addLine(seq: seq, id: id, rest: UnsafeRawBufferPointer(rebasing: raw[(1 + id.count)...]),
                             generation: 0, acceptedAt: 0, member: member, view: 9, now: 1)
            }
        }
        return list
    }

    func testAChunkEveryMemberProvesFinishedIsSettledWholeWithoutAVerdictPerEvent() {
        var list = held([(11, 0), (12, 1), (14, 0), (15, 1), (17, 0)])
        var asked: [(Int, ClosedRange<UInt64>)] = []
        var settled: [UInt64] = []
        list.sweep({ _, _, _, _ in
            XCTFail("no event is asked about on its own")
            return .hold
        }, whole: { member, view, since, seqs in
            XCTAssertEqual(view, 9)
            XCTAssertEqual(since, 1)
            asked.append((member, seqs))
            return .finished
        }, finished: { events in
            settled += events.seqs
        }, removed: { _, _, _ in XCTFail("nothing is removed one by one") })
        XCTAssertEqual(asked.map(\.0).sorted(), [0, 1], "each member it holds events for is asked once")
        XCTAssertTrue(asked.allSatisfy { $0.1 == 11...17 }, "about the chunk's whole range")
        XCTAssertEqual(settled, [11, 12, 14, 15, 17])
        XCTAssertTrue(list.isEmpty)
        XCTAssertEqual(list.byteCount, 0)
    }

    func testAChunkOneMemberCannotVouchForIsDecidedEventByEvent() {
        var list = held([(11, 0), (12, 1), (14, 0), (15, 1)])
        var finished: [UInt64] = []
        list.sweep({ seq, member, _, _ in
            member == 0 ? .finished : .hold
        }, whole: { _, _, _, _ in nil }, finished: { _ in
            XCTFail("member 1 cannot vouch for the chunk")
        }, removed: { events, i, verdict in
            XCTAssertEqual(verdict, .finished)
            finished.append(events.seqs[i])
        })
        XCTAssertEqual(finished, [11, 14])
        XCTAssertEqual(list.count, 2, "member 1's events are still held")

        // A chunk partly settled is never settled whole: its settled events are gone.
        var later: [UInt64] = []
        list.sweep({ _, _, _, _ in
            XCTFail("the member's verdict on the chunk stands for each event")
            return .hold
        }, whole: { _, _, _, _ in .finished }, finished: { _ in
            XCTFail("a partly settled chunk is settled event by event")
        }, removed: { events, i, verdict in
            XCTAssertEqual(verdict, .finished)
            later.append(events.seqs[i])
        })
        XCTAssertEqual(later, [12, 15])
        XCTAssertTrue(list.isEmpty)
    }

    func testAChunkEveryMemberStillHasInHandIsKeptWithoutAVerdictPerEvent() {
        var list = held([(21, 0), (22, 1), (23, 0)])
        list.sweep({ _, _, _, _ in
            XCTFail("no event is asked about on its own")
            return .finished
        }, whole: { _, _, _, _ in .hold }, finished: { _ in XCTFail("nothing is finished") },
        removed: { _, _, _ in XCTFail("nothing is removed") })
        XCTAssertEqual(list.count, 3)

        // One member done with its part, the other not: each of the first one's events
        // goes as finished, the other's stay.
        var finished: [UInt64] = []
        list.sweep({ _, _, _, _ in
            XCTFail("both members gave a verdict on the whole chunk")
            return .claim
        }, whole: { member, _, _, _ in member == 0 ? .finished : .hold }, finished: { _ in
            XCTFail("member 1 has not finished")
        }, removed: { events, i, verdict in
            XCTAssertEqual(verdict, .finished)
            finished.append(events.seqs[i])
        })
        XCTAssertEqual(finished, [21, 23])
        XCTAssertEqual(list.count, 1)
    }
}
