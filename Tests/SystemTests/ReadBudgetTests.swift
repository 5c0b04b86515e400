import Foundation
import Glibc
import Reactor
import TestSupport
import XCTest

/// The API's read budget: one read at a time, a bounded wait answered 503 with
/// Retry-After beyond it, reads answered in the order they came, and reads on a session of
/// their own that never wait behind the inserts.
final class ReadBudgetTests: XCTestCase {
    /// The budget's wait bound (`ReadBudget.maxWaiting`).
    private let maxWaiting = 32

    func testAFullQueueIsAnswered503WithRetryAfterAndTheWaitingReadsInOrder() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let listener = try system.startListener("budget")
        _ = try system.postgres.psql("INSERT INTO events (event_id, seq, payload, processed_by) SELECT 'bq-' || i, i, '{}', 'seed' FROM generate_series(1, 50) i")

        // Reads of `events` block while another session holds it exclusively: the first read
        // stays in flight and the others wait behind it.
        let lock = try TableLock(system.postgres, mode: "ACCESS EXCLUSIVE")
        var released = false
        defer { if !released { lock.release() } }
        var sockets: [Int32] = []
        defer { for fd in sockets { close(fd) } }
        sockets.append(try sendGet(listener.port, "/api/events?limit=1"))
        XCTAssertTrue(waitUntil(5) { system.metric("budget", "dedup_api_reads_total") == 1 })
        for i in 1...maxWaiting {
            sockets.append(try sendGet(listener.port, "/api/events?limit=\(i + 1)"))
            // One at a time, so the order they arrive in is the order they were sent in.
            XCTAssertTrue(waitUntil(5) { system.metric("budget", "dedup_api_reads_waiting") == i }, "read \(i) not waiting")
        }

        // One more is refused at once, with a JSON error and a Retry-After.
        let started = Date()
        let refused = try XCTUnwrap(rawResponse(try sendGet(listener.port, "/api/events?limit=1")))
        XCTAssertEqual(refused.status, 503)
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
        let retryAfter = try XCTUnwrap(Int(refused.headers["retry-after"] ?? ""), "\(refused.headers)")
        XCTAssertGreaterThanOrEqual(retryAfter, 1)
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(refused.body.utf8)) as? [String: Any], refused.body)
        XCTAssertEqual(system.metric("budget", "dedup_api_reads_refused_total"), 1)
        // Probes never wait for reads.
        XCTAssertEqual(try httpGet(port: listener.port, path: "/health").status, 200)
        XCTAssertEqual(try httpGet(port: listener.port, path: "/metrics").status, 200)
        // A bad parameter is still a 400 at once: nothing to read, nothing to wait for.
        XCTAssertEqual(try httpGet(port: listener.port, path: "/api/events?limit=0").status, 400)

        lock.release()
        released = true
        // Every waiting read is answered, 200, in the order it came (the limit tells which).
        let order = readableOrder(sockets, timeoutSeconds: 20)
        XCTAssertEqual(order.count, sockets.count)
        for (i, fd) in sockets.enumerated() {
            let response = try XCTUnwrap(rawResponse(fd), "read \(i) not answered")
            XCTAssertEqual(response.status, 200, "read \(i): \(response.body)")
            let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [[String: Any]])
            XCTAssertEqual(rows.count, i + 1)
        }
        // A later read never became readable before an earlier one.
        for i in 1..<sockets.count {
            XCTAssertLessThanOrEqual(order[sockets[i - 1]] ?? .max, order[sockets[i]] ?? .max, "read \(i) answered before read \(i - 1)")
        }
        XCTAssertEqual(system.metric("budget", "dedup_api_reads_queued_total"), maxWaiting)
        XCTAssertEqual(system.metric("budget", "dedup_api_reads_waiting"), 0)
    }

    func testAReadNeverWaitsBehindTheInserts() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let listener = try system.startListener("free-reader")
        try system.flood(count: 500, prefix: "fr-warm-", seed: 81)
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "fr-warm-")) == 500 })

        // SHARE mode stops every insert into `events` and lets every SELECT through.
        let lock = try TableLock(system.postgres, mode: "SHARE")
        var released = false
        defer { if !released { lock.release() } }
        try system.flood(count: 2_000, prefix: "fr-held-", seed: 82)
        XCTAssertTrue(waitUntil(10) { (system.metric("free-reader", "dedup_events_in_flight") ?? 0) > 0 })

        for _ in 0..<5 {
            let started = Date()
            let (status, body) = try httpGet(port: listener.port, path: "/api/events?limit=1000")
            XCTAssertEqual(status, 200, body)
            XCTAssertLessThan(Date().timeIntervalSince(started), 2, "a read waited behind the held inserts")
            let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]])
            XCTAssertEqual(rows.count, 500)
            let (oneStatus, _) = try httpGet(port: listener.port, path: "/api/events/fr-warm-1")
            XCTAssertEqual(oneStatus, 200)
        }
        XCTAssertEqual(try system.rowCount(prefix: "fr-held-"), 0, "the inserts were not held")
        XCTAssertGreaterThan(system.metric("free-reader", "dedup_events_in_flight") ?? 0, 0)

        lock.release()
        released = true
        XCTAssertTrue(waitUntil(30) { (try? system.rowCount(prefix: "fr-held-")) == 2_000 })
    }
}

