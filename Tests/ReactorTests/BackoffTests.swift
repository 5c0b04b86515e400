import Reactor
import XCTest

/// Capped exponential backoff, the one retry schedule of every client.
final class BackoffTests: XCTestCase {
    func testDelaysDoubleUpToTheCapAndStartOverAfterASuccess() {
        var backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(300))
        XCTAssertEqual((0..<5).map { _ in backoff.nextDelay() },
                       [.milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(300), .milliseconds(300)])
        backoff.reset()
        XCTAssertEqual(backoff.nextDelay(), .milliseconds(50))
        XCTAssertEqual(backoff.delay(afterFailures: 10_000), .milliseconds(300))
    }
}
