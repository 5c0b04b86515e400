@testable import Dedup
import XCTest

/// Rendezvous hashing over the live members, and the proof a member's state gives about
/// the events it was preferred for.
final class MembershipTests: XCTestCase {
    private func name(_ text: String) -> [UInt8] { Array(text.utf8) }

    private func preferred(_ view: MemberView, _ id: String) -> String {
        String(decoding: view.names[Array(id.utf8).withUnsafeBytes { view.preferred(for: $0) }], as: UTF8.self)
    }

    func testMembersWithTheSameViewPreferTheSameMemberForEveryId() {
        let a = MemberView(names: [name("a|1"), name("b|1"), name("c|1")])
        let b = MemberView(names: [name("c|1"), name("a|1"), name("b|1")])
        XCTAssertEqual(a.hash, b.hash)
        for i in 0..<2_000 { XCTAssertEqual(preferred(a, "event-\(i)"), preferred(b, "event-\(i)")) }
        XCTAssertNotEqual(a.hash, MemberView(names: [name("a|1"), name("b|1")]).hash)
        XCTAssertNotEqual(a.hash, MemberView(names: [name("a|1"), name("b|2"), name("c|1")]).hash)
    }

    func testEveryMemberGetsAnEvenShare() {
        let view = MemberView(names: (0..<4).map { name("listener-\($0)|run") })
        var counts: [String: Int] = [:]
        for i in 0..<100_000 { counts[preferred(view, "id-\(i)"), default: 0] += 1 }
        XCTAssertEqual(counts.count, 4)
        for (_, count) in counts { XCTAssertEqual(Double(count), 25_000, accuracy: 1_500) }
    }

    func testAMemberJoiningTakesOnlyItsOwnShare() {
        let before = MemberView(names: [name("a|1"), name("b|1"), name("c|1")])
        let after = MemberView(names: [name("a|1"), name("b|1"), name("c|1"), name("d|1")])
        var moved = 0
        for i in 0..<40_000 {
            let old = preferred(before, "e\(i)"), new = preferred(after, "e\(i)")
            if old != new {
                XCTAssertEqual(new, "d|1", "an id moved between members that were there before")
                moved += 1
            }
        }
        XCTAssertEqual(Double(moved), 10_000, accuracy: 1_000)
    }

    func testAStateProvesOnlyEventsItsMemberClassifiedUnderTheSameView() {
        let state = MemberState(stream: "s1", from: 100, through: 500,
                                epochs: [.init(view: 7, start: 300), .init(view: 5, start: 150)])
        XCTAssertEqual(state.proof(seq: 400, view: 7), .finished)
        XCTAssertEqual(state.proof(seq: 500, view: 7), .finished)
        XCTAssertEqual(state.proof(seq: 501, view: 7), .pending)
        XCTAssertEqual(state.proof(seq: 200, view: 5), .finished, "an older view still vouches for its seqs")
        XCTAssertEqual(state.proof(seq: 200, view: 7), .unknown, "classified under another view")
        XCTAssertEqual(state.proof(seq: 400, view: 5), .unknown, "classified under another view")
        XCTAssertEqual(state.proof(seq: 120, view: 5), .unknown, "older than every view it lists")
        XCTAssertEqual(state.proof(seq: 100, view: 5), .unknown, "never received in this life")
    }

    func testAStateProvesARangeFinishedOnlyWhenItWouldProveEverySeqInIt() {
        let state = MemberState(stream: "s1", from: 100, through: 500,
                                epochs: [.init(view: 7, start: 300), .init(view: 5, start: 150)])
        XCTAssertTrue(state.provesFinished(300...500, view: 7))
        XCTAssertTrue(state.provesFinished(150...299, view: 5))
        XCTAssertTrue(state.provesFinished(420...420, view: 7))
        XCTAssertFalse(state.provesFinished(300...501, view: 7), "501 is not finished yet")
        XCTAssertFalse(state.provesFinished(299...400, view: 7), "299 was classified under another view")
        XCTAssertFalse(state.provesFinished(200...400, view: 5), "400 was classified under another view")
        XCTAssertFalse(state.provesFinished(100...200, view: 5), "100 was never received in this life")
        XCTAssertFalse(state.provesFinished(120...140, view: 5), "older than every view it lists")
        assertEachRangeAgreesSeqBySeq([state], [300...500, 150...299, 299...400, 200...400, 120...140, 420...501],
                                      .finished) { $0.provesFinished($1, view: $2) }
    }

    func testAStateProvesARangePendingOnlyWhenItWouldSayPendingOfEverySeqInIt() {
        let state = MemberState(stream: "s1", from: 100, through: 500,
                                epochs: [.init(view: 7, start: 300), .init(view: 5, start: 150)])
        XCTAssertTrue(state.provesPending(501...900, view: 7))
        XCTAssertFalse(state.provesPending(500...900, view: 7), "500 is finished")
        XCTAssertFalse(state.provesPending(501...900, view: 5), "classified under another view")
        let cutOff = MemberState(stream: "s1", active: false, from: 100, through: 500, highest: 600,
                                 epochs: [.init(view: 7, start: 300)])
        XCTAssertTrue(cutOff.provesPending(501...600, view: 7), "received: it finishes its own share")
        XCTAssertFalse(cutOff.provesPending(550...601, view: 7), "601 was never received, and will not be")
        assertEachRangeAgreesSeqBySeq([state, cutOff], [501...900, 500...900, 501...600, 550...601, 200...250, 90...95],
                                      .pending) { $0.provesPending($1, view: $2) }
    }

