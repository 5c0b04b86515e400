/// The storage schema of the interface (docs/interface.md), created at start-up.
public enum PostgresSchema {
    /// `name` as a quoted SQL identifier (`"` doubled), so any table name is safe to splice.
    public static func quoteIdentifier(_ name: String) -> String {
        var quoted = "\""
        for character in name {
            if character == "\"" { quoted.append("\"") }
            quoted.append(character)
        }
        quoted.append("\"")
        return quoted
    }

    /// The interface's `CREATE TABLE IF NOT EXISTS` for the events table (or a test's copy).
    public static func createEventsTableSQL(table: String = "events") -> String {
        """
        CREATE TABLE IF NOT EXISTS \(quoteIdentifier(table)) (
          event_id     TEXT PRIMARY KEY,
          seq          BIGINT,
          payload      JSONB,
          processed_by TEXT NOT NULL,
          processed_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """
    }

    /// Creates the events table if it is missing. Queued like any operation, so inserts
    /// submitted after this call run after it. Two processes creating the table at the same
    /// moment can collide in the catalog (23505 on pg_type, or 42P07); the loser's attempt
    /// is run once more, and then finds the table there.
    public static func createEventsTable(on connection: PostgresConnection, table: String = "events",
                                         completion: @escaping (Result<Void, PostgresError>) -> Void) {
        let sql = createEventsTableSQL(table: table)
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
