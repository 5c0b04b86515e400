import Dedup
import TestSupport

extension E2ERun {
    /// What Redis and PostgreSQL alone do on this machine, each at its fastest; the lower of
    /// the two bounds what the system can store per second.
    func ceilings(_ setup: E2ESetup, into outcome: inout E2EOutcome) throws -> Double {
        print("-- ceilings: what Redis and PostgreSQL alone do on this machine --")
        try setup.redis.cli("FLUSHALL")
        let redisRate = try setup.redis.redisBenchmark(commands: events, randomKeys: events)
        try setup.redis.cli("FLUSHALL")
        let insertRate = try serverSideInsert(setup.sql, rows: events)
        let ceiling = min(redisRate, insertRate)
        let ceilingSource = redisRate <= insertRate ? "redis-benchmark SET NX" : "server-side insert"
        outcome.suites.append(SuiteResult(
            name: "e2e_ceiling",
            figures: [("commands_and_rows", Double(events)), ("redis_benchmark_set_nx_per_sec", redisRate),
                      ("server_side_insert_rows_per_sec", insertRate), ("ceiling_per_sec", ceiling)],
            notes: ["redis-benchmark -P 64 -n \(events) -r \(events) SET key:__rand_int__ x PX 30000 NX (50 connections)",
                    "server side: INSERT INTO an events-shaped table SELECT FROM generate_series ON CONFLICT DO NOTHING, "
                        + "100-byte JSONB payloads, in chunks of \(insertChunk) rows, one session",
                    "ceiling = the lower of the two: \(ceilingSource)"]))
        outcome.row("ceiling", "redis-benchmark SET NX PX (-P 64), cmds/s", fmtRate(redisRate))
        outcome.row("ceiling", "server-side insert (generate_series), rows/s", fmtRate(insertRate))
        outcome.row("ceiling", "ceiling (the lower: \(ceilingSource)), /s", fmtRate(ceiling))
        return ceiling
    }

    /// A twentieth of the rows (1,000 to 100,000) per statement, so the live line moves.
    private var insertChunk: Int { min(max(events / 20, 1_000), 100_000) }

    /// Inserts `rows` rows into an `events`-shaped table with the server building them
    /// (same id shape, 100-byte JSONB payloads), in chunks so the live line moves.
    private func serverSideInsert(_ sql: BenchSQL, rows: Int) throws -> Double {
        try sql.execute("DROP TABLE IF EXISTS ceiling_events")
        try sql.execute(EventsTable.createSQL(table: "ceiling_events"))
        try sql.execute("CHECKPOINT")
        let live = LiveRate("server-side insert (INSERT ... SELECT FROM generate_series ... ON CONFLICT DO NOTHING)", unit: "rows")
        let start = monotonicSeconds()
        var done = 0
        while done < rows {
            let end = min(done + insertChunk, rows)
            try sql.execute("""
                INSERT INTO ceiling_events (event_id, seq, payload, processed_by)
                SELECT 'e2e-ceiling-' || g, g,
                       ('{"t":' || (1700000000000000000 + g) || ',"pad":"' || repeat('x', 71) || '"}')::jsonb, 'bench-A'
                FROM generate_series(\(done), \(end - 1)) g ON CONFLICT (event_id) DO NOTHING
                """)
            done = end
            live.update(done, of: rows)
        }
        let rate = Double(rows) / (monotonicSeconds() - start)
        live.finish(done)
        let stored = try sql.int("SELECT count(*) FROM ceiling_events")
        guard stored == rows else { throw TestServerError.failed("server-side insert stored \(stored) of \(rows) rows") }
        try sql.execute("DROP TABLE ceiling_events")
        print("  server-side insert: \(fmtRate(rate)) rows/s")
        return rate
    }
}
