import Foundation
import Histogram
import Reactor
import ServiceKit

/// Drives a flood on one loop: keeps every connection's pipeline full (or paces POSTs to
/// the requested rate), records each POST's latency in an HDR histogram, and prints a
/// live progress line.
final class FloodRunner {
    private let loop: EventLoop
    private let target: FloodTarget
    private let plan: FloodPlan
    /// Every POST's headers, built once.
    private let headers: [(String, String)]
    private var clients: [HTTPClient] = []
    private var rng: SplitMix64
    private var generated = 0
    private var distinct = 0
    private var accepted = 0
    private var errors = 0
    private var postsSent = 0
    private var postsAnswered = 0
    private var firstError: String?
    private var latencies = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    private let body = ByteBuffer(capacity: 64 * 1024)
    private let padding: [UInt8]
    private var startNanos: UInt64 = 0
    private var endNanos: UInt64 = 0
    private var progress: ProgressLine
    private var pacer: TimerHandle?
    private var reconnects = 0

    init(loop: EventLoop, target: FloodTarget, plan: FloodPlan, progressToStderr: Bool) {
        self.loop = loop
        self.target = target
        self.plan = plan
        headers = [("Content-Type", "application/json")] + (plan.token.map { [("Authorization", $0.authorizationHeader)] } ?? [])
        rng = SplitMix64(seed: plan.seed)
        // {"t":<19 digits>,"pad":"..."} is 29 bytes around the padding.
        padding = Array(repeating: UInt8(ascii: "x"), count: max(0, plan.payloadBytes - 29))
        progress = ProgressLine(label: "flood", toStderr: progressToStderr)
    }

    var isFinished: Bool { postsAnswered == postsSent && generated == plan.count && endNanos != 0 }

    func start() throws {
        startNanos = loop.nowNanos
        for _ in 0..<plan.connections { clients.append(try connect()) }
        pump()
        tick()
    }

    private func connect() throws -> HTTPClient {
        let client = try HTTPClient(loop: loop, host: target.host, port: target.port)
        client.onClose = { [weak self, weak client] error in
            guard let self, let client else { return }
            self.replace(client, after: error)
        }
        return client
    }

    private func replace(_ client: HTTPClient, after error: SocketError?) {
        guard let index = clients.firstIndex(where: { $0 === client }) else { return }
        reconnects += 1
        if firstError == nil, let error { firstError = "connection: \(error)" }
        // Back off briefly so a dead producer is not hammered with connects.
        loop.schedule(in: .milliseconds(100)) { [weak self] in
            guard let self, !self.isFinished, let fresh = try? self.connect() else { return }
            self.clients[index] = fresh
            self.pump()
        }
    }

    /// Events the rate allows by now (all remaining when unpaced).
    private func allowance() -> Int {
        guard plan.rate > 0 else { return plan.count - generated }
        let elapsed = Double(loop.nowNanos - startNanos) / 1e9
        return min(plan.count, Int(elapsed * Double(plan.rate)) + plan.batch) - generated
    }

    private func pump() {
        var budget = allowance()
        while generated < plan.count && budget > 0 {
            guard let client = clients.min(by: { $0.inFlight < $1.inFlight }), client.isOpen,
                  client.inFlight < plan.pipeline else { break }
            let n = min(plan.batch, plan.count - generated)
            // Paced: wait until a whole batch is due, so --rate keeps --batch's POST size.
            if budget < n { break }
            sendBatch(n, on: client)
            budget -= n
        }
        if generated == plan.count && postsAnswered == postsSent { finish() }
    }

