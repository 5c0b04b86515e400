import TestSupport
import XCTest
@testable import Reactor
import Dedup

/// Schema creation, parameterised reads, prepared statements and server errors, against the
/// real PostgreSQL the test support starts.
final class PostgresQueryTests: XCTestCase {
    func testSchemaCreationMakesTheContractTableAndIsIdempotent() throws {
        let loop = try EventLoop()
        let connection = try makeUpConnection(loop)
        defer { connection.close() }
        let table = "pg_schema_test"
        _ = try PostgresTestServer.shared.psql("DROP TABLE IF EXISTS \(table)")
        for _ in 0..<2 {
            let created = awaitResult(loop) { EventsTable.create(on: connection, table: table, completion: $0) }
            XCTAssertNoThrow(try created?.get())
        }
        let columns = try PostgresTestServer.shared.psql("""
            SELECT string_agg(column_name || ':' || data_type || ':' || is_nullable, ',' ORDER BY ordinal_position)
            FROM information_schema.columns WHERE table_name = '\(table)'
            """)
        XCTAssertEqual(columns, "event_id:text:NO,seq:bigint:YES,payload:jsonb:YES,processed_by:text:NO,"
                       + "processed_at:timestamp with time zone:NO")
        let primaryKey = try PostgresTestServer.shared.psql("""
            SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = '\(table)'::regclass AND i.indisprimary
            """)
        XCTAssertEqual(primaryKey, "event_id")
    }

    func testParameterisedQueryReturnsColumnNamesAndOptionalValues() throws {
        let loop = try EventLoop()
        let connection = try makeUpConnection(loop)
        defer { connection.close() }
        let hostile = "x'); DROP TABLE events; --\\\"é"
        let result = awaitResult(loop) {
            connection.query("SELECT $1::text AS echoed, $2::int + 1 AS next, $3::text AS missing", params: [hostile, "41", nil],
                             completion: $0)
        }
        let rows = try XCTUnwrap(try result?.get())
        XCTAssertEqual(rows.columnNames, ["echoed", "next", "missing"])
        XCTAssertEqual(rows.rowCount, 1)
        XCTAssertEqual(rows.rows, [[hostile, "42", nil]])
        XCTAssertTrue(rows.isNull(0, 2))
        XCTAssertEqual(rows.bytes(0, 0), Array(hostile.utf8))
    }

    func testReadsOfStoredEventsPageWithLimitAndBeforeSeq() throws {
        let table = try freshEventsTable("pg_read_test")
        _ = try PostgresTestServer.shared.psql("""
            INSERT INTO \(table) (event_id, seq, payload, processed_by)
            SELECT 'e' || g, g, jsonb_build_object('n', g), 'inst-1' FROM generate_series(1, 50) g
            """)
        let loop = try EventLoop()
        let connection = try makeUpConnection(loop)
        defer { connection.close() }
        let sql = """
            SELECT event_id, seq, payload, processed_by, processed_at FROM \(table)
            WHERE ($1::bigint IS NULL OR seq < $1::bigint) ORDER BY seq DESC LIMIT $2::int
            """
        let firstPage = try XCTUnwrap(try awaitResult(loop) { connection.query(sql, params: [nil, "10"], completion: $0) }?.get())
        XCTAssertEqual(firstPage.columnNames, ["event_id", "seq", "payload", "processed_by", "processed_at"])
        XCTAssertEqual(firstPage.rowCount, 10)
        XCTAssertEqual(firstPage.string(0, 0), "e50")
        XCTAssertEqual(firstPage.string(0, 2), "{\"n\": 50}")
        XCTAssertEqual(firstPage.string(9, 1), "41")
        let secondPage = try XCTUnwrap(try awaitResult(loop) { connection.query(sql, params: ["41", "1000"], completion: $0) }?.get())
        XCTAssertEqual(secondPage.rowCount, 40)
        XCTAssertEqual(secondPage.string(0, 1), "40")
        let one = try XCTUnwrap(try awaitResult(loop) {
            connection.query("SELECT seq FROM \(table) WHERE event_id = $1", params: ["e7"], completion: $0)
        }?.get())
        XCTAssertEqual(one.rows, [["7"]])
        let none = try XCTUnwrap(try awaitResult(loop) {
            connection.query("SELECT seq FROM \(table) WHERE event_id = $1", params: ["nope"], completion: $0)
        }?.get())
        XCTAssertEqual(none.rowCount, 0)
    }

    func testServerErrorCarriesSQLStateAndLaterWorkStillRuns() throws {
        let loop = try EventLoop()
        let connection = try makeUpConnection(loop)
        defer { connection.close() }
        // Three operations in flight at once, the middle one failing: each is its own sync,
        // so the failure aborts nothing else.
        var outcomes: [Int: Result<PostgresResult, PostgresError>] = [:]
        connection.query("SELECT 1") { outcomes[0] = $0 }
        connection.query("SELECT * FROM no_such_table_here") { outcomes[1] = $0 }
        connection.query("SELECT 3") { outcomes[2] = $0 }
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { outcomes.count == 3 })
        XCTAssertEqual(try outcomes[0]?.get().string(0, 0), "1")
        XCTAssertEqual(try outcomes[2]?.get().string(0, 0), "3")
        guard case .failure(let error)? = outcomes[1] else { return XCTFail("expected an error") }
        XCTAssertEqual(error.code, .server)
        XCTAssertEqual(error.sqlState, "42P01")
        XCTAssertTrue(error.message.contains("no_such_table_here"), error.message)
        XCTAssertEqual(connection.state, .up)
    }

    func testPreparedStatementIsPreparedAgainWhenTheSessionLosesIt() throws {
        let loop = try EventLoop()
        let connection = try makeUpConnection(loop)
        defer { connection.close() }
        let statement = connection.prepare("SELECT $1::int * 2 AS doubled")
        var results: [String?] = []
        for value in ["1", "2", "3"] {
            connection.execute(statement, params: [value]) { results.append((try? $0.get())?.string(0, 0)) }
        }
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { results.count == 3 })
        XCTAssertEqual(results, ["2", "4", "6"])
        XCTAssertEqual(connection.retriedOperationCount, 0)
        // DEALLOCATE drops it server-side: the next execution fails with 26000, which is
        // retried with a fresh prepare instead of reaching the caller.
        XCTAssertNoThrow(try awaitResult(loop) { connection.query("DEALLOCATE ALL", completion: $0) }?.get())
        let again = try XCTUnwrap(try awaitResult(loop) { connection.execute(statement, params: ["21"], completion: $0) }?.get())
        XCTAssertEqual(again.string(0, 0), "42")
        XCTAssertEqual(connection.retriedOperationCount, 1)
    }
}
