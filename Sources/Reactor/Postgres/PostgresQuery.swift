/// A statement prepared once per server session and executed many times. Made by
/// `PostgresConnection.prepare(_:)`; prepared lazily on first use after every (re)connect,
/// in the same pipeline sync as that first execution.
public final class PostgresStatement {
    /// The SQL text, with `$1`, `$2`... placeholders.
    public let sql: String
    /// The server-side name (unique per connection).
    public let name: String
    /// The connection epoch this statement was last prepared in (0: not prepared).
    var preparedEpoch: UInt64 = 0
    /// Bumped each time a prepare is sent, so a stale failure does not undo a newer prepare.
    var prepareSerial = 0

    init(name: String, sql: String) {
        self.name = name
        self.sql = sql
    }
}

extension PostgresConnection {
    /// Declares a statement to prepare on this connection. Parameter types come from casts in
    /// the SQL (`$1::bigint`) or the server's inference.
    public func prepare(_ sql: String) -> PostgresStatement {
        PostgresStatement(name: nextStatementName(), sql: sql)
    }

    /// Runs `sql` with text parameters (nil is SQL NULL) as an unnamed statement in the
    /// pipeline, and calls `completion` on the loop with its rows or an error. Safe to retry,
    /// so an aborted or transiently failed attempt is run again (see `maxRetries`).
    public func query(_ sql: String, params: [String?] = [],
                      completion: @escaping (Result<PostgresResult, PostgresError>) -> Void) {
        submit(PostgresOperation(statement: nil, sql: sql, parameters: Self.encodeText(params), completion: completion))
    }

    /// Executes a prepared statement with text parameters (nil is SQL NULL).
    public func execute(_ statement: PostgresStatement, params: [String?] = [],
                        completion: @escaping (Result<PostgresResult, PostgresError>) -> Void) {
        submit(PostgresOperation(statement: statement, sql: statement.sql, parameters: Self.encodeText(params),
                                 completion: completion))
    }

    /// Executes a prepared statement with binary parameters, kept (not copied) until it
    /// completes.
    public func execute(_ statement: PostgresStatement, binary parameters: any PostgresBinaryParameters,
                        completion: @escaping (Result<PostgresResult, PostgresError>) -> Void) {
        submit(PostgresOperation(statement: statement, sql: statement.sql, parameters: .binary(parameters),
                                 completion: completion))
    }

    /// All values NUL-terminated in one buffer: one allocation for the lot, not one C string
    /// per parameter.
    static func encodeText(_ params: [String?]) -> PostgresParameters {
        guard !params.isEmpty else { return .none }
        var size = 0
        for case let value? in params { size += value.utf8.count + 1 }
        let buffer = ByteBuffer(capacity: size)
        var offsets: [Int] = []
        offsets.reserveCapacity(params.count)
        for param in params {
            guard let value = param else {
                offsets.append(-1)
                continue
            }
            offsets.append(buffer.readableBytes)
            buffer.write(value)
            buffer.write(byte: 0)
        }
        return .text(buffer, offsets)
    }
}
