import Dedup
import Logging
import Reactor

/// Reads the settings of PostgreSQL and Redis that quietly weaken the guarantees, at every
/// connect (a reconnect may reach another server), and reports them in the log and the
/// metrics: PostgreSQL confirming inserts before they are on disk (`CommitDurability`),
/// Redis evicting keys when full (`KeyEviction`). A query that fails says nothing; the
/// next connect asks again.
struct BackendSettingsCheck {
    let metrics: ListenerMetrics
    let logger: Logger

    func postgresConnected(_ db: PostgresConnection) {
        db.query("SELECT current_setting('synchronous_commit')") { [metrics, logger] result in
            guard case .success(let rows) = result, let value = rows.rows.first?.first ?? nil else { return }
            let durability = CommitDurability(synchronousCommit: value)
            metrics.durableCommits.set(durability == .durable ? 1 : 0)
            if let warning = durability.warning { logger.warning("\(warning)") }
        }
    }

    /// On a cluster, asks the master a keyless command reaches.
    func redisConnected(_ redis: any RedisCommandClient) {
        redis.command([Array("INFO".utf8), Array("memory".utf8)]) { [metrics, logger] result in
            guard case .success(let reply) = result, let text = reply.string, let eviction = KeyEviction(info: text) else { return }
            metrics.redisMayEvict.set(eviction == .never ? 0 : 1)
            if let warning = eviction.warning { logger.warning("\(warning)") }
        }
    }
}