    private func sendBatch(_ n: Int, on client: HTTPClient) {
        body.clear()
        body.write(byte: UInt8(ascii: "["))
        let now = UInt64(Date().timeIntervalSince1970 * 1e9)
        for i in 0..<n {
            if i > 0 { body.write(byte: UInt8(ascii: ",")) }
            let index: Int
            if distinct > 0 && Double(rng.next() >> 11) / Double(1 << 53) < plan.duplicates {
                index = Int(rng.next() % UInt64(distinct))
            } else {
                index = distinct
                distinct += 1
            }
            body.write("{\"event_id\":\"" as StaticString)
            body.write(plan.idPrefix)
            body.write(decimal: index)
            body.write("\",\"payload\":{\"t\":" as StaticString)
            body.write(decimal: Int(now))
            body.write(",\"pad\":\"" as StaticString)
            body.write(padding)
            body.write("\"}}" as StaticString)
        }
        body.write(byte: UInt8(ascii: "]"))
        generated += n
        postsSent += 1
        let sentAt = loop.nowNanos
        body.withReadableBytes { raw in
            client.send(method: "POST", path: target.path, headers: headers,
                        body: raw) { [unowned self] result in
                self.postsAnswered += 1
                _ = self.latencies.record((self.loop.nowNanos - sentAt) / 1_000)
                switch result {
                case .success(let response) where response.status == 202:
                    self.accepted += n
                case .success(let response):
                    self.errors += n
                    if self.firstError == nil { self.firstError = "HTTP \(response.status): \(response.bodyString.prefix(200))" }
                case .failure(let error):
                    self.errors += n
                    if self.firstError == nil { self.firstError = error.message }
                }
                self.pump()
            }
        }
    }

    private func tick() {
        progress.update(done: accepted + errors, total: plan.count,
                        detail: "sent \(generated), accepted \(accepted), errors \(errors)", nowNanos: loop.nowNanos,
                        startNanos: startNanos)
        guard endNanos == 0 else { return }
        pacer = loop.schedule(in: .milliseconds(plan.rate > 0 ? 5 : 100)) { [weak self] in
            guard let self else { return }
            self.pump()
            self.tick()
        }
    }

    private func finish() {
        guard endNanos == 0 else { return }
        endNanos = loop.nowNanos
        if let pacer { loop.cancel(pacer) }
        progress.finish(done: accepted + errors, total: plan.count,
                        detail: "sent \(generated), accepted \(accepted), errors \(errors)", nowNanos: endNanos,
                        startNanos: startNanos)
        for client in clients { client.onClose = nil; client.close() }
    }

    func summary() -> FloodSummary {
        let seconds = Double(endNanos - startNanos) / 1e9
        func ms(_ p: Double) -> Double { Double(latencies.valueAtPercentile(p)) / 1000 }
        return FloodSummary(events: generated, distinct: distinct, accepted: accepted, errors: errors,
                            posts: postsSent, connections: plan.connections, seconds: seconds,
                            p50: ms(50), p99: ms(99), p999: ms(99.9), max: Double(latencies.max) / 1000,
                            idPrefix: plan.idPrefix, firstError: firstError)
    }
}

/// What a flood did.
struct FloodSummary {
    let events, distinct, accepted, errors, posts, connections: Int
    let seconds, p50, p99, p999, max: Double
    let idPrefix: String
    let firstError: String?

    var eventsPerSecond: Double { seconds > 0 ? Double(accepted) / seconds : 0 }

    var text: String {
        var s = "flood: \(events) events (\(distinct) distinct ids, \(events - distinct) duplicates) in \(posts) POSTs over \(connections) connection(s)\n"
        s += "  duration \(fmt(seconds)) s, \(Int(eventsPerSecond)) events/s accepted\n"
        s += "  accepted \(accepted), errors \(errors)\n"
        s += "  POST latency p50 \(fmt(p50)) ms, p99 \(fmt(p99)) ms, p99.9 \(fmt(p999)) ms, max \(fmt(max)) ms"
        if let firstError { s += "\n  first error: \(firstError)" }
        return s
    }

    var json: String {
        var s = "{\"events\":\(events),\"distinct\":\(distinct),\"accepted\":\(accepted),\"errors\":\(errors),"
        s += "\"posts\":\(posts),\"connections\":\(connections),\"seconds\":\(fmt(seconds, 4)),"
        s += "\"events_per_second\":\(Int(eventsPerSecond)),\"latency_ms\":{\"p50\":\(fmt(p50)),\"p99\":\(fmt(p99)),"
        s += "\"p99_9\":\(fmt(p999)),\"max\":\(fmt(max))},\"id_prefix\":\(JSONString.quoted(idPrefix))"
        if let firstError { s += ",\"first_error\":\(JSONString.quoted(firstError))" }
        return s + "}"
    }

    private func fmt(_ v: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", v) }
}
