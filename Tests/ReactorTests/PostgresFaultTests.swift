import Glibc
import TestSupport
import XCTest
@testable import Reactor
import Dedup

/// Faults: a server restart mid-batch, timeouts, backpressure, and bad input (unreachable
/// host, wrong database, malformed URI, a server that answers garbage).
final class PostgresFaultTests: XCTestCase {
    func testRestartMidBatchCompletesEveryCallAndRetriedBatchesStoreOnce() throws {
        let table = try freshEventsTable("pg_restart_test")
        let server = PostgresTestServer.shared
        let loop = try EventLoop()
        let connection = try makeUpConnection(loop) {
            // The test server runs with synchronous_commit=off, which lets a crash lose
            // commits it already acknowledged; this session asks for real commits, as the
            // listener must (the server default).
            $0.url += "?options=-c%20synchronous_commit%3Don"
            $0.operationTimeout = .seconds(20)
            $0.maxBackoff = .milliseconds(200)
        }
        defer { connection.close() }
        var states: [PostgresConnectionState] = []
        connection.onStateChange = { state, _ in states.append(state) }
        let inserter = EventBatchInsert(connection: connection, table: table)
        let batches = 40
        let rowsPerBatch = 2_000
        var succeeded = Set<Int>()
        var failuresSeen: [PostgresError.Code] = []
        var submittedAt: [Int: UInt64] = [:]
        var lateCompletions = 0
        // The caller keeps its events: a batch that fails is resubmitted from the completion.
        func submit(_ index: Int, _ batch: EventRows) {
            submittedAt[index] = loop.nowNanos
            inserter.insert(batch) { result in
                if loop.nowNanos - submittedAt[index]! > 21_000_000_000 { lateCompletions += 1 }
                switch result {
                case .success: succeeded.insert(index)
                case .failure(let error):
                    failuresSeen.append(error.code)
                    submit(index, batch)
                }
            }
        }
        for index in 0..<batches {
            let batch = inserter.makeBatch()
            for row in 0..<rowsPerBatch {
                // Overlapping ids between neighbouring batches: 1,000 shared with the next.
                let id = index * 1_000 + row
                batch.append(eventID: "r-\(id)", seq: Int64(id), payload: "{\"b\": \(index)}", processedBy: "restart")
            }
            submit(index, batch)
        }
        XCTAssertTrue(loop.run(timeout: .seconds(20)) { !succeeded.isEmpty })
        XCTAssertLessThan(succeeded.count, batches, "all batches finished before the restart; make them bigger")
        server.stop()
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { connection.state != .up })
        XCTAssertNotNil(connection.lastError)
        XCTAssertFalse(connection.canAcceptWork)
        try server.start()
        XCTAssertTrue(loop.run(timeout: .seconds(30)) { succeeded.count == batches },
                      "\(succeeded.count)/\(batches) done, state \(connection.state), \(String(describing: connection.lastError))")
        XCTAssertEqual(lateCompletions, 0)
        XCTAssertGreaterThanOrEqual(connection.connectCount, 2)
        XCTAssertTrue(states.contains(.down) && states.last == .up, "\(states)")
        XCTAssertFalse(failuresSeen.isEmpty, "no batch was in flight when the server stopped")
        XCTAssertTrue(failuresSeen.allSatisfy { $0 == .connectionLost || $0 == .timeout }, "\(failuresSeen)")
        let distinct = (batches - 1) * 1_000 + rowsPerBatch
        XCTAssertEqual(try server.psql("SELECT count(*) FROM \(table)"), "\(distinct)")
        XCTAssertEqual(try server.psql("SELECT count(DISTINCT event_id) FROM \(table)"), "\(distinct)")
    }

    func testQueuedWorkTimesOutWhileTheServerIsUnreachable() throws {
        let loop = try EventLoop()
        var configuration = PostgresConfiguration(url: "postgres://postgres@127.0.0.1:\(TestServers.freePort())/postgres")
        configuration.operationTimeout = .milliseconds(300)
        let connection = try PostgresConnection(loop: loop, configuration: configuration)
        defer { connection.close() }
        let start = loop.nowNanos
        let result = awaitResult(loop, timeout: .seconds(5)) { connection.query("SELECT 1", completion: $0) }
        let elapsed = Double(loop.nowNanos - start) / 1e9
        guard case .failure(let error)? = result else { return XCTFail("expected a timeout") }
        XCTAssertEqual(error.code, .timeout)
        XCTAssertGreaterThanOrEqual(elapsed, 0.29)
        XCTAssertLessThan(elapsed, 1.0, "completed \(elapsed)s after submission")
        XCTAssertEqual(connection.lastError?.code, .connectFailed)
        XCTAssertTrue(connection.lastError?.message.contains("refused") ?? false, "\(String(describing: connection.lastError))")
    }

    func testBackpressureBoundsThePendingQueue() throws {
        let loop = try EventLoop()
        let connection = try makeUpConnection(loop) { $0.maxPendingOperations = 4 }
        defer { connection.close() }
        var flips: [Bool] = []
        connection.onCanAcceptWorkChange = { flips.append($0) }
        XCTAssertTrue(connection.canAcceptWork)
        var outcomes: [Result<PostgresResult, PostgresError>] = []
        for _ in 0..<4 { connection.query("SELECT pg_sleep(0.05)") { outcomes.append($0) } }
        XCTAssertFalse(connection.canAcceptWork)
        XCTAssertEqual(connection.pendingOperationCount, 4)
        connection.query("SELECT 1") { outcomes.append($0) }
        XCTAssertEqual(connection.pendingOperationCount, 4, "the queue grew past its bound")
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { outcomes.count == 5 })
        let refused = outcomes.filter { if case .failure(let e) = $0 { return e.code == .queueFull } else { return false } }
        XCTAssertEqual(refused.count, 1)
        XCTAssertTrue(connection.canAcceptWork)
        XCTAssertEqual(flips, [false, true])
    }

    func testDownConnectionCanFailFastInsteadOfQueueing() throws {
        let loop = try EventLoop()
        var configuration = PostgresConfiguration(url: "postgres://postgres@127.0.0.1:\(TestServers.freePort())/postgres")
        configuration.queueWhileDown = false
        let connection = try PostgresConnection(loop: loop, configuration: configuration)
        defer { connection.close() }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { connection.state == .down })
        XCTAssertFalse(connection.canAcceptWork)
        let result = awaitResult(loop, timeout: .seconds(1)) { connection.query("SELECT 1", completion: $0) }
        guard case .failure(let error)? = result else { return XCTFail("expected a failure") }
        XCTAssertEqual(error.code, .notConnected)
    }

    func testUnreachableHostReportsConnectTimeoutOrUnreachable() throws {
        let loop = try EventLoop()
        // TEST-NET-1 (RFC 5737): routed nowhere; either the SYN goes unanswered (our
        // timeout fires) or the kernel says the network is unreachable at once.
        var configuration = PostgresConfiguration(url: "postgres://postgres@192.0.2.1:5432/postgres")
        configuration.connectTimeout = .milliseconds(300)
        let connection = try PostgresConnection(loop: loop, configuration: configuration)
        defer { connection.close() }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { connection.lastError != nil })
        let error = try XCTUnwrap(connection.lastError)
        XCTAssertTrue(error.code == .connectTimeout || error.code == .connectFailed, "\(error)")
        XCTAssertFalse(error.message.isEmpty)
        XCTAssertNotEqual(connection.state, .up)
    }

    func testSilentServerHitsTheConnectTimeoutAndIsRetried() throws {
        let loop = try EventLoop()
        let silent = GarbageServerDelegate()
        var accepted = 0
        // Accepts and never answers: libpq waits for its SSL/startup reply forever, so only
        // our reactor timer ends the attempt.
        let server = try TCPServer(loop: loop, host: "127.0.0.1", port: 0) { connection in
            accepted += 1
            connection.delegate = silent
        }
        defer { server.close() }
        var configuration = PostgresConfiguration(url: "postgres://postgres@127.0.0.1:\(server.port)/postgres")
        configuration.connectTimeout = .milliseconds(200)
        configuration.initialBackoff = .milliseconds(10)
        let connection = try PostgresConnection(loop: loop, configuration: configuration)
        defer { connection.close() }
        let start = loop.nowNanos
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { connection.lastError != nil })
        let elapsed = Double(loop.nowNanos - start) / 1e9
        XCTAssertEqual(connection.lastError?.code, .connectTimeout)
        XCTAssertGreaterThanOrEqual(elapsed, 0.19)
        XCTAssertLessThan(elapsed, 1.0)
        // It keeps trying, with backoff, while the server stays silent.
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { accepted >= 2 })
        XCTAssertNotEqual(connection.state, .up)
    }

    func testWrongDatabaseNameIsAClearError() throws {
        let loop = try EventLoop()
        let url = "postgres://postgres@127.0.0.1:\(PostgresTestServer.shared.port)/no_such_database"
        let connection = try PostgresConnection(loop: loop, url: url)
        defer { connection.close() }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { connection.lastError != nil })
        let error = try XCTUnwrap(connection.lastError)
        XCTAssertEqual(error.code, .connectFailed)
        XCTAssertTrue(error.message.contains("no_such_database") && error.message.contains("does not exist"), error.message)
        XCTAssertEqual(connection.state == .up, false)
    }

    func testMalformedURIIsRefusedUpFront() throws {
        let loop = try EventLoop()
        for url in ["postgres://postgres@127.0.0.1:5432/db?no_such_option=1", "postgresql://%zz@host/db",
                    "just some words"] {
            XCTAssertThrowsError(try PostgresConnection(loop: loop, url: url), url) { error in
                guard let error = error as? PostgresError else { return XCTFail("\(error)") }
                XCTAssertEqual(error.code, .invalidURI)
                XCTAssertFalse(error.message.isEmpty)
            }
            XCTAssertNotNil(PostgresConnection.validate(url: url))
        }
        XCTAssertNil(PostgresConnection.validate(url: "postgres://postgres@127.0.0.1:5432/postgres"))
    }

    func testServerAnsweringGarbageIsAClearError() throws {
        let loop = try EventLoop()
        let junk = GarbageServerDelegate()
        let server = try TCPServer(loop: loop, host: "127.0.0.1", port: 0) { connection in
            connection.delegate = junk
            connection.write(Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n\u{0}\u{ff}garbage".utf8))
        }
        defer { server.close() }
        let connection = try PostgresConnection(loop: loop, url: "postgres://postgres@127.0.0.1:\(server.port)/postgres")
        defer { connection.close() }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { connection.lastError != nil })
        let error = try XCTUnwrap(connection.lastError)
        XCTAssertEqual(error.code, .connectFailed)
        XCTAssertFalse(error.message.isEmpty)
        XCTAssertNotEqual(connection.state, .up)
        XCTAssertGreaterThan(junk.connections, 0)
    }
}

/// Swallows whatever the client sends; the accept callback already wrote the junk.
final class GarbageServerDelegate: TCPConnectionDelegate {
    var connections = 0
    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        connections += 1
        return bytes.count
    }
    func connectionDidClose(_ connection: TCPConnection, error: SocketError?) {}
}
