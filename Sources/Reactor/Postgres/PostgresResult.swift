import CPostgres

/// The rows (or command status) of one successful statement. Owns libpq's `PGresult` and
/// frees it when released; values are read in place, copied only when asked for.
public final class PostgresResult {
    /// nil for an operation that produced no result object (an empty batch).
    let handle: OpaquePointer?

    init(taking handle: OpaquePointer?) {
        self.handle = handle
    }

    deinit {
        if let handle { PQclear(handle) }
    }

    /// Number of rows returned.
    public var rowCount: Int { handle.map { Int(PQntuples($0)) } ?? 0 }

    /// Number of columns returned.
    public var columnCount: Int { handle.map { Int(PQnfields($0)) } ?? 0 }

    /// Rows affected by an INSERT/UPDATE/DELETE (0 when the command reports none).
    public var affectedRows: Int {
        guard let handle, let text = PQcmdTuples(handle) else { return 0 }
        return Int(String(cString: text)) ?? 0
    }

    /// The name of column `column`.
    public func columnName(_ column: Int) -> String {
        guard let handle, column >= 0, column < columnCount, let name = PQfname(handle, Int32(column)) else { return "" }
        return String(cString: name)
    }

    /// Every column name, in order.
    public var columnNames: [String] { (0..<columnCount).map(columnName) }

    /// True when the value at (`row`, `column`) is SQL NULL.
    public func isNull(_ row: Int, _ column: Int) -> Bool {
        guard let handle, inBounds(row, column) else { return true }
        return PQgetisnull(handle, Int32(row), Int32(column)) != 0
    }

    /// Calls `body` with the value's bytes in place (text format), or nil for SQL NULL. The
    /// pointer is valid only during the call.
    public func withValue<R>(_ row: Int, _ column: Int, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        guard let handle, inBounds(row, column), PQgetisnull(handle, Int32(row), Int32(column)) == 0,
              let value = PQgetvalue(handle, Int32(row), Int32(column)) else { return try body(nil) }
        let length = Int(PQgetlength(handle, Int32(row), Int32(column)))
        return try body(UnsafeRawBufferPointer(start: UnsafeRawPointer(value), count: length))
    }

    /// The value as a String, or nil for SQL NULL.
    public func string(_ row: Int, _ column: Int) -> String? {
        withValue(row, column) { $0.map { String(decoding: $0, as: UTF8.self) } }
    }

    /// The value's bytes, or nil for SQL NULL.
    public func bytes(_ row: Int, _ column: Int) -> [UInt8]? {
        withValue(row, column) { $0.map { Array($0) } }
    }

    /// Every row as an array of optional strings (the API layer's convenience; allocates).
    public var rows: [[String?]] {
        let columns = columnCount
        return (0..<rowCount).map { row in (0..<columns).map { string(row, $0) } }
    }

    private func inBounds(_ row: Int, _ column: Int) -> Bool {
        row >= 0 && row < rowCount && column >= 0 && column < columnCount
    }
}
