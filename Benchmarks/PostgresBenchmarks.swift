import Foundation
import Glibc
import Dedup
import Reactor

/// PostgreSQL batch insert benchmark: our pipelined `unnest` batch insert of N distinct
/// events against a server-side `INSERT ... SELECT FROM generate_series ... ON CONFLICT DO
/// NOTHING` of the same N rows of the same width, on one connection each, against a
/// PostgreSQL 15 this benchmark starts in a temp dir (fsync on, synchronous_commit=off), with
/// a live rate line and the exact heap allocations per inserted row (CAllocCounter's malloc
/// interposer; Glibc's module does not export mallinfo2, and counts beat byte deltas).
///
/// Register it with `MicroSuite(name: "postgres", run: runPostgresBenchmark)`.
func runPostgresBenchmark(quick: Bool) throws -> SuiteResult {
    let figures = try postgresBenchmarkFigures(quick: quick)
    let order = ["rows", "batch_rows", "ours_rows_per_sec", "server_side_rows_per_sec", "ours_vs_server_side_ratio",
                 "ours_durable_rows_per_sec", "allocations_per_row", "allocated_bytes_per_row"]
    return SuiteResult(
        name: "postgres",
        figures: order.compactMap { key in figures[key].map { (key, $0) } },
        notes: ["PostgreSQL 15, own cluster in a temp dir: fsync=on, synchronous_commit=off (the durable row sets it on per session)",
                "ours: one connection, pipelined prepared INSERT ... SELECT FROM unnest(binary arrays) ON CONFLICT DO NOTHING RETURNING event_id",
                "server side: one INSERT ... SELECT FROM generate_series ON CONFLICT DO NOTHING, same rows and width",
                "allocations: every malloc in the process during our insert (client encoding, libpq, results), per row"])
}

/// The figures as a dictionary: rows/s for both, their ratio, allocations per row.
func postgresBenchmarkFigures(quick: Bool) throws -> [String: Double] {
    let rows = quick ? 200_000 : 1_000_000
    let batchRows = 2_000
    let server = try BenchPostgresServer()
    defer { server.stop() }
    print("  postgres \(server.version) on 127.0.0.1:\(server.port), fsync=on, synchronous_commit=off")
    let loop = try EventLoop()
    var configuration = PostgresConfiguration(url: server.url)
    configuration.maxPendingOperations = 16
    configuration.operationTimeout = .seconds(120)
    let connection = try PostgresConnection(loop: loop, configuration: configuration)
    defer { connection.close() }
    guard loop.run(timeout: .seconds(15), until: { connection.state == .up }) else {
        throw PostgresBenchError.failed("cannot connect: \(String(describing: connection.lastError))")
    }
    for table in ["bench_ours", "bench_server", "bench_durable"] {
        try runSQL(loop, connection, "DROP TABLE IF EXISTS \(table)")
        try runSQL(loop, connection, EventsTable.createSQL(table: table))
    }

    var figures: [String: Double] = ["rows": Double(rows), "batch_rows": Double(batchRows)]

    // Warm-up outside the measurement: prepares the statement, fills the batch pool.
    let warm = EventBatchInsert(connection: connection, table: "bench_durable")
    _ = try insertRows(loop, warm, connection, range: 1_000_000_000..<1_000_000_000 + 20_000, batchRows: batchRows, label: nil)
    try runSQL(loop, connection, "TRUNCATE bench_durable")

    let inserter = EventBatchInsert(connection: connection, table: "bench_ours")
    let before = AllocationCount.now()
    let oursRate = try insertRows(loop, inserter, connection, range: 0..<rows, batchRows: batchRows,
                                  label: "ours: batch insert")
    let allocs = AllocationCount.now().perItem(since: before, items: rows)
    figures["ours_rows_per_sec"] = oursRate
    figures["allocations_per_row"] = allocs.allocations
    figures["allocated_bytes_per_row"] = allocs.bytes

    // The same rows, built by the server itself: the ceiling for one backend.
    let serverSQL = """
        INSERT INTO bench_server (event_id, seq, payload, processed_by)
        SELECT 'bench-' || lpad(g::text, 10, '0'), g, ('{"seq": ' || g || ', "message": "hello world"}')::jsonb, 'bench-listener'
        FROM generate_series(0, \(rows - 1)) g ON CONFLICT (event_id) DO NOTHING
        """
    let start = monotonicSeconds()
    try runSQL(loop, connection, serverSQL)
    let serverRate = Double(rows) / (monotonicSeconds() - start)
    print("  server side: generate_series insert of \(rows) rows, \(formatRate(serverRate))/s")
    figures["server_side_rows_per_sec"] = serverRate
    figures["ours_vs_server_side_ratio"] = oursRate / serverRate

    let oursBytes = try scalar(loop, connection, "SELECT pg_total_relation_size('bench_ours')")
    let serverBytes = try scalar(loop, connection, "SELECT pg_total_relation_size('bench_server')")
    print("  same width: bench_ours \(oursBytes) bytes, bench_server \(serverBytes) bytes")

    // Durable: every batch commit waits for its WAL flush.
    var durableConfiguration = configuration
    durableConfiguration.url += "?options=-c%20synchronous_commit%3Don"
    let durable = try PostgresConnection(loop: loop, configuration: durableConfiguration)
    defer { durable.close() }
    guard loop.run(timeout: .seconds(15), until: { durable.state == .up }) else {
        throw PostgresBenchError.failed("cannot connect: \(String(describing: durable.lastError))")
    }
    let durableRows = rows / 4
    figures["ours_durable_rows_per_sec"] = try insertRows(
        loop, EventBatchInsert(connection: durable, table: "bench_durable"), durable, range: 0..<durableRows,
        batchRows: batchRows, label: "ours: batch insert, synchronous_commit=on")
    print("  ours/server-side ratio: \(String(format2: oursRate / serverRate)) "
          + "(\(formatRate(oursRate))/s vs \(formatRate(serverRate))/s), "
          + "\(String(format2: allocs.allocations)) allocations/row")
    return figures
}

