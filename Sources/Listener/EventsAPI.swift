import Dedup
import Reactor
import ServiceKit

/// `GET /api/events`, `GET /api/events/{id}`, `GET /api/dead-letters`, `GET /health`,
/// `GET /metrics`.
final class EventsAPI {
    let router = HTTPRouter()
    private let db: PostgresConnection
    private let metrics: ListenerMetrics
    private let health: () -> (ok: Bool, body: String)
    /// One read at a time, a bounded wait, a share of time while events flow.
    private let budget: ReadBudget
    /// Prepared once per session: a page read parses and plans nothing.
    private let latestPage: PostgresStatement
    private let pageBefore: PostgresStatement
    private let byID: PostgresStatement
    private let deadLetterPage: PostgresStatement

    static let columns = """
        event_id, seq, payload::text, processed_by, \
        to_char(processed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        """

    /// Payload bytes after which a page stops early (it always holds at least one event):
    /// a thousand large payloads would otherwise be a gigabyte in one answer, held in the
    /// listener's memory. Clients page on with `before_seq` either way.
    static let maxPagePayloadBytes = 8 << 20

    /// The newest `limit` events (from the index on seq), cut where their payloads pass
    /// `maxPagePayloadBytes`, so only that much reaches the listener.
    static func pageSQL(filter: String, limit: String) -> String {
        """
        SELECT event_id, seq, p, processed_by, at FROM (
          SELECT *, sum(coalesce(octet_length(p), 4)) OVER (ORDER BY seq DESC, processed_at DESC) AS upto FROM (
            SELECT event_id, seq, payload::text AS p, processed_by, processed_at,
                   to_char(processed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at
            FROM events \(filter) ORDER BY seq DESC, processed_at DESC LIMIT \(limit)
          ) newest
        ) page
        WHERE upto - coalesce(octet_length(p), 4) < \(maxPagePayloadBytes)
        ORDER BY seq DESC, processed_at DESC
        """
    }

    init(db: PostgresConnection, metrics: ListenerMetrics, token: BearerToken?, health: @escaping () -> (ok: Bool, body: String)) {
        self.db = db
        self.metrics = metrics
        self.health = health
        budget = ReadBudget(loop: db.loop, metrics: metrics)
        latestPage = db.prepare(Self.pageSQL(filter: "", limit: "$1"))
        pageBefore = db.prepare(Self.pageSQL(filter: "WHERE seq < $2", limit: "$1"))
        byID = db.prepare("SELECT \(Self.columns) FROM events WHERE event_id = $1")
        deadLetterPage = db.prepare(DeadLetterStore.listSQL)
        /// `/api/*` behind the token when one is set; probes stay open.
        func guarded(_ handler: @escaping (HTTPRequest, HTTPResponder) -> Void) -> (HTTPRequest, HTTPResponder) -> Void {
            guard let token else { return handler }
            return { request, responder in
                guard token.admits(authorization: request.headers["Authorization"]) else {
                    return responder.respondError(401, "missing or wrong bearer token: /api needs Authorization: Bearer <API_TOKEN>")
                }
                handler(request, responder)
            }
        }
        router.get("/api/events", guarded { [unowned self] request, responder in self.list(request, responder) })
        router.get("/api/dead-letters", guarded { [unowned self] request, responder in self.deadLetters(request, responder) })
        router.addPrefix("GET", "/api/events/", guarded { [unowned self] request, responder in self.one(request, responder) })
        router.get("/health") { [unowned self] _, responder in
            let (ok, body) = self.health()
            responder.respond(json: body, status: ok ? 200 : 503)
        }
        router.get("/metrics") { [unowned self] _, responder in
            responder.respond(.text(self.metrics.registry.render(), contentType: MetricsRegistry.contentType))
        }
    }

    /// `?limit=`: 100 unless given, at most 1000; nil after answering 400.
    private func limit(_ request: HTTPRequest, _ responder: HTTPResponder) -> Int? {
        guard let text = request.queryParameter("limit") else { return 100 }
        guard let value = Int(text), (1...1000).contains(value) else {
            responder.respondError(400, "limit must be a whole number from 1 to 1000")
            return nil
        }
        return value
    }

