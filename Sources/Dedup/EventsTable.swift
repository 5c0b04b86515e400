import Reactor

/// The `events` table: one row per distinct event_id, the primary key doing the last
/// line of deduplication.
package enum EventsTable {
    /// `CREATE TABLE IF NOT EXISTS` for the events table (or a test's copy of it).
    package static func createSQL(table: String = "events") -> String {
        """
        CREATE TABLE IF NOT EXISTS \(PostgresIdentifier.quoted(table)) (
          event_id     TEXT COLLATE "C" PRIMARY KEY,
          seq          BIGINT,
          payload      JSONB,
          processed_by TEXT NOT NULL,
          processed_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """
    }

    /// Creates the table if it is missing. Two processes creating it at the same moment
    /// can collide in the catalog (23505 on pg_type, or 42P07); the loser's attempt is run
    /// once more, and then finds the table there.
    package static func create(on connection: PostgresConnection, table: String = "events",
                               completion: @escaping (Result<Void, PostgresError>) -> Void) {
        let sql = createSQL(table: table)
        connection.query(sql) { result in
            switch result {
            case .success:
                completion(.success(()))
            case .failure(let error) where error.sqlState == "23505" || error.sqlState == "42P07":
                connection.query(sql) { completion($0.map { _ in () }) }
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }
}
