import Logging
import Reactor

/// Where each instance's watermark survives restarts: a small table in the same database,
/// written a few times a second when it moved, read once at start.
final class OffsetStore {
    private let db: PostgresConnection
    private let instance: String
    private let logger: Logger
    private var saved: UInt64?
    private var saving = false

    static let schema = """
        CREATE TABLE IF NOT EXISTS listener_offsets (
          instance_id TEXT PRIMARY KEY,
          seq         BIGINT NOT NULL,
          updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """

    init(db: PostgresConnection, instance: String, logger: Logger) {
        self.db = db
        self.instance = instance
        self.logger = logger
    }

    /// Creates the tables and reads the stored watermark (nil for a new instance), retrying
    /// until PostgreSQL answers.
    func load(_ done: @escaping (UInt64?) -> Void) {
        PostgresSchema.createEventsTable(on: db) { [weak self] result in
            guard let self else { return }
            if case .failure(let error) = result { return self.retryLoad(error, done) }
            self.db.query(Self.schema) { result in
                if case .failure(let error) = result { return self.retryLoad(error, done) }
                self.db.query("SELECT seq FROM listener_offsets WHERE instance_id = $1", params: [self.instance]) { result in
                    switch result {
                    case .success(let rows):
                        let seq = rows.rowCount > 0 ? rows.string(0, 0).flatMap { UInt64($0) } : nil
                        self.saved = seq
                        done(seq)
                    case .failure(let error):
                        self.retryLoad(error, done)
                    }
                }
            }
        }
    }

    private func retryLoad(_ error: PostgresError, _ done: @escaping (UInt64?) -> Void) {
        logger.warning("cannot read the stored watermark yet (\(error)); retrying")
        db.loop.schedule(in: .milliseconds(500)) { [weak self] in self?.load(done) }
    }

    /// Saves `watermark` if it moved since the last save.
    func save(_ watermark: UInt64, completion: (() -> Void)? = nil) {
        guard watermark != saved, !saving else { completion?(); return }
        saving = true
        db.query("""
            INSERT INTO listener_offsets (instance_id, seq) VALUES ($1, $2)
            ON CONFLICT (instance_id) DO UPDATE SET seq = EXCLUDED.seq, updated_at = now()
            """, params: [instance, String(watermark)]) { [weak self] result in
            guard let self else { return }
            self.saving = false
            if case .success = result { self.saved = watermark }
            completion?()
        }
    }
}