    /// The dead letters, newest first; `event_id` and `payload` as the JSON strings they
    /// were published as (bytes that are not UTF-8 show as U+FFFD).
    private func deadLetters(_ request: HTTPRequest, _ responder: HTTPResponder) {
        guard let limit = limit(request, responder) else { return }
        read(responder, deadLetterPage, [String(limit)]) { result in
            Self.respondArray(result, responder) { rows, row, out in
                out.write("{\"event_id\":" as StaticString)
                JSONString.writeQuoted(Self.fromHex(rows.string(row, 0)), to: out)
                out.write(",\"seq\":" as StaticString)
                out.write(rows.string(row, 1) ?? "null")
                out.write(",\"payload\":" as StaticString)
                if rows.isNull(row, 2) { out.write("null" as StaticString) } else { JSONString.writeQuoted(Self.fromHex(rows.string(row, 2)), to: out) }
                for (column, name) in [(3, "error"), (4, "failed_by"), (5, "failed_at")] {
                    out.write(",\"\(name)\":")
                    JSONString.writeQuoted(rows.string(row, column) ?? "", to: out)
                }
                out.write(byte: UInt8(ascii: "}"))
            }
        }
    }

    /// 200 with a JSON array of the result's rows, each written by `write`; 503 when the
    /// database did not answer.
    private static func respondArray(_ result: Result<PostgresResult, PostgresError>, _ responder: HTTPResponder,
                                     _ write: (PostgresResult, Int, ByteBuffer) -> Void) {
        switch result {
        case .success(let rows):
            let out = ByteBuffer(capacity: 256 * max(rows.rowCount, 1))
            out.write(byte: UInt8(ascii: "["))
            for row in 0..<rows.rowCount {
                if row > 0 { out.write(byte: UInt8(ascii: ",")) }
                write(rows, row, out)
            }
            out.write(byte: UInt8(ascii: "]"))
            responder.respond(HTTPResponse(status: 200, contentType: "application/json", body: out.readableBytesArray))
        case .failure(let error):
            responder.respondError(503, "database unavailable: \(error)")
        }
    }

    /// Text from PostgreSQL's hex encoding.
    static func fromHex(_ hex: String?) -> String {
        guard let hex else { return "" }
        var bytes: [UInt8] = []
        var high: UInt8?
        for c in hex.utf8 {
            guard let nibble = JSONScanner.hexValue(c) else { continue }
            if let h = high { bytes.append(h << 4 | UInt8(nibble)); high = nil } else { high = UInt8(nibble) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Runs `statement` on the read session when the budget gives it its turn; `answer`
    /// responds. With the read session down, 503 at once instead of a turn spent waiting.
    private func read(_ responder: HTTPResponder, _ statement: PostgresStatement, _ params: [String?],
                      _ answer: @escaping (Result<PostgresResult, PostgresError>) -> Void) {
        budget.submit(responder) { [db] done in
            guard db.state != .down && db.state != .closed else {
                answer(.failure(db.lastError ?? PostgresError(.closed, "connection closed")))
                return done()
            }
            db.execute(statement, params: params) { result in
                answer(result)
                done()
            }
        }
    }

    private func list(_ request: HTTPRequest, _ responder: HTTPResponder) {
        guard let limit = limit(request, responder) else { return }
        var statement = latestPage
        var params: [String?] = [String(limit)]
        if let text = request.queryParameter("before_seq") {
            guard let value = Int64(text), value >= 0 else {
                return responder.respondError(400, "before_seq must be a whole number >= 0")
            }
            statement = pageBefore
            params.append(String(value))
        }
        read(responder, statement, params) { result in
            Self.respondArray(result, responder) { rows, row, out in Self.writeEvent(rows, row, to: out) }
        }
    }

    private func one(_ request: HTTPRequest, _ responder: HTTPResponder) {
        let id = request.pathRemainder
        guard !id.isEmpty, id.utf8.count <= 255 else { return responder.respondError(400, "event_id must be 1 to 255 bytes") }
        read(responder, byID, [id]) { result in
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
