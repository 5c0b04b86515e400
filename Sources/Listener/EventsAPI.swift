import Reactor
import ServiceKit

/// `GET /api/events`, `GET /api/events/{id}`, `GET /health`, `GET /metrics`.
final class EventsAPI {
    let router = HTTPRouter()
    private let db: PostgresConnection
    private let metrics: ListenerMetrics
    private let health: () -> (ok: Bool, body: String)

    static let columns = """
        event_id, seq, payload::text, processed_by, \
        to_char(processed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        """

    init(db: PostgresConnection, metrics: ListenerMetrics, health: @escaping () -> (ok: Bool, body: String)) {
        self.db = db
        self.metrics = metrics
        self.health = health
        router.get("/api/events") { [unowned self] request, responder in self.list(request, responder) }
        router.addPrefix("GET", "/api/events/") { [unowned self] request, responder in self.one(request, responder) }
        router.get("/health") { [unowned self] _, responder in
            let (ok, body) = self.health()
            responder.respond(json: body, status: ok ? 200 : 503)
        }
        router.get("/metrics") { [unowned self] _, responder in
            responder.respond(.text(self.metrics.registry.render(), contentType: MetricsRegistry.contentType))
        }
    }

    private func list(_ request: HTTPRequest, _ responder: HTTPResponder) {
        var limit = 100
        if let text = request.queryParameter("limit") {
            guard let value = Int(text), (1...1000).contains(value) else {
                return responder.respondError(400, "limit must be a whole number from 1 to 1000")
            }
            limit = value
        }
        var sql = "SELECT \(Self.columns) FROM events"
        var params: [String?] = []
        if let text = request.queryParameter("before_seq") {
            guard let value = Int64(text), value >= 0 else {
                return responder.respondError(400, "before_seq must be a whole number >= 0")
            }
            sql += " WHERE seq < $1"
            params.append(String(value))
        }
        sql += " ORDER BY seq DESC, processed_at DESC LIMIT \(limit)"
        db.query(sql, params: params) { result in
            switch result {
            case .success(let rows):
                let out = ByteBuffer(capacity: 256 * max(rows.rowCount, 1))
                out.write(byte: UInt8(ascii: "["))
                for row in 0..<rows.rowCount {
                    if row > 0 { out.write(byte: UInt8(ascii: ",")) }
                    Self.writeEvent(rows, row, to: out)
                }
                out.write(byte: UInt8(ascii: "]"))
                responder.respond(HTTPResponse(status: 200, contentType: "application/json", body: out.readableBytesArray))
            case .failure(let error):
                responder.respondError(503, "database unavailable: \(error)")
            }
        }
    }

    private func one(_ request: HTTPRequest, _ responder: HTTPResponder) {
        let id = request.pathRemainder
        guard !id.isEmpty, id.utf8.count <= 255 else { return responder.respondError(400, "event_id must be 1 to 255 bytes") }
        db.query("SELECT \(Self.columns) FROM events WHERE event_id = $1", params: [id]) { result in
            switch result {
            case .success(let rows) where rows.rowCount > 0:
                let out = ByteBuffer(capacity: 512)
                Self.writeEvent(rows, 0, to: out)
                responder.respond(HTTPResponse(status: 200, contentType: "application/json", body: out.readableBytesArray))
            case .success:
                responder.respondError(404, "no event with event_id \(JSONString.quoted(id))")
            case .failure(let error):
                responder.respondError(503, "database unavailable: \(error)")
            }
        }
    }

    /// One row as `{"event_id", "seq", "payload", "processed_by", "processed_at"}`; the
    /// payload is PostgreSQL's own JSON text, passed through.
    static func writeEvent(_ rows: PostgresResult, _ row: Int, to out: ByteBuffer) {
        out.write("{\"event_id\":" as StaticString)
        rows.withValue(row, 0) { JSONString.writeQuoted($0 ?? UnsafeRawBufferPointer(start: nil, count: 0), to: out) }
        out.write(",\"seq\":" as StaticString)
        rows.withValue(row, 1) { value in
            if let value { out.write(value) } else { out.write("null" as StaticString) }
        }
        out.write(",\"payload\":" as StaticString)
        rows.withValue(row, 2) { value in
            if let value { out.write(value) } else { out.write("null" as StaticString) }
        }
        out.write(",\"processed_by\":" as StaticString)
        rows.withValue(row, 3) { JSONString.writeQuoted($0 ?? UnsafeRawBufferPointer(start: nil, count: 0), to: out) }
        out.write(",\"processed_at\":" as StaticString)
        rows.withValue(row, 4) { JSONString.writeQuoted($0 ?? UnsafeRawBufferPointer(start: nil, count: 0), to: out) }
        out.write(byte: UInt8(ascii: "}"))
    }
}
