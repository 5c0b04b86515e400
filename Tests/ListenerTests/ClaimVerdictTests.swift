@testable import Dedup
import XCTest

/// A claim's answer decides what happens to the event, including when an earlier answer
/// was lost on the way back from Redis.
final class ClaimVerdictTests: XCTestCase {
    let values = ClaimValues(instance: "a", run: "r1")

    private func verdict(_ holder: String?, round: [UInt8]? = nil, attempted: Bool = false) -> ClaimVerdict {
        guard let holder else {
            return values.verdict(claimed: true, holder: UnsafeRawBufferPointer(start: nil, count: 0),
                                  roundClaim: round ?? values.live, attempted: attempted)
        }
        return Array(holder.utf8).withUnsafeBytes {
            values.verdict(claimed: false, holder: $0, roundClaim: round ?? values.live, attempted: attempted)
        }
    }

    func testAFreeKeyIsOurs() {
        XCTAssertEqual(verdict(nil), .ours)
    }

    func testADoneMarkerIsADuplicate() {
        XCTAssertEqual(verdict("d|b"), .duplicate)
        XCTAssertEqual(verdict("d|a", attempted: true), .duplicate)
    }

    func testAnotherOwnersClaimIsWatched() {
        XCTAssertEqual(verdict("c|b|r9|L1"), .watch)
        // The same instance id in an earlier life (another run) is another owner.
        XCTAssertEqual(verdict("c|a|r0|L1"), .watch)
    }

    func testOurOwnClaimFoundOnARetryIsOursBecauseTheFirstReplyWasLost() {
        XCTAssertEqual(verdict(String(decoding: values.live, as: UTF8.self), attempted: true), .ours)
    }

    func testOurOwnClaimOnAFirstAttemptIsACopyAlreadyInOurHands() {
        XCTAssertEqual(verdict(String(decoding: values.live, as: UTF8.self), attempted: false), .duplicate)
    }

    func testAnotherScopeOfOursIsACopyAlreadyInOurHands() {
        var values = self.values
        let recovery = values.makeRecoveryClaim()
        XCTAssertEqual(Array(recovery).withUnsafeBytes {
            values.verdict(claimed: false, holder: $0, roundClaim: values.live, attempted: true)
        }, .duplicate)
    }

    func testRecoveryAndNewStreamScopesNeverReuseAClaimValue() {
        var values = self.values
        var seen: Set<[UInt8]> = [values.live]
        for _ in 0..<100 { XCTAssertTrue(seen.insert(values.makeRecoveryClaim()).inserted) }
        values.startLiveScope()
        XCTAssertTrue(seen.insert(values.live).inserted)
        for claim in seen { XCTAssertTrue(claim.withUnsafeBytes { values.isOurs($0) }) }
        XCTAssertFalse(Array("c|a|r10|L1".utf8).withUnsafeBytes { values.isOurs($0) })
    }
}
