import ServiceKit

/// The producer's metrics, shared by every loop (relaxed atomics, updated per batch).
final class ProducerMetrics: Sendable {
    let registry = MetricsRegistry()
    let published: Counter
    let rejected: Counter
    let requests: Counter
    let frames: Counter
    let bytes: Counter
    let slowClientCloses: Counter
    let replayRequests: Counter
    let gaps: Counter
    let gapEvents: Counter
    let clients: Gauge
    let lastSeq: Gauge
    let ringEvents: Gauge
    let ringBytes: Gauge
    let unavailable: Counter
    let fsyncs: Counter
    let syncedEvents: Counter
    let syncMicros: Counter
    let logWriteErrors: Counter
    let diskReplayEvents: Counter
    let logBytes: Gauge
    let logSegments: Gauge

    init() {
        published = registry.counter("dedup_producer_published_total", help: "Events accepted and sequenced.")
        rejected = registry.counter("dedup_producer_publish_rejected_total", help: "Publish requests refused (4xx).")
        requests = registry.counter("dedup_producer_http_requests_total", help: "HTTP requests answered.")
        frames = registry.counter("dedup_producer_broadcast_frames_total", help: "WebSocket frames sent to subscribers.")
        bytes = registry.counter("dedup_producer_broadcast_bytes_total", help: "Payload bytes sent to subscribers.")
        slowClientCloses = registry.counter("dedup_producer_slow_client_closes_total", help: "Subscribers closed with 1013 for being too slow.")
        replayRequests = registry.counter("dedup_producer_replay_requests_total", help: "Subscribers that connected with from_seq.")
        gaps = registry.counter("dedup_producer_replay_gaps_total", help: "Replay requests reaching back past the retained log.")
        gapEvents = registry.counter("dedup_producer_replay_gap_events_total", help: "Events reported missing to resuming subscribers.")
        clients = registry.gauge("dedup_producer_connected_clients", help: "WebSocket subscribers connected.")
        lastSeq = registry.gauge("dedup_producer_last_seq", help: "Highest seq given.")
        ringEvents = registry.gauge("dedup_producer_replay_ring_events", help: "Events retained in the replay ring.")
        ringBytes = registry.gauge("dedup_producer_replay_ring_bytes", help: "Bytes the retained events occupy.")
        unavailable = registry.counter("dedup_producer_publish_unavailable_total", help: "Publish requests answered 503 because the event log could not take them.")
        fsyncs = registry.counter("dedup_producer_fsyncs_total", help: "Group commits (one write and one fdatasync each).")
        syncedEvents = registry.counter("dedup_producer_fsynced_events_total", help: "Events made durable; divided by fsyncs: events per fsync.")
        syncMicros = registry.counter("dedup_producer_fsync_microseconds_total", help: "Time spent writing and syncing groups; divided by fsyncs: mean sync latency.")
        logWriteErrors = registry.counter("dedup_producer_log_write_errors_total", help: "Group commits that failed (disk full or failing).")
        diskReplayEvents = registry.counter("dedup_producer_replay_disk_events_total", help: "Events replayed from the log on disk (older than the ring).")
        logBytes = registry.gauge("dedup_producer_log_bytes", help: "Bytes of records in the event log on disk.")
        logSegments = registry.gauge("dedup_producer_log_segments", help: "Segment files in the event log.")
    }
}
