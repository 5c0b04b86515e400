import CPostgres

/// Why a PostgreSQL operation or connection attempt failed.
public struct PostgresError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The kind of failure, for callers that branch on it.
    public enum Code: Sendable, Equatable {
        /// The connection URI could not be parsed; nothing was attempted.
        case invalidURI
        /// A connection attempt failed (refused, auth, unknown database, garbage answer...).
        case connectFailed
        /// A connection attempt did not finish within the connect timeout.
        case connectTimeout
        /// The connection dropped while the operation was in flight; its outcome is unknown.
        case connectionLost
        /// The server answered the operation with an error (see `sqlState`).
        case server
        /// The operation did not complete within the operation timeout.
        case timeout
        /// Too many operations pending: the caller must slow down (backpressure).
        case queueFull
        /// The connection is down and the configuration says not to queue.
        case notConnected
        /// The client was closed.
        case closed
    }

    /// The kind of failure.
    public let code: Code
    /// A one-line human-readable explanation (libpq's or the server's message).
    public let message: String
    /// The five-character SQLSTATE when the server reported the error.
    public let sqlState: String?

    /// Creates an error.
    public init(_ code: Code, _ message: String, sqlState: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
    }

    /// One line: kind, message and SQLSTATE when there is one.
    public var description: String {
        if let sqlState { return "postgres \(code): \(message) (SQLSTATE \(sqlState))" }
        return "postgres \(code): \(message)"
    }

    /// Errors where the statement certainly did not take effect and running it again is
    /// safe: serialization failure, deadlock, lock timeout, a prepared statement that
    /// vanished (re-prepared on retry).
    var isTransient: Bool {
        guard code == .server, let sqlState else { return false }
        switch sqlState {
        case "40001", "40P01", "55P03", "26000": return true
        default: return false
        }
    }

    /// libpq's connection-level message (its messages end with a newline; we keep one line).
    static func fromConnection(_ code: Code, _ conn: OpaquePointer?, fallback: String) -> PostgresError {
        guard let conn, let raw = PQerrorMessage(conn) else { return PostgresError(code, fallback) }
        let text = trimmed(String(cString: raw))
        return PostgresError(code, text.isEmpty ? fallback : text)
    }

    /// The error a result carries, with its SQLSTATE.
    static func fromResult(_ result: OpaquePointer) -> PostgresError {
        let primary = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
        let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
        var message = primary ?? PQresultErrorMessage(result).map { trimmed(String(cString: $0)) } ?? ""
        if message.isEmpty {
            message = String(cString: PQresStatus(PQresultStatus(result)))
        }
        return PostgresError(.server, message, sqlState: state)
    }

    /// Drops trailing whitespace and joins lines, without Foundation.
    static func trimmed(_ text: String) -> String {
        var lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map { $0.trimmingSpaces() }
        lines.removeAll { $0.isEmpty }
        return lines.joined(separator: " / ")
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> String {
        var start = startIndex
        var end = endIndex
        while start < end, let c = self[start].asciiValue, c == 32 || c == 9 { start = index(after: start) }
        while end > start, let c = self[index(before: end)].asciiValue, c == 32 || c == 9 { end = index(before: end) }
        return String(self[start..<end])
    }
}
