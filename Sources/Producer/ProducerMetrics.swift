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

    init() {
        published = registry.counter("dedup_producer_published_total", help: "Events accepted and sequenced.")
        rejected = registry.counter("dedup_producer_publish_rejected_total", help: "Publish requests refused (4xx).")
        requests = registry.counter("dedup_producer_http_requests_total", help: "HTTP requests answered.")
        frames = registry.counter("dedup_producer_broadcast_frames_total", help: "WebSocket frames sent to subscribers.")
        bytes = registry.counter("dedup_producer_broadcast_bytes_total", help: "Payload bytes sent to subscribers.")
        slowClientCloses = registry.counter("dedup_producer_slow_client_closes_total", help: "Subscribers closed with 1013 for being too slow.")
        replayRequests = registry.counter("dedup_producer_replay_requests_total", help: "Subscribers that connected with from_seq.")
        gaps = registry.counter("dedup_producer_replay_gaps_total", help: "Replay requests reaching back past the ring.")
        gapEvents = registry.counter("dedup_producer_replay_gap_events_total", help: "Events reported missing to resuming subscribers.")
        clients = registry.gauge("dedup_producer_connected_clients", help: "WebSocket subscribers connected.")
        lastSeq = registry.gauge("dedup_producer_last_seq", help: "Highest seq given.")
        ringEvents = registry.gauge("dedup_producer_replay_ring_events", help: "Events retained in the replay ring.")
        ringBytes = registry.gauge("dedup_producer_replay_ring_bytes", help: "Bytes the retained events occupy.")
    }
}
