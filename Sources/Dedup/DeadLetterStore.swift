import Reactor

/// `dead_letters`: events PostgreSQL refused for good, with the error, kept as the bytes
/// they arrived as (BYTEA: whatever made them unstorable as text or JSON cannot stop them
/// being kept here).
package final class DeadLetterStore {
    private let db: PostgresConnection
    private let statement: PostgresStatement

    init(db: PostgresConnection) {
        self.db = db
        statement = db.prepare("""
            INSERT INTO dead_letters (event_id, seq, payload, error, failed_by) \
            VALUES (decode($1, 'hex'), $2, decode($3, 'hex'), $4, $5) ON CONFLICT (event_id) DO NOTHING
            """)
    }

    /// Keeps one refused event; idempotent per event_id, so a retry after a lost reply
    /// or a takeover adds nothing.
    func insert(eventID: UnsafeRawBufferPointer, seq: UInt64, payload: UnsafeRawBufferPointer, error: String,
                failedBy: String, completion: @escaping (Result<Void, PostgresError>) -> Void) {
        db.execute(statement, params: [Self.hex(eventID), String(seq), Self.hex(payload), error, failedBy]) { result in
            completion(result.map { _ in () })
        }
    }

    /// Hex text for `decode($n, 'hex')` (a rare path: dead letters only).
    static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        var out = ""
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            if byte < 16 { out.append("0") }
            out.append(String(byte, radix: 16))
        }
        return out
    }

    /// `GET /api/dead-letters` rows, newest first: id and payload as hex, decoded by the API.
    package static let listSQL = """
        SELECT encode(event_id, 'hex'), seq, encode(payload, 'hex'), error, failed_by, \
        to_char(failed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') \
        FROM dead_letters ORDER BY failed_at DESC, seq DESC LIMIT $1
        """
}
