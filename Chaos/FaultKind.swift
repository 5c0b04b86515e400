/// The faults the nemesis knows, by the name `--faults` takes.
enum FaultKind: String, CaseIterable, Sendable, Codable {
    /// A listener SIGKILLed, restarted after a pause (same or a new INSTANCE_ID).
    case listenerKill = "listener-kill"
    /// A listener SIGSTOPped past LOCK_TTL_MS, then SIGCONTed: a zombie whose claims expired.
    case listenerStop = "listener-stop"
    /// A listener SIGTERMed (it finishes or releases in-flight work), restarted after a pause.
    case listenerTerm = "listener-term"
    /// The producer SIGKILLed and restarted on the same DATA_DIR (needs the durable log).
    case producerKill = "producer-kill"
    /// Redis (with `--redis-cluster`: one master) SIGKILLed and restarted with its
    /// append-only file: claims survive.
    case redisRestart = "redis-restart"
    /// Redis (with `--redis-cluster`: one master) SIGKILLed and restarted without its
    /// append-only file: its claims and done-marks are gone, PostgreSQL alone must keep
    /// those ids unique.
    case redisWipe = "redis-wipe"
    /// With `--redis-cluster`: a run of slots and their keys moved to another master
    /// mid-stream, in the specification's order, so clients meet ASK and then MOVED.
    case redisSlotMigrate = "redis-slot-migrate"
    /// With `--redis-cluster`: one master SIGKILLed and its replica promoted at once, so
    /// the writes it had acknowledged and not yet replicated are gone; the old master
    /// comes back as the new one's replica.
    case redisFailover = "redis-failover"
    /// Redis SIGSTOPped a while, then SIGCONTed: every command waits, unanswered. With
    /// `--redis-cluster`: one master, past the node timeout, so its replica takes over and
    /// it comes back a zombie that clients may still write to until it learns it was
    /// replaced (the split brain Jepsen found in Redis Cluster).
    case redisPause = "redis-pause"
    /// PostgreSQL stopped (immediate mode: a crash), down for a while, started again.
    case postgresRestart = "postgres-restart"
    /// PostgreSQL stopped (immediate) and started again at once.
    case postgresFastRestart = "postgres-fast-restart"
    /// Every connection of one listener link reset (RST both ways).
    case linkReset = "link-reset"
    /// One listener link stops forwarding without closing: a half-open connection.
    case linkBlackhole = "link-blackhole"
    /// One listener link delays every chunk.
    case linkLatency = "link-latency"
    /// One listener link lets a request through and drops its reply, then resets.
    case linkCut = "link-cut"
    /// The producer SIGSTOPped a while, then SIGCONTed: a frozen VM or a long pause. Requests
    /// in flight get no answer until it continues; nothing it answered 202 may be lost.
    case producerStop = "producer-stop"
    /// PostgreSQL, the postmaster and every backend, SIGSTOPped a while, then SIGCONTed:
    /// every insert hangs with its connection open, then goes on.
    case postgresPause = "postgres-pause"
    /// The producer's disk fails every flush (`fdatasync`, `fsync`: EIO, nothing flushed) a
    /// while, then works again: what it wrote meanwhile must be answered 503 and cut from
    /// its log, never broadcast nor read back after a later kill.
    case producerDiskFail = "producer-disk-fail"

    /// Kinds that need something the binaries may not have yet.
    var needsDurableProducer: Bool { self == .producerKill || self == .producerDiskFail }
    /// Kinds played through a library preloaded into a process, which a C compiler builds.
    var needsCompiler: Bool { self == .producerDiskFail }
    /// Kinds that only a Redis Cluster has.
    var needsRedisCluster: Bool { self == .redisSlotMigrate || self == .redisFailover }

    /// One line for `--help`.
    var summary: String {
        switch self {
        case .listenerKill: return "SIGKILL a listener; restart it (same or new INSTANCE_ID)"
        case .listenerStop: return "SIGSTOP a listener past LOCK_TTL_MS, then SIGCONT (a zombie)"
        case .listenerTerm: return "SIGTERM a listener; restart it (same or new INSTANCE_ID)"
        case .producerKill: return "SIGKILL the producer; restart on its DATA_DIR (only with a durable-log producer)"
        case .redisRestart: return "SIGKILL Redis (a cluster: one master), restart it with its append-only file"
        case .redisWipe: return "SIGKILL Redis (a cluster: one master), restart it without its append-only file (claims lost)"
        case .redisSlotMigrate: return "move a run of slots and their keys to another master mid-stream (--redis-cluster only)"
        case .redisPause: return "SIGSTOP Redis a while, then SIGCONT (a cluster: one master, past the node timeout, so its replica takes over and it comes back a zombie)"
        case .redisFailover: return "SIGKILL a master, promote its replica at once (unreplicated writes lost); the old one rejoins as replica (--redis-cluster only)"
        case .postgresRestart: return "stop PostgreSQL (immediate), keep it down a while, start it"
        case .postgresFastRestart: return "stop PostgreSQL (immediate) and start it at once"
        case .linkReset: return "reset every connection of one listener link (producer, redis or postgres)"
        case .linkBlackhole: return "black-hole one listener link (half-open: nothing moves, nothing closes)"
        case .linkLatency: return "add latency to one listener link"
        case .linkCut: return "one listener link: a request goes through, its reply is dropped, then reset"
        case .producerStop: return "SIGSTOP the producer a while, then SIGCONT (requests in flight wait, unanswered)"
        case .postgresPause: return "SIGSTOP PostgreSQL (postmaster and backends) a while, then SIGCONT"
        case .producerDiskFail: return "the producer's flushes fail with EIO a while (only with a durable-log producer and a C compiler)"
        }
    }
}

/// A link between a listener and a service, each through its own fault proxy.
enum LinkName: String, CaseIterable, Sendable, Codable {
    case producer, redis, postgres

    /// The links that have a proxy. A cluster client reaches the nodes at the addresses
    /// the cluster announces, the same for every client, so with `--redis-cluster` the
    /// Redis link has none (node faults stand in for it).
    static func proxied(redisCluster: Bool) -> [LinkName] {
        redisCluster ? [.producer, .postgres] : allCases
    }
}
