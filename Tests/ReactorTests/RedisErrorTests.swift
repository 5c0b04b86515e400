import Reactor
import XCTest

/// What a failed command says about whether it ran: the line a caller draws between
/// "retry as if new" and "retry as if it may have run".
final class RedisErrorTests: XCTestCase {
    func testAnErrorReplyOrACommandNeverSentDidNotRunAndALostReplyMayHave() {
        for error in [RedisError.server("OOM command not allowed"), .notConnected("down"), .queueFull(limit: 8)] {
            XCTAssertFalse(error.commandMayHaveRun, "\(error)")
        }
        for error in [RedisError.connectionLost("reset"), .timedOut(milliseconds: 500), .closed, .unexpectedReply("?")] {
            XCTAssertTrue(error.commandMayHaveRun, "\(error)")
        }
    }
}