/// A table lock held by a psql session of its own until `release()`.
private final class TableLock {
    private let process = Process()
    private let input = Pipe()

    init(_ postgres: PostgresTestServer, mode: String) throws {
        process.executableURL = URL(fileURLWithPath: TestServers.findExecutable("psql", in: [postgres.binDir, "/usr/bin"]) ?? "/usr/bin/psql")
        process.arguments = ["-h", "127.0.0.1", "-p", "\(postgres.port)", "-U", "postgres", "-d", "postgres", "-XAtq", "-v", "ON_ERROR_STOP=1"]
        process.standardInput = input
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        input.fileHandleForWriting.write(Data("BEGIN;\nLOCK TABLE events IN \(mode) MODE;\n".utf8))
        let lockName = mode.split(separator: " ").map { $0.prefix(1) + $0.dropFirst().lowercased() }.joined() + "Lock"
        let held = waitUntil(10) {
            (try? postgres.psql("SELECT count(*) FROM pg_locks WHERE relation = 'events'::regclass AND mode = '\(lockName)' AND granted")) == "1"
        }
        guard held else { throw TestServerError.failed("\(lockName) on events not taken") }
    }

    func release() {
        input.fileHandleForWriting.write(Data("COMMIT;\n".utf8))
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

/// Connects and sends `GET path` (Connection: close); the socket, for `rawResponse`.
private func sendGet(_ port: Int, _ path: String) throws -> Int32 {
    let fd = try rawConnect(port: port, timeoutSeconds: 20)
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
        close(fd)
        throw SocketError(errno: errno, operation: "send")
    }
    return fd
}

/// The whole answer on `fd` (read to the end): status, headers by lowercased name, body.
private func rawResponse(_ fd: Int32) -> (status: Int, headers: [String: String], body: String)? {
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = recv(fd, &chunk, chunk.count, 0)
        if n <= 0 { break }
        data += chunk[0..<n]
    }
    let text = String(decoding: data, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { return nil }
    let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
    guard let status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") else { return nil }
    var headers: [String: String] = [:]
    for line in lines.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return (status, headers, String(text[split.upperBound...]))
}

/// For each socket, the poll round in which it first became readable (an answer arrived).
private func readableOrder(_ sockets: [Int32], timeoutSeconds: Double) -> [Int32: Int] {
    var order: [Int32: Int] = [:]
    let deadline = Date().addingTimeInterval(timeoutSeconds)
    var round = 0
    while order.count < sockets.count && Date() < deadline {
        var fds = sockets.filter { order[$0] == nil }.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        guard poll(&fds, nfds_t(fds.count), 100) > 0 else { continue }
        round += 1
        for entry in fds where entry.revents != 0 { order[entry.fd] = round }
    }
    return order
}