/// Inserts rows `range` in batches, keeping the connection's queue full but within its bound;
/// returns rows per second. Ids and payloads are formatted into a stack buffer: the only
/// per-row work is the client's encoding.
private func insertRows(_ loop: EventLoop, _ inserter: EventBatchInsert, _ connection: PostgresConnection,
                        range: Range<Int>, batchRows: Int, label: String?) throws -> Double {
    let live = label.map { LiveRate($0, unit: "rows") }
    let total = range.count
    var done = 0
    var inserted = 0
    var failure: PostgresError?
    var next = range.lowerBound
    let owner: StaticString = "bench-listener"
    let start = monotonicSeconds()
    withUnsafeTemporaryAllocation(byteCount: 128, alignment: 8) { scratch in
        let base = scratch.baseAddress!
        while done < total && failure == nil {
            while next < range.upperBound && connection.canAcceptWork {
                let batch = inserter.makeBatch()
                let end = min(next + batchRows, range.upperBound)
                for value in next..<end {
                    let idLength = formatRow(value, into: base, payloadAt: base + 32)
                    batch.append(eventID: UnsafeRawBufferPointer(start: base, count: idLength), seq: Int64(value),
                                 payload: UnsafeRawBufferPointer(start: base + 32, count: payloadLength(base + 32)),
                                 processedBy: UnsafeRawBufferPointer(start: owner.utf8Start, count: owner.utf8CodeUnitCount))
                }
                let count = end - next
                next = end
                inserter.insert(batch) { result in
                    switch result {
                    case .success(let r):
                        done += count
                        inserted += r.insertedCount
                    case .failure(let error):
                        failure = error
                    }
                }
            }
            loop.turn(maxWaitNanos: 5_000_000)
            live?.update(done, of: total)
        }
    }
    if let failure { throw PostgresBenchError.failed("insert failed: \(failure)") }
    let elapsed = monotonicSeconds() - start
    live?.finish(done)
    guard inserted == total else { throw PostgresBenchError.failed("inserted \(inserted) of \(total) rows") }
    return Double(total) / elapsed
}

/// Writes `bench-%010d` at `id` and `{"seq": N, "message": "hello world"}` (NUL-terminated)
/// at `payload`, the same shapes the server-side statement builds. Returns the id length.
private func formatRow(_ value: Int, into id: UnsafeMutableRawPointer, payloadAt payload: UnsafeMutableRawPointer) -> Int {
    let prefix: StaticString = "bench-"
    id.copyMemory(from: prefix.utf8Start, byteCount: prefix.utf8CodeUnitCount)
    var v = value
    for i in stride(from: 15, through: 6, by: -1) {
        id.storeBytes(of: UInt8(48 + v % 10), toByteOffset: i, as: UInt8.self)
        v /= 10
    }
    let head: StaticString = "{\"seq\": "
    let tail: StaticString = ", \"message\": \"hello world\"}"
    var p = payload
    p.copyMemory(from: head.utf8Start, byteCount: head.utf8CodeUnitCount)
    p += head.utf8CodeUnitCount
    var digits = 1
    var scale = 1
    while value / scale >= 10 { scale *= 10; digits += 1 }
    v = value
    for i in stride(from: digits - 1, through: 0, by: -1) {
        p.storeBytes(of: UInt8(48 + v % 10), toByteOffset: i, as: UInt8.self)
        v /= 10
    }
    p += digits
    p.copyMemory(from: tail.utf8Start, byteCount: tail.utf8CodeUnitCount)
    p += tail.utf8CodeUnitCount
    p.storeBytes(of: 0, as: UInt8.self)
    return 16
}

private func payloadLength(_ payload: UnsafeMutableRawPointer) -> Int {
    strlen(payload.assumingMemoryBound(to: CChar.self))
}

func runSQL(_ loop: EventLoop, _ connection: PostgresConnection, _ sql: String) throws {
    _ = try scalarResult(loop, connection, sql)
}

func scalar(_ loop: EventLoop, _ connection: PostgresConnection, _ sql: String) throws -> String {
    try scalarResult(loop, connection, sql).string(0, 0) ?? ""
}

private func scalarResult(_ loop: EventLoop, _ connection: PostgresConnection, _ sql: String) throws -> PostgresResult {
    var outcome: Result<PostgresResult, PostgresError>?
    connection.query(sql) { outcome = $0 }
    guard loop.run(timeout: .seconds(300), until: { outcome != nil }) else { throw PostgresBenchError.failed("timeout: \(sql)") }
    return try outcome!.get()
}

enum PostgresBenchError: Error, CustomStringConvertible {
    case failed(String)
    var description: String {
        switch self {
        case .failed(let s): return s
        }
    }
}
