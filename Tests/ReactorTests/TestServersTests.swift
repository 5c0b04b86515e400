import TestSupport
import XCTest

/// The real servers every storage test relies on start and answer.
final class TestServersTests: XCTestCase {
    func testRedisAndPostgresStartAndAnswer() throws {
        XCTAssertEqual(try RedisTestServer.shared.cli("PING"), "PONG")
        XCTAssertEqual(try PostgresTestServer.shared.psql("SELECT 40 + 2"), "42")
    }
}
