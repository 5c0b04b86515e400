@testable import Dedup
import XCTest

/// The event state machine: every path an event can take ends finished or released.
final class EventLifecycleTests: XCTestCase {
    private func run(_ inputs: [EventStage.Input], from start: EventStage = .received) -> EventStage {
        inputs.reduce(start) { $0.next($1) }
    }

    func testAnEventWeClaimIsProcessedStoredAndMarkedDone() {
        XCTAssertEqual(run([.claimSent, .claimAnswered(.ours), .processed, .inserted, .markedDone]), .finished(.stored))
    }

    func testAnEventWhoseClaimReplyWasLostIsClaimedAgain() {
        XCTAssertEqual(run([.claimSent, .claimUnanswered]), .received)
        XCTAssertEqual(run([.claimSent, .claimUnanswered, .claimSent, .claimAnswered(.ours)]), .processing)
    }

    func testAWatchedEventIsDroppedOnlyWhenItsOwnerFinishedIt() {
        XCTAssertEqual(run([.claimSent, .claimAnswered(.watch)]), .watched)
        XCTAssertEqual(run([.claimSent, .claimAnswered(.watch), .ownerFinished]), .finished(.duplicate))
    }

    func testAWatchedEventWhoseOwnerIsGoneIsTakenOver() {
        XCTAssertEqual(run([.claimSent, .claimAnswered(.watch), .ownerMayBeGone, .claimAnswered(.ours), .processed,
                            .inserted, .markedDone]), .finished(.stored))
    }

    func testAnEventAnotherMemberClaimsIsHeldUntilTheClaimerFinishesIt() {
        XCTAssertEqual(run([.heldForClaimer]), .deferred)
        XCTAssertEqual(run([.heldForClaimer, .claimerFinished]), .finished(.duplicate))
    }

    func testAHeldEventTheClaimerCannotVouchForIsAskedForAgainClaimedAndStored() {
        XCTAssertEqual(run([.heldForClaimer, .claimerCannotVouch]), .rewound)
        XCTAssertEqual(run([.heldForClaimer, .claimerCannotVouch, .receivedAgain, .claimAnswered(.ours), .processed,
                            .inserted, .markedDone]), .finished(.stored))
        XCTAssertEqual(run([.heldForClaimer, .claimerCannotVouch, .receivedAgain, .claimAnswered(.watch),
                            .ownerFinished]), .finished(.duplicate))
    }

    func testTransientStoreFailuresRetryAndPermanentOnesEndInDeadLetters() {
        XCTAssertEqual(run([.insertFailedTransiently, .insertFailedTransiently, .inserted], from: .storing), .marking)
        XCTAssertEqual(run([.insertRefusedInPart, .insertRefusedAlone, .deadLettered, .markedDone], from: .storing),
                       .finished(.stored))
        XCTAssertEqual(run([.insertRefusedAlone, .otherRowsPending, .inserted], from: .storing), .marking)
    }

    func testTheShutdownDeadlineReleasesWhatIsStillOurs() {
        for stage in [EventStage.claiming, .processing, .storing, .deadLettering] {
            XCTAssertEqual(stage.next(.shutdownDeadline), .released)
        }
        XCTAssertFalse(EventStage.released.isFinished)
        XCTAssertTrue(EventStage.marking.isFinished)
        XCTAssertTrue(EventStage.finished(.duplicate).isFinished)
    }
}
