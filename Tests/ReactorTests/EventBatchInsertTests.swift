import TestSupport
import XCTest
@testable import Reactor
import Dedup

/// The batch insert: one statement per batch, duplicates inside and across batches,
/// byte-exact round trips of awkward ids and payloads.
final class EventBatchInsertTests: XCTestCase {
    /// An inserter into `table` on a loop and a connection of its own (the caller closes it).
    private func makeInserter(into table: String) throws -> (EventLoop, PostgresConnection, EventBatchInsert) {
        let loop = try EventLoop()
        let connection = try makeUpConnection(loop)
        return (loop, connection, EventBatchInsert(connection: connection, table: table))
    }

    func testHundredThousandRowsWithDuplicatesStoreEachDistinctIdOnce() throws {
        let table = try freshEventsTable("pg_batch_test")
        let (loop, connection, inserter) = try makeInserter(into: table)
        defer { connection.close() }
        let total = 100_000
        let batchSize = 1_000
        // Row i carries id (i * 7919) % 60000, a permutation for i < 60000, so rows 60000...
        // repeat ids of earlier batches; every 100th row repeats the row before it, a
        // duplicate inside one batch.
        func id(_ i: Int) -> String { i % 100 == 99 ? "ev-\(((i - 1) * 7919) % 60_000)" : "ev-\((i * 7919) % 60_000)" }
        let distinct = Set((0..<total).map(id)).count
        XCTAssertLessThan(distinct, 60_000)
        var newIDs = Set<String>()
        var reportedNew = 0
        var completed = 0
        var failures: [PostgresError] = []
        var batch = inserter.makeBatch()
        var submitted = 0
        for i in 0..<total {
            batch.append(eventID: id(i), seq: Int64(i + 1), payload: "{\"i\": \(i)}", processedBy: "inst-a")
            if batch.count == batchSize || i == total - 1 {
                submitted += 1
                inserter.insert(batch) { result in
                    completed += 1
                    switch result {
                    case .success(let inserted):
                        reportedNew += inserted.insertedCount
                        inserted.forEachInsertedID { newIDs.insert(String(decoding: $0, as: UTF8.self)) }
                    case .failure(let error):
                        failures.append(error)
                    }
                }
                batch = inserter.makeBatch()
                // Keep the queue inside its bound, as a caller honouring backpressure would.
                if !connection.canAcceptWork {
                    loop.run(timeout: .seconds(10)) { connection.canAcceptWork }
                }
            }
        }
        var deepestPipeline = 0
        XCTAssertTrue(loop.run(timeout: .seconds(60)) {
            deepestPipeline = max(deepestPipeline, connection.inFlightOperationCount)
            return completed == submitted
        })
        XCTAssertEqual(failures, [])
        XCTAssertGreaterThan(deepestPipeline, 1, "batches were not pipelined")
        XCTAssertEqual(reportedNew, distinct, "RETURNING reported an id twice or missed one")
        XCTAssertEqual(newIDs, Set((0..<total).map(id)))
        XCTAssertEqual(try PostgresTestServer.shared.psql("SELECT count(*) FROM \(table)"), "\(distinct)")
        XCTAssertEqual(try PostgresTestServer.shared.psql("SELECT count(DISTINCT event_id) FROM \(table)"), "\(distinct)")
        // Inserting everything again stores nothing and reports nothing new.
        let again = inserter.makeBatch()
        for id in newIDs.prefix(500) { again.append(eventID: id, seq: 0, payload: nil, processedBy: "inst-b") }
        let second = try XCTUnwrap(try awaitResult(loop) { inserter.insert(again, completion: $0) }?.get())
        XCTAssertEqual(second.batchCount, 500)
        XCTAssertEqual(second.insertedCount, 0)
        XCTAssertEqual(try PostgresTestServer.shared.psql("SELECT count(*) FROM \(table) WHERE processed_by = 'inst-b'"), "0")
    }

    func testDuplicatesInsideOneBatchDoNotFailTheStatement() throws {
        let table = try freshEventsTable("pg_batch_dup_test")
        let (loop, connection, inserter) = try makeInserter(into: table)
        defer { connection.close() }
        let batch = inserter.makeBatch()
        for (seq, id) in ["a", "b", "a", "a", "c", "b"].enumerated() {
            batch.append(eventID: id, seq: Int64(seq + 1), payload: "{\"seq\": \(seq + 1)}", processedBy: "x")
        }
        let result = try XCTUnwrap(try awaitResult(loop) { inserter.insert(batch, completion: $0) }?.get())
        XCTAssertEqual(result.batchCount, 6)
        XCTAssertEqual(result.insertedIDs.sorted(), ["a", "b", "c"])
        // The first occurrence wins.
        XCTAssertEqual(try PostgresTestServer.shared.psql("SELECT string_agg(event_id || '=' || seq, ',' ORDER BY event_id) FROM \(table)"),
                       "a=1,b=2,c=5")
    }

