@testable import Dedup
import XCTest

/// The claimer among the live members, and the proof a member's state gives about the
/// events the others held for it.
final class MembershipTests: XCTestCase {
    private func name(_ text: String) -> [UInt8] { Array(text.utf8) }

    private func claimer(_ view: MemberView) -> String { String(decoding: view.names[view.claimer], as: UTF8.self) }

    func testEveryMemberWithTheSameViewPicksTheSameClaimerTheOldest() {
        let started = [name("a|1"): 300, name("b|1"): 100, name("c|1"): 200] as [[UInt8]: UInt64]
        let a = MemberView(names: [name("a|1"), name("b|1"), name("c|1")], started: started)
        let b = MemberView(names: [name("c|1"), name("a|1"), name("b|1")], started: started)
        XCTAssertEqual(a.hash, b.hash)
        XCTAssertEqual(claimer(a), "b|1")
        XCTAssertEqual(claimer(b), "b|1")
        let tie = MemberView(names: [name("z|1"), name("y|1")], started: [name("z|1"): 5, name("y|1"): 5])
        XCTAssertEqual(claimer(tie), "y|1", "a tie goes to the lowest name")
        XCTAssertNotEqual(a.hash, MemberView(names: [name("a|1"), name("b|1")]).hash)
        XCTAssertNotEqual(a.hash, MemberView(names: [name("a|1"), name("b|2"), name("c|1")]).hash)
    }

    func testAMemberJoiningOrComingBackNeverTakesTheClaimsOver() {
        var membership = Membership(instance: "old", run: "1")
        membership.linkUp = true
        membership.setStream("s", nextSeq: 1, highest: 0, now: 1_000)
        XCTAssertTrue(membership.claims)
        let newcomer = MemberState(stream: "s", from: 0, through: 0, activeSince: 2_000, epochs: [])
        membership.observe([name("new|1"): newcomer], nextSeq: 50, highest: 49, now: 2_500)
        XCTAssertTrue(membership.isSharing)
        XCTAssertTrue(membership.claims, "the oldest goes on claiming")
        XCTAssertEqual(membership.epochs, [.init(start: 1, claims: true)], "no new epoch: it claimed before and after")

        var young = Membership(instance: "young", run: "1")
        young.linkUp = true
        young.setStream("s", nextSeq: 1, highest: 0, now: 3_000)
        let elder = MemberState(stream: "s", from: 0, through: 0, activeSince: 1_000, epochs: [])
        young.observe([name("old|1"): elder], nextSeq: 60, highest: 59, now: 3_100)
        XCTAssertFalse(young.claims)
        XCTAssertEqual(young.epochs, [.init(start: 60, claims: false), .init(start: 1, claims: true)])
        young.observe([:], nextSeq: 90, highest: 89, now: 3_200)
        XCTAssertTrue(young.claims, "the claimer left: the next oldest claims")
        XCTAssertEqual(young.epochs.first, .init(start: 90, claims: true))
        young.goStale()
        XCTAssertEqual(young.state(from: 0, through: 0, highest: 89).active, false, "a stale view says it takes no part")
        // Meanwhile another member took part and took the claims on.
        let stayed = MemberState(stream: "s", from: 0, through: 0, activeSince: 3_250, epochs: [])
        young.observe([name("other|1"): stayed], nextSeq: 95, highest: 94, now: 3_300)
        XCTAssertFalse(young.claims, "the one that took the claims on keeps them; the one back waits its turn")
        XCTAssertEqual(young.activeSince, 3_300)
    }

    func testAStateProvesOnlyWhatItsMemberReceivedWhileItClaimed() {
        let state = MemberState(stream: "s1", from: 100, through: 500,
                                epochs: [.init(start: 400, claims: true), .init(start: 300, claims: false),
                                         .init(start: 150, claims: true)])
        XCTAssertEqual(state.proof(seq: 450), .finished)
        XCTAssertEqual(state.proof(seq: 500), .finished)
        XCTAssertEqual(state.proof(seq: 501), .pending)
        XCTAssertEqual(state.proof(seq: 200), .finished, "an older epoch in which it claimed still vouches for its seqs")
        XCTAssertEqual(state.proof(seq: 350), .unknown, "it held that one for another claimer")
        XCTAssertEqual(state.proof(seq: 120), .unknown, "older than every epoch it lists")
        XCTAssertEqual(state.proof(seq: 100), .unknown, "never received in this life")
    }

