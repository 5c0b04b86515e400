import Logging
import Reactor

/// The listener's tables, brought to the current version at start-up by numbered
/// migrations. Every listener runs them; a session advisory lock makes instances that
/// start at the same moment take turns instead of colliding in the catalog, and
/// `dedup_schema` records which versions were applied (and when). Each migration is also
/// idempotent, so a database whose tables were dropped by hand is repaired, not trusted.
package enum ListenerSchema {
    /// Any number all dedup listeners agree on.
    static let lockKey = "7461001"

    struct Migration {
        let version: Int
        let description: String
        let statements: [String]
    }

    static let migrations = [
        Migration(version: 1, description: "events, dead_letters and listener_watermarks", statements: [
            EventsTable.createSQL(),
            """
            CREATE TABLE IF NOT EXISTS dead_letters (
              event_id     BYTEA NOT NULL,
              seq          BIGINT,
              payload      BYTEA,
              error        TEXT NOT NULL,
              failed_by    TEXT NOT NULL,
              failed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
            )
            """,
            // One dead letter per id, however many instances refuse it after takeovers.
            "CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_event_id ON dead_letters (event_id)",
            """
            CREATE TABLE IF NOT EXISTS listener_watermarks (
              stream      TEXT NOT NULL,
              instance_id TEXT NOT NULL,
              seq         BIGINT NOT NULL,
              updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
              PRIMARY KEY (stream, instance_id)
            )
            """,
        ]),
        // The first layout kept one watermark per instance, from producers without a
        // stream id: kept under the empty stream name.
        Migration(version: 2, description: "listener_offsets copied into listener_watermarks", statements: [
            """
            DO $$ BEGIN
              IF to_regclass('listener_offsets') IS NOT NULL THEN
                INSERT INTO listener_watermarks (stream, instance_id, seq, updated_at)
                  SELECT '', instance_id, seq, updated_at FROM listener_offsets
                  ON CONFLICT DO NOTHING;
                DROP TABLE listener_offsets;
              END IF;
            END $$
            """,
        ]),
        // Ids are opaque bytes: byte order is right, and cheaper than a locale's collation
        // on every key comparison (the primary key's index).
        Migration(version: 3, description: "events.event_id in the C collation", statements: [
            """
            DO $$ BEGIN
              IF (SELECT c.collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation
                  WHERE a.attrelid = 'events'::regclass AND a.attname = 'event_id') IS DISTINCT FROM 'C' THEN
                ALTER TABLE events ALTER COLUMN event_id TYPE TEXT COLLATE "C";
              END IF;
            END $$
            """,
        ]),
        // /api/events pages by seq, newest first: an index instead of sorting the table.
        Migration(version: 4, description: "an index on events.seq", statements: [
            "CREATE INDEX IF NOT EXISTS events_seq ON events (seq)",
        ]),
    ]

    /// The version this code brings a database to.
    static var current: Int { migrations.last!.version }

    /// Brings the schema to the current version; `completion` gets the first failure, if
    /// any. The lock is the session's: a connection lost half-way drops it with the
    /// session.
    package static func migrate(on db: PostgresConnection, logger: Logger,
                                completion: @escaping (Result<Void, PostgresError>) -> Void) {
        var steps: [(sql: String, applied: Migration?)] = [
            ("SELECT pg_advisory_lock(\(lockKey))", nil),
            ("""
             CREATE TABLE IF NOT EXISTS dedup_schema (
               version     INT PRIMARY KEY,
               description TEXT NOT NULL,
               applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
             )
             """, nil),
        ]
        for migration in migrations {
            steps += migration.statements.map { ($0, nil) }
            steps.append(("INSERT INTO dedup_schema (version, description) VALUES (\(migration.version), "
                          + "'\(migration.description.replacingQuotes)') ON CONFLICT DO NOTHING RETURNING version", migration))
        }
        steps.append(("SELECT pg_advisory_unlock(\(lockKey))", nil))
        func run(_ index: Int) {
            guard index < steps.count else { return completion(.success(())) }
            db.query(steps[index].sql) { result in
                switch result {
                case .success(let rows):
                    if let migration = steps[index].applied, rows.rowCount > 0 {
                        logger.info("schema: applied migration \(migration.version) of \(current): \(migration.description)")
                    }
                    run(index + 1)
                case .failure(let error):
                    // Release the lock if the session survived the failure.
                    db.query("SELECT pg_advisory_unlock_all()") { _ in completion(.failure(error)) }
                }
            }
        }
        run(0)
    }
}

extension String {
    /// Single quotes doubled, for a literal in SQL text.
    fileprivate var replacingQuotes: String {
        var out = ""
        for c in self { out.append(c); if c == "'" { out.append("'") } }
        return out
    }
}
