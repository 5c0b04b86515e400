import Logging
import Reactor

/// Where watermarks survive restarts: one row per (stream, instance) in the same
/// database, written a few times a second when it moved, read once at start.
package final class WatermarkStore {
    /// Where to resume: the stream last seen and the seq after which to ask for events.
    package struct Resume: Equatable {
        package var stream: String
        package var watermark: UInt64
        /// True when the watermark is another instance's (this one had none saved).
        package var fromGroup: Bool
    }

    private let db: PostgresConnection
    private let instance: String
    private let logger: Logger
    private var saved: (stream: String, seq: UInt64)?
    private var saving = false

    package init(db: PostgresConnection, instance: String, logger: Logger) {
        self.db = db
        self.instance = instance
        self.logger = logger
    }

    /// Creates the tables and finds where to resume, retrying until PostgreSQL answers.
    /// The stream is the one any listener saved last (the producer's, unless its log was
    /// replaced since); the watermark is this instance's for it, or else the highest any
    /// instance saved for it (everything at or below a saved watermark is finished, so
    /// the highest is safe), or nil when nobody ever saved one: then everything the
    /// producer retains is asked for, never "live only".
    package func load(_ done: @escaping (Resume?) -> Void) {
        ListenerSchema.migrate(on: db, logger: logger) { [weak self] result in
            guard let self else { return }
            if case .failure(let error) = result { return self.retryLoad(error, done) }
            self.db.query("""
                WITH current AS (SELECT stream FROM listener_watermarks ORDER BY updated_at DESC LIMIT 1)
                SELECT current.stream,
                  (SELECT seq FROM listener_watermarks w WHERE w.stream = current.stream AND w.instance_id = $1),
                  (SELECT max(seq) FROM listener_watermarks w WHERE w.stream = current.stream)
                FROM current
                """, params: [self.instance]) { result in
                switch result {
                case .success(let rows) where rows.rowCount > 0:
                    let stream = rows.string(0, 0) ?? ""
                    let own = rows.string(0, 1).flatMap { UInt64($0) }
                    let group = rows.string(0, 2).flatMap { UInt64($0) } ?? 0
                    if let own { self.saved = (stream, own) }
                    done(Resume(stream: stream, watermark: own ?? group, fromGroup: own == nil))
                case .success:
                    done(nil)
                case .failure(let error):
                    self.retryLoad(error, done)
                }
            }
        }
    }

    private func retryLoad(_ error: PostgresError, _ done: @escaping (Resume?) -> Void) {
        logger.warning("cannot read the stored watermarks yet (\(error)); retrying")
        db.loop.schedule(in: .milliseconds(500)) { [weak self] in self?.load(done) }
    }

    /// Saves `watermark` for `stream` if it moved since the last save.
    package func save(stream: String, _ watermark: UInt64, completion: (() -> Void)? = nil) {
        if let saved, saved.stream == stream, saved.seq == watermark { completion?(); return }
        guard !saving else { completion?(); return }
        saving = true
        db.query("""
            INSERT INTO listener_watermarks (stream, instance_id, seq) VALUES ($1, $2, $3)
            ON CONFLICT (stream, instance_id) DO UPDATE SET seq = EXCLUDED.seq, updated_at = now()
            """, params: [stream, instance, String(watermark)]) { [weak self] result in
            guard let self else { return }
            self.saving = false
            if case .success = result { self.saved = (stream, watermark) }
            completion?()
        }
    }
}