    func testABatchMeetingStoredIdsIsSentAgainWithOnConflictAndTheNextOnesStartThere() throws {
        let table = try freshEventsTable("pg_batch_conflict_test")
        let (loop, connection, inserter) = try makeInserter(into: table)
        defer { connection.close() }
        inserter.conflictAwareRun = 1
        func insert(_ ids: [String]) throws -> [String] {
            let batch = inserter.makeBatch()
            for id in ids { batch.append(eventID: id, seq: 1, payload: "{}", processedBy: "x") }
            return try XCTUnwrap(try awaitResult(loop) { inserter.insert(batch, completion: $0) }?.get()).insertedIDs.sorted()
        }
        XCTAssertEqual(try insert(["a", "b"]), ["a", "b"])
        XCTAssertEqual(inserter.conflictRetries, 0, "a batch of new ids went in as one plain insert")
        XCTAssertEqual(try insert(["b", "c"]), ["c"])
        XCTAssertEqual(inserter.conflictRetries, 1, "the plain insert met b and was sent again")
        XCTAssertEqual(try insert(["c", "d"]), ["d"])
        XCTAssertEqual(inserter.conflictRetries, 1, "right after a conflict a batch goes with ON CONFLICT at once")
        XCTAssertEqual(try insert(["d", "e"]), ["e"])
        XCTAssertEqual(inserter.conflictRetries, 2, "after conflictAwareRun batches plain inserts are tried again")
        XCTAssertEqual(try insert(["f", "f"]), ["f"])
        XCTAssertEqual(try PostgresTestServer.shared.psql("SELECT string_agg(event_id, ',' ORDER BY event_id) FROM \(table)"), "a,b,c,d,e,f")
    }

    func testAwkwardIdsAndPayloadsSurviveByteForByte() throws {
        let table = try freshEventsTable("pg_batch_bytes_test")
        let (loop, connection, inserter) = try makeInserter(into: table)
        defer { connection.close() }
        // Payloads in jsonb's canonical output form (keys ordered by length, then bytes), so the text read back must be identical.
        let rows: [(id: String, payload: String?)] = [
            ("plain", "{\"message\": \"hello\"}"),
            ("quote\"in'id", "{\"q\": \"she said \\\"hi\\\"\"}"),
            ("back\\slash\\\\", "{\"nl\": \"x\\ny\", \"tab\": \"a\\tb\", \"path\": \"C:\\\\dir\\\\file\"}"),
            ("unicode-é漢字🎉", "{\"text\": \"naïve 漢字\", \"emoji\": \"🎉\"}"),
            ("{braces,comma} NULL", "[1, 2.5, -3, true, false, null, \"NULL\", {\"deep\": {\"deeper\": [[], {}]}}]"),
            ("json-null", "null"),
            ("sql-null", nil),
            ("string-payload", "\"just a string with \\\\ and \\\"\""),
            ("number", "12345678901234567890"),
            ("  spaces  ", "{}"),
        ]
        let batch = inserter.makeBatch()
        for (i, row) in rows.enumerated() {
            batch.append(eventID: row.id, seq: Int64(i), payload: row.payload, processedBy: "inst-\"é\\")
        }
        let inserted = try XCTUnwrap(try awaitResult(loop) { inserter.insert(batch, completion: $0) }?.get())
        XCTAssertEqual(Set(inserted.insertedIDs), Set(rows.map(\.id)))
        let read = try XCTUnwrap(try awaitResult(loop) {
            connection.query("SELECT event_id, payload::text, processed_by, payload IS NULL FROM \(table) ORDER BY seq", completion: $0)
        }?.get())
        XCTAssertEqual(read.rowCount, rows.count)
        for (i, row) in rows.enumerated() {
            XCTAssertEqual(read.bytes(i, 0), Array(row.id.utf8), "id of row \(i)")
            XCTAssertEqual(read.string(i, 1), row.payload, "payload of \(row.id)")
            XCTAssertEqual(read.string(i, 2), "inst-\"é\\")
            XCTAssertEqual(read.string(i, 3), row.payload == nil ? "t" : "f", "SQL NULL only when absent: \(row.id)")
        }
        // Non-canonical JSON is stored as the same value (jsonb normalises whitespace).
        let loose = inserter.makeBatch()
        loose.append(eventID: "loose", seq: 99, payload: "{ \"b\" :[1,2] ,\"a\":{}}", processedBy: "x")
        XCTAssertEqual(try awaitResult(loop) { inserter.insert(loose, completion: $0) }.map { try $0.get().insertedCount }, 1)
        XCTAssertEqual(try PostgresTestServer.shared.psql("SELECT payload = '{\"a\": {}, \"b\": [1, 2]}'::jsonb FROM \(table) WHERE event_id = 'loose'"), "t")
    }

    func testInvalidJSONFailsOnlyItsOwnBatch() throws {
        let table = try freshEventsTable("pg_batch_badjson_test")
        let (loop, connection, inserter) = try makeInserter(into: table)
        defer { connection.close() }
        let bad = inserter.makeBatch()
        bad.append(eventID: "ok-1", seq: 1, payload: "{}", processedBy: "x")
        bad.append(eventID: "bad", seq: 2, payload: "{not json", processedBy: "x")
        let good = inserter.makeBatch()
        good.append(eventID: "ok-2", seq: 3, payload: "[]", processedBy: "x")
        var badResult: Result<EventInsertResult, PostgresError>?
        var goodResult: Result<EventInsertResult, PostgresError>?
        inserter.insert(bad) { badResult = $0 }
        inserter.insert(good) { goodResult = $0 }
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { badResult != nil && goodResult != nil })
        guard case .failure(let error)? = badResult else { return XCTFail("invalid JSON accepted") }
        XCTAssertEqual(error.sqlState, "22P02")
        XCTAssertEqual(try goodResult?.get().insertedIDs, ["ok-2"])
        // The failed batch is one transaction: its valid row was not stored either.
        XCTAssertEqual(try PostgresTestServer.shared.psql("SELECT string_agg(event_id, ',') FROM \(table)"), "ok-2")
    }

    func testEmptyBatchCompletesWithNothingInserted() throws {
        let (loop, connection, inserter) = try makeInserter(into: "pg_never_created")
        defer { connection.close() }
        let result = try XCTUnwrap(try awaitResult(loop) { inserter.insert(inserter.makeBatch(), completion: $0) }?.get())
        XCTAssertEqual(result.batchCount, 0)
        XCTAssertEqual(result.insertedCount, 0)
    }
}
