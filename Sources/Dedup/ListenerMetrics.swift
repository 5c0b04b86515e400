import ServiceKit

/// The interface's counters (each with the `instance` label) and the listener's own.
package final class ListenerMetrics: Sendable {
    package let registry: MetricsRegistry
    package let received: Counter
    package let claimed: Counter
    package let duplicate: Counter
    package let processed: Counter
    package let stored: Counter
    package let recovered: Counter
    package let deadLettered: Counter
    package let streamReplaced: Counter
    package let malformed: Counter
    package let gaps: Counter
    package let gapEvents: Counter
    package let rewinds: Counter
    package let storeFailures: Counter
    package let insertStatements: Counter
    package let claimFailures: Counter
    package let redisRedirections: Counter
    package let redisSlotMapUpdates: Counter
    package let inFlight: Gauge
    package let inFlightBytes: Gauge
    package let lag: Gauge
    package let publishToStored: DurationHistogram
    package let watching: Gauge
    package let deferred: Gauge
    package let sharing: Gauge
    package let claiming: Gauge
    package let watermark: Gauge
    package let durableCommits: Gauge
    package let redisMayEvict: Gauge

    package init(instance: String) {
        registry = MetricsRegistry(labels: [("instance", instance)])
        received = registry.counter("dedup_events_received_total", help: "Events received from the producer.")
        claimed = registry.counter("dedup_events_claimed_total", help: "Events this instance claimed in Redis.")
        duplicate = registry.counter("dedup_events_duplicate_total", help: "Events skipped because they were done or finished by another instance.")
        processed = registry.counter("dedup_events_processed_total", help: "Events this instance processed.")
        stored = registry.counter("dedup_events_stored_total", help: "Rows this instance inserted into PostgreSQL.")
        recovered = registry.counter("dedup_events_recovered_total", help: "Events taken over from an owner that died or failed.")
        deadLettered = registry.counter("dedup_events_dead_lettered_total", help: "Events PostgreSQL refused for good, kept in dead_letters.")
        streamReplaced = registry.counter("dedup_stream_replaced_total", help: "Times the producer served another stream than the one this instance resumed (its log was replaced).")
        malformed = registry.counter("dedup_stream_malformed_lines_total", help: "Lines from the producer that were not valid events.")
        gaps = registry.counter("dedup_stream_gaps_total", help: "Gaps the producer reported on resume.")
        gapEvents = registry.counter("dedup_stream_gap_events_total", help: "Events the producer no longer had when this instance resumed.")
        rewinds = registry.counter("dedup_stream_rewinds_total", help: "Times this instance asked the producer again for events it held for another listener that could not vouch for them, to claim them itself.")
        storeFailures = registry.counter("dedup_store_failures_total", help: "Batch inserts that failed and were retried.")
        insertStatements = registry.counter("dedup_insert_statements_total", help: "INSERT statements sent for events (rows stored per statement: dedup_events_stored_total over this).")
        claimFailures = registry.counter("dedup_claim_failures_total", help: "Claim round trips that failed and were retried.")
        redisRedirections = registry.counter("dedup_redis_redirections_total", help: "Redis Cluster MOVED and ASK redirections followed (slots migrating, or a stale slot map); 0 on a single node.")
        redisSlotMapUpdates = registry.counter("dedup_redis_slot_map_updates_total", help: "Redis Cluster slot maps read and applied (at start, and after a redirection or a lost node); 0 on a single node.")
        inFlight = registry.gauge("dedup_events_in_flight", help: "Events received and not yet finished.")
        inFlightBytes = registry.gauge("dedup_events_in_flight_bytes", help: "Event bytes received and not yet finished (bounded by MAX_IN_FLIGHT_BYTES).")
        lag = registry.gauge("dedup_stream_lag_events", help: "Highest seq received minus the watermark: events received and not yet finished, in seq terms.")
        publishToStored = registry.histogram("dedup_publish_to_stored_seconds",
                                             help: "From the producer's accept time (the line's ts) to this instance's insert completing.",
                                             bounds: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30])
        watching = registry.gauge("dedup_events_watching", help: "Events claimed by another instance that this one watches.")
        deferred = registry.gauge("dedup_events_deferred", help: "Events held (as seqs) for the claimer until it shows them finished.")
        sharing = registry.gauge("dedup_listeners_sharing", help: "Live listeners taking part on this stream (one claims, the others hold for it), this one included.")
        claiming = registry.gauge("dedup_listener_claiming", help: "1 while this listener is the one that claims (the live listener taking part longest); the others hold what they receive for it.")
        watermark = registry.gauge("dedup_stream_watermark_seq", help: "Highest seq at or below which everything is finished.")
        redisMayEvict = registry.gauge("dedup_redis_may_evict_keys", help: "1 when Redis has a memory limit and a maxmemory-policy that evicts keys (ours all have TTLs), so a full Redis drops claims and done markers and events are processed again; 0 with noeviction or no limit, and until first checked.")
        durableCommits = registry.gauge("dedup_postgres_durable_commits", help: "1 when PostgreSQL confirms this instance's inserts only once they are on disk (synchronous_commit not off), 0 when a crash of PostgreSQL could lose confirmed rows; 1 until first checked.")
        durableCommits.set(1)
    }
}
