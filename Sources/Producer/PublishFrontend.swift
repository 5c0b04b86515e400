import Reactor
import ServiceKit

/// The HTTP API of one loop: `POST /publish`, `GET /health`, `GET /metrics`.
///
/// Bodies are decoded and validated here, on whichever loop accepted the connection. On
/// the hub's own loop a batch is sequenced at once; on other loops the turn's batches go
/// to the hub in one hand-over and their seqs come back in one reply, so the per-event
/// path takes no lock and crosses threads only per loop turn.
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

    init(loop: EventLoop, hub: LoopBound<BroadcastHub>, hubHandle: EventLoopHandle, localHub: BroadcastHub?,
         metrics: ProducerMetrics) {
        self.loop = loop
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
        let failure = request.body.withUnsafeBytes { body -> PublishError? in
            do {
                try PublishDecoder.decode(body, into: &batch)
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
            let seqs = localHub.publish(batch)
            responder.respond(Self.accepted(count: batch.count, first: seqs.first, last: seqs.last))
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
            let broadcaster = hub.value(on: hubLoop)
            var results: [(token: Int, count: Int, first: UInt64, last: UInt64)] = []
            results.reserveCapacity(items.count)
            for item in items {
                let seqs = broadcaster.publish(item.batch)
                results.append((item.token, item.batch.count, seqs.first, seqs.last))
            }
            let answers = results
            home.execute { loop in me.value(on: loop).answer(answers) }
        }
    }

    private func answer(_ results: [(token: Int, count: Int, first: UInt64, last: UInt64)]) {
        for result in results {
            waiting.removeValue(forKey: result.token)?
                .respond(Self.accepted(count: result.count, first: result.first, last: result.last))
        }
    }

    static func accepted(count: Int, first: UInt64, last: UInt64) -> HTTPResponse {
        .json("{\"accepted\":\(count),\"first_seq\":\(first),\"last_seq\":\(last)}", status: 202)
    }

    private func health(_ responder: HTTPResponder) {
        metrics.requests.add()
        responder.respond(json: "{\"status\":\"ok\",\"last_seq\":\(metrics.lastSeq.current),\"clients\":\(metrics.clients.current),\"replay_events\":\(metrics.ringEvents.current)}")
    }
}
