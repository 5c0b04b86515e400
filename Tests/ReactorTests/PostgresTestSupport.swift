import TestSupport
import XCTest
@testable import Reactor
import Dedup

/// Shared pieces of the PostgreSQL client tests: a connection that is up, and a way to wait
/// for one completion while the loop runs.
extension XCTestCase {
    /// A connection to the shared test server, waited for until it is up.
    func makeUpConnection(_ loop: EventLoop, file: StaticString = #filePath, line: UInt = #line,
                          _ tweak: (inout PostgresConfiguration) -> Void = { _ in }) throws -> PostgresConnection {
        var configuration = PostgresConfiguration(url: PostgresTestServer.shared.url)
        configuration.connectTimeout = .seconds(5)
        tweak(&configuration)
        let connection = try PostgresConnection(loop: loop, configuration: configuration)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { connection.state == .up },
                      "not up: \(String(describing: connection.lastError))", file: file, line: line)
        return connection
    }

    /// Starts an operation with a completion and runs the loop until it completes.
    func awaitResult<T>(_ loop: EventLoop, timeout: Duration = .seconds(20), file: StaticString = #filePath,
                        line: UInt = #line,
                        _ start: (@escaping (Result<T, PostgresError>) -> Void) -> Void) -> Result<T, PostgresError>? {
        var outcome: Result<T, PostgresError>?
        start { outcome = $0 }
        XCTAssertTrue(loop.run(timeout: timeout) { outcome != nil }, "operation did not complete", file: file, line: line)
        return outcome
    }

    /// A fresh copy of the events table for one test (dropped first, so reruns start clean).
    func freshEventsTable(_ name: String) throws -> String {
        _ = try PostgresTestServer.shared.psql("DROP TABLE IF EXISTS \(name)")
        _ = try PostgresTestServer.shared.psql(EventsTable.createSQL(table: name))
        return name
    }
}
