import Reactor

/// The tables the listener needs, created (and an older layout migrated) at start-up.
/// Every listener runs this at start; a transaction-scoped advisory lock makes the
/// instances that start at the same moment take turns, instead of colliding in the
/// catalog.
enum ListenerSchema {
    /// Any number all dedup listeners agree on.
    static let lockKey = "7461001"

    static let statements = [
        "SELECT pg_advisory_lock(\(lockKey))",
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
        // The first layout kept one watermark per instance, from producers without a
        // stream id: kept under the empty stream name.
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
        "SELECT pg_advisory_unlock(\(lockKey))",
    ]

    /// Runs the statements in order; `completion` gets the first failure, if any. The
    /// lock is the session's: a connection lost half-way drops it with the session.
    static func create(on db: PostgresConnection, completion: @escaping (Result<Void, PostgresError>) -> Void) {
        func run(_ index: Int) {
            guard index < statements.count else { return completion(.success(())) }
            db.query(statements[index]) { result in
                switch result {
                case .success: run(index + 1)
                case .failure(let error):
                    // Release the lock if the session survived the failure.
                    db.query("SELECT pg_advisory_unlock_all()") { _ in completion(.failure(error)) }
                }
            }
        }
        run(0)
    }
}