    /// What a state says of a whole range, under views 5 and 7, is what `proof` says of
    /// each of its seqs: `each` for all of them, or not.
    private func assertEachRangeAgreesSeqBySeq(_ states: [MemberState], _ ranges: [ClosedRange<UInt64>],
                                               _ each: MemberState.Proof,
                                               _ answer: (MemberState, ClosedRange<UInt64>, UInt64) -> Bool,
                                               line: UInt = #line) {
        for state in states {
            for range in ranges {
                for view: UInt64 in [5, 7] {
                    let expected = range.allSatisfy { state.proof(seq: $0, view: view) == each }
                    XCTAssertEqual(answer(state, range, view), expected, "\(range) under \(view)", line: line)
                }
            }
        }
    }

    func testAStateReadsBackAsWritten() {
        let state = MemberState(stream: "ab|cd", from: 3, through: 99,
                                epochs: [.init(view: .max, start: 50), .init(view: 0x1234, start: 4)])
        XCTAssertEqual(MemberState(parsing: state.encoded), state)
        XCTAssertNil(MemberState(parsing: Array("2|1|2||s".utf8)))
        XCTAssertNil(MemberState(parsing: Array("garbage".utf8)))
    }

    func testAViewChangeStartsAnEpochAtTheFirstSeqItClassifies() {
        var membership = Membership(instance: "a", run: "1")
        membership.linkUp = true
        XCTAssertFalse(membership.isSharing)
        membership.setStream("s1", nextSeq: 11, highest: 10)
        XCTAssertEqual(membership.epochs.map(\.start), [11])
        let peer = MemberState(stream: "s1", from: 0, through: 0, epochs: [])
        membership.observe([name("b|1"): peer], nextSeq: 40, highest: 0)
        XCTAssertTrue(membership.isSharing)
        XCTAssertEqual(membership.epochs.map(\.start), [40, 11])
        membership.observe([name("b|1"): peer], nextSeq: 90, highest: 0)
        XCTAssertEqual(membership.epochs.count, 2, "the same view is no new epoch")
        membership.observe([name("b|1"): MemberState(stream: "s2", from: 0, through: 0, epochs: [])], nextSeq: 95, highest: 0)
        XCTAssertFalse(membership.isSharing, "a member on another stream is not shared with")
        XCTAssertEqual(membership.epochs.first?.start, 95)
        for seq in [100, 110, 120, 130] as [UInt64] {
            membership.observe([name("c|\(seq)"): peer], nextSeq: seq, highest: 0)
        }
        XCTAssertEqual(membership.epochs.count, 4, "only the recent views are kept")
    }

    func testAMemberFarBehindTakesNoShareUntilItCatchesUp() {
        var membership = Membership(instance: "late", run: "1", joinLag: 100, leaveLag: 1_000)
        membership.linkUp = true
        membership.setStream("s", nextSeq: 1, highest: 0)
        let ahead = MemberState(stream: "s", from: 0, through: 5_000, highest: 5_000, epochs: [])
        membership.observe([name("b|1"): ahead], nextSeq: 1, highest: 0)
        XCTAssertFalse(membership.active)
        XCTAssertNil(membership.meIndex, "everything it receives is someone else's")
        XCTAssertEqual(membership.view.names, [name("b|1")])
        membership.observe([name("b|1"): ahead], nextSeq: 4_950, highest: 4_949)
        XCTAssertTrue(membership.active)
        XCTAssertEqual(membership.view.names.count, 2)
        membership.observe([name("b|1"): MemberState(stream: "s", from: 0, through: 5_500, highest: 5_500, epochs: [])],
                           nextSeq: 5_000, highest: 4_999)
        XCTAssertTrue(membership.active, "a member in the share stays until it is far behind")
        membership.observe([name("b|1"): MemberState(stream: "s", from: 0, through: 7_000, highest: 7_000, epochs: [])],
                           nextSeq: 5_001, highest: 5_000)
        XCTAssertFalse(membership.active)
    }

    func testAMemberWithoutAProducerLinkTakesNoShare() {
        var membership = Membership(instance: "a", run: "1")
        membership.setStream("s", nextSeq: 1, highest: 0)
        membership.observe([name("b|1"): MemberState(stream: "s", from: 0, through: 0, epochs: [])], nextSeq: 1, highest: 0)
        XCTAssertFalse(membership.active)
        XCTAssertEqual(membership.view.names, [name("b|1")])
        XCTAssertEqual(membership.state(from: 0, through: 0, highest: 0).active, false)
        membership.observe([:], nextSeq: 1, highest: 0)
        XCTAssertEqual(membership.meIndex, 0, "alone, what it holds is its own to claim")
    }

    func testAnInactiveMemberVouchesOnlyForWhatItReceived() {
        let state = MemberState(stream: "s", active: false, from: 0, through: 80, highest: 100,
                                epochs: [.init(view: 3, start: 1)])
        XCTAssertEqual(state.proof(seq: 80, view: 3), .finished)
        XCTAssertEqual(state.proof(seq: 90, view: 3), .pending, "received: it finishes its own share")
        XCTAssertEqual(state.proof(seq: 101, view: 3), .unknown, "never received, and not about to be")
    }
}
