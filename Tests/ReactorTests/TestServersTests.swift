import Glibc
import TestSupport
import XCTest
@testable import Reactor

/// The real servers every storage test relies on start and answer, and the faults the
/// chaos tool plays on them do what they say.
final class TestServersTests: XCTestCase {
    func testRedisAndPostgresStartAndAnswer() throws {
        XCTAssertEqual(try RedisTestServer.shared.cli("PING"), "PONG")
        XCTAssertEqual(try PostgresTestServer.shared.psql("SELECT 40 + 2"), "42")
    }

    func testAPausedPostgresAnswersNothingUntilItContinuesAndThenAnswersEverything() throws {
        let server = try PostgresTestServer()
        defer { server.stop() }
        let loop = try EventLoop()
        var configuration = PostgresConfiguration(url: server.url)
        configuration.operationTimeout = .seconds(30)
        let connection = try PostgresConnection(loop: loop, configuration: configuration)
        defer { connection.close() }
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { connection.state == .up })
        // The postmaster and its helpers (checkpointer, writers) and our backend at least.
        XCTAssertGreaterThanOrEqual(server.pause(true), 3)
        var answer: [[String?]]?
        connection.query("SELECT 40 + 2") { answer = try? $0.get().rows }
        XCTAssertFalse(loop.run(timeout: .milliseconds(700)) { answer != nil }, "a paused server answered")
        XCTAssertEqual(connection.state, .up, "a pause is not a closed connection")
        server.pause(false)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { answer != nil })
        XCTAssertEqual(answer, [["42"]])
    }
}