    func testAStateSaysOfARangeWhatItWouldOfEverySeqInIt() {
        let state = MemberState(stream: "s1", from: 100, through: 500,
                                epochs: [.init(start: 400, claims: true), .init(start: 300, claims: false),
                                         .init(start: 150, claims: true), .init(start: 140, claims: true)])
        XCTAssertEqual(state.proof(seqs: 400...500), .finished)
        XCTAssertEqual(state.proof(seqs: 145...299), .finished, "two epochs in which it claimed")
        XCTAssertEqual(state.proof(seqs: 420...501), .pending, "501 is not finished yet")
        XCTAssertEqual(state.proof(seqs: 299...400), .unknown, "it did not claim 300-399")
        XCTAssertEqual(state.proof(seqs: 100...200), .unknown, "100 was never received in this life")
        XCTAssertEqual(state.proof(seqs: 120...139), .unknown, "older than every epoch it lists")
        let cutOff = MemberState(stream: "s1", active: false, from: 100, through: 500, highest: 600,
                                 epochs: [.init(start: 400, claims: true), .init(start: 150, claims: false)])
        XCTAssertEqual(cutOff.proof(seqs: 501...600), .pending, "received: it finishes what it claimed")
        XCTAssertEqual(cutOff.proof(seqs: 550...601), .unknown, "601 was never received, and will not be")
        let ranges: [ClosedRange<UInt64>] = [400...500, 145...299, 299...400, 200...400, 120...140, 420...501, 501...900,
                                             500...900, 501...600, 550...601, 200...250, 90...95, 101...700, 139...141]
        for candidate in [state, cutOff] {
            for range in ranges {
                let each = range.map { candidate.proof(seq: $0) }
                let expected: MemberState.Proof = each.contains(.unknown) ? .unknown
                    : each.allSatisfy { $0 == .finished } ? .finished : .pending
                XCTAssertEqual(candidate.proof(seqs: range), expected, "\(range)")
            }
        }
    }

    func testAStateReadsBackAsWritten() {
        let state = MemberState(stream: "ab|cd", from: 3, through: 99, highest: 120, activeSince: 1_764_500_000_123,
                                epochs: [.init(start: 50, claims: true), .init(start: 4, claims: false)])
        XCTAssertEqual(MemberState(parsing: state.encoded), state)
        XCTAssertNil(MemberState(parsing: Array("2|1|2||s".utf8)))
        XCTAssertNil(MemberState(parsing: Array("1|1|3|99|99|7b:4|s".utf8)), "the first layout is not read as this one")
        XCTAssertNil(MemberState(parsing: Array("garbage".utf8)))
    }

    func testAChangeOfRoleStartsAnEpochAtTheFirstSeqItClassifies() {
        var membership = Membership(instance: "a", run: "1")
        membership.linkUp = true
        XCTAssertFalse(membership.isSharing)
        membership.setStream("s1", nextSeq: 11, highest: 10, now: 500)
        XCTAssertEqual(membership.epochs, [.init(start: 11, claims: true)])
        let elder = MemberState(stream: "s1", from: 0, through: 0, activeSince: 100, epochs: [])
        membership.observe([name("b|1"): elder], nextSeq: 40, highest: 0)
        XCTAssertTrue(membership.isSharing)
        XCTAssertEqual(membership.epochs, [.init(start: 40, claims: false), .init(start: 11, claims: true)])
        membership.observe([name("b|1"): elder, name("c|1"): MemberState(stream: "s1", from: 0, through: 0, activeSince: 900, epochs: [])],
                           nextSeq: 90, highest: 0)
        XCTAssertEqual(membership.epochs.count, 2, "another holder joining is no new epoch")
        membership.observe([name("b|1"): MemberState(stream: "s2", from: 0, through: 0, activeSince: 100, epochs: [])], nextSeq: 95, highest: 0)
        XCTAssertFalse(membership.isSharing, "a member on another stream is not shared with")
        XCTAssertEqual(membership.epochs.first, .init(start: 95, claims: true))
        for seq in [100, 110, 120, 130] as [UInt64] {
            membership.observe(seq % 20 == 0 ? [name("b|1"): elder] : [:], nextSeq: seq, highest: 0)
        }
        XCTAssertEqual(membership.epochs.count, 4, "only the recent epochs are kept")
    }

