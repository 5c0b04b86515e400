import XCTest
@testable import Dedup

/// Which `synchronous_commit` values make a confirmed insert durable.
final class CommitDurabilityTests: XCTestCase {
    func testOnlySynchronousCommitOffConfirmsBeforeTheDisk() {
        for value in ["on", "local", "remote_write", "remote_apply", "ON"] {
            XCTAssertEqual(CommitDurability(synchronousCommit: value), .durable, value)
            XCTAssertNil(CommitDurability(synchronousCommit: value).warning)
        }
        for value in ["off", "OFF"] {
            XCTAssertEqual(CommitDurability(synchronousCommit: value), .asynchronous, value)
            XCTAssertNotNil(CommitDurability(synchronousCommit: value).warning)
        }
    }
}
