import Reactor
import ServiceKit

/// The HTTP API of one loop: `POST /publish`, `GET /health`, `GET /metrics`.
///
/// Bodies are decoded and validated here, on whichever loop accepted the connection. On
/// the hub's own loop a batch is queued for the hub's next group commit at once; on other
/// loops the turn's batches go to the hub in one hand-over and their seqs come back in one
/// reply once durable, so the per-event path takes no lock and crosses threads only per
/// loop turn. A request is answered 202 only when its events are synced to disk, 503 when
/// the log could not take them.
final class PublishFrontend {
    let loop: EventLoop
    let router = HTTPRouter()
    private let metrics: ProducerMetrics
    private let hubHandle: EventLoopHandle
    private let hub: LoopBound<BroadcastHub>
    private let localHub: BroadcastHub?
    private var batch = EventBatch()
    private var waiting: [Int: HTTPResponder] = [:]
    private var outgoing: [(token: Int, batch: EventBatch)] = []
    private var nextToken = 0
    /// The log's stream id, in every 202 and `/health`.
    let stream: String
    private let authToken: BearerToken?

    init(loop: EventLoop, hub: LoopBound<BroadcastHub>, hubHandle: EventLoopHandle, localHub: BroadcastHub?,
         stream: String, authToken: BearerToken?, metrics: ProducerMetrics) {
        self.loop = loop
        self.authToken = authToken
        self.stream = stream
        self.hub = hub
        self.hubHandle = hubHandle
        self.localHub = localHub
        self.metrics = metrics
        router.post("/publish") { [unowned self] request, responder in self.publish(request, responder) }
        router.get("/health") { [unowned self] _, responder in self.health(responder) }
        router.get("/metrics") { [unowned self] _, responder in
            self.metrics.requests.add()
            responder.respond(.text(self.metrics.registry.render(), contentType: MetricsRegistry.contentType))
        }
        if localHub == nil {
            loop.addBeforeSleepHook { [unowned self] in self.handOver() }
        }
    }

    private func publish(_ request: HTTPRequest, _ responder: HTTPResponder) {
        metrics.requests.add()
        if let authToken, !authToken.admits(authorization: request.headers["Authorization"]) {
            metrics.rejected.add()
            responder.respondError(401, "missing or wrong bearer token: publishing needs Authorization: Bearer <AUTH_TOKEN>")
            return
        }
        let failure = request.body.withUnsafeBytes { body -> PublishError? in
            do {
                try PublishDecoder.decode(body, into: &batch, acceptedAtMillis: WallClock.unixMillis())
                return nil
            } catch {
                return error as? PublishError ?? PublishError("malformed body")
            }
        }
        if let failure {
            metrics.rejected.add()
            responder.respondError(400, failure.message)
            return
        }
        if let localHub {
            let accepted = batch
            batch = EventBatch()
            localHub.publish([accepted]) { [unowned self] outcomes in self.respond(responder, outcomes[0]) }
            return
        }
        nextToken &+= 1
        waiting[nextToken] = responder
        outgoing.append((nextToken, batch))
        batch = EventBatch()
    }

    /// Hands this turn's batches to the hub; the seqs come back in one reply.
    private func handOver() {
        guard !outgoing.isEmpty else { return }
        let items = outgoing
        outgoing.removeAll(keepingCapacity: true)
        let hub = self.hub
        let me = LoopBound(self, on: loop)
        let home = loop.handle
        hubHandle.execute { hubLoop in
            hub.value(on: hubLoop).publish(items.map(\.batch)) { outcomes in
                let answers = zip(items, outcomes).map { (token: $0.token, outcome: $1) }
                home.execute { loop in me.value(on: loop).answer(answers) }
            }
        }
    }

    private func answer(_ results: [(token: Int, outcome: PublishOutcome)]) {
        for result in results {
            if let responder = waiting.removeValue(forKey: result.token) { respond(responder, result.outcome) }
        }
    }

    private func respond(_ responder: HTTPResponder, _ outcome: PublishOutcome) {
        switch outcome {
        case .accepted(let first, let last):
            responder.respond(Self.accepted(count: Int(last - first + 1), first: first, last: last, stream: stream))
        case .failed(let message):
            metrics.unavailable.add()
            responder.respondError(503, message)
        }
    }

    static func accepted(count: Int, first: UInt64, last: UInt64, stream: String) -> HTTPResponse {
        .json("{\"accepted\":\(count),\"first_seq\":\(first),\"last_seq\":\(last),\"stream\":\"\(stream)\"}", status: 202)
    }

    private func health(_ responder: HTTPResponder) {
        metrics.requests.add()
        responder.respond(json: "{\"status\":\"ok\",\"stream\":\"\(stream)\",\"last_seq\":\(metrics.lastSeq.current),\"clients\":\(metrics.clients.current),\"replay_events\":\(metrics.ringEvents.current),\"log_bytes\":\(metrics.logBytes.current)}")
    }
}