    func testAMemberFarBehindNeverClaimsUntilItCatchesUp() {
        var membership = Membership(instance: "late", run: "1", joinLag: 100, leaveLag: 1_000)
        membership.linkUp = true
        membership.setStream("s", nextSeq: 1, highest: 0)
        let ahead = MemberState(stream: "s", from: 0, through: 5_000, highest: 5_000, activeSince: 20, epochs: [])
        membership.observe([name("b|1"): ahead], nextSeq: 1, highest: 0)
        XCTAssertFalse(membership.active)
        XCTAssertNil(membership.meIndex, "everything it receives is held for the claimer")
        XCTAssertFalse(membership.claims, "far behind")
        XCTAssertEqual(membership.view.names, [name("b|1")])
        membership.observe([name("b|1"): ahead], nextSeq: 4_950, highest: 4_949, now: 30)
        XCTAssertTrue(membership.active)
        XCTAssertFalse(membership.claims, "caught up, it holds for the one taking part longer")
        XCTAssertEqual(membership.view.names.count, 2)
        membership.observe([name("b|1"): MemberState(stream: "s", from: 0, through: 5_500, highest: 5_500, activeSince: 20, epochs: [])],
                           nextSeq: 5_000, highest: 4_999)
        XCTAssertTrue(membership.active, "a member taking part stays until it is far behind")
        membership.observe([name("b|1"): MemberState(stream: "s", from: 0, through: 7_000, highest: 7_000, activeSince: 20, epochs: [])],
                           nextSeq: 5_001, highest: 5_000)
        XCTAssertFalse(membership.active)
    }

    func testAMemberWithoutAProducerLinkTakesNoPart() {
        var membership = Membership(instance: "a", run: "1")
        membership.setStream("s", nextSeq: 1, highest: 0, now: 1)
        membership.observe([name("b|1"): MemberState(stream: "s", from: 0, through: 0, activeSince: 2, epochs: [])], nextSeq: 1, highest: 0)
        XCTAssertFalse(membership.active)
        XCTAssertFalse(membership.claims)
        XCTAssertEqual(membership.view.names, [name("b|1")])
        XCTAssertEqual(membership.state(from: 0, through: 0, highest: 0).active, false)
        membership.observe([:], nextSeq: 1, highest: 0)
        XCTAssertEqual(membership.meIndex, 0, "alone, what it holds is its own to claim")
        XCTAssertTrue(membership.claims)
    }

    func testAnotherLifeOfTheSameInstanceIsNoMember() {
        let membership = Membership(instance: "a|b", run: "9x")
        XCTAssertTrue(membership.isFormerLife(name("a|b|1y")))
        XCTAssertFalse(membership.isFormerLife(name("a|b|9x")), "this life")
        XCTAssertFalse(membership.isFormerLife(name("a|1y")))
        XCTAssertFalse(membership.isFormerLife(name("a|b|c|1y")))
    }

    func testAnInactiveMemberVouchesOnlyForWhatItReceived() {
        let state = MemberState(stream: "s", active: false, from: 0, through: 80, highest: 100,
                                epochs: [.init(start: 1, claims: true)])
        XCTAssertEqual(state.proof(seq: 80), .finished)
        XCTAssertEqual(state.proof(seq: 90), .pending, "received: it finishes what it claimed")
        XCTAssertEqual(state.proof(seq: 101), .unknown, "never received, and not about to be")
    }
}
