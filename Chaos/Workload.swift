import Foundation
import Reactor
import TestSupport

/// One event as published: its id (raw bytes as a Swift string, a NUL included for the
/// poison ones) and the number in its payload, which is unique per publish attempt.
struct PublishedEvent: Sendable {
    var id: String
    var n: Int
}

/// A request to `POST /publish` and what came of it.
struct PublishAttempt: Sendable {
    enum Outcome: Sendable, Equatable {
        /// 202: the events got seqs `firstSeq...`, in order.
        case acked(firstSeq: Int)
        /// An answer other than 202, or a connect that failed: nothing was published.
        case refused(String)
        /// The request may have reached the producer and no answer came back: its events
        /// may or may not be in the stream (Jepsen's indeterminate "info" operation).
        case unknown(String)
    }

    var batch: Int
    var events: [PublishedEvent]
    /// The attempt holds events PostgreSQL cannot store (the producer should refuse it).
    var poison: Bool
    /// Seconds since the run began: when the request was sent and when it was answered.
    var sentAt: Double
    var answeredAt: Double
    var outcome: Outcome
}

/// The seeded stream: batches of new ids, duplicates within the batch, ids published
/// again from earlier batches, and now and then a poison event alone in its request.
struct StreamGenerator {
    private var rng: SeededRandom
    private let prefix: String
    private var nextNumber = 0
    private var nextID = 0
    private var batch = 0
    /// Ids published so far (storable ones), to draw republished ids from.
    private var pool: [String] = []

    init(seed: UInt64) {
        rng = SeededRandom(seed: seed, stream: 2)
        prefix = "c\(seed)-"
    }

    /// The next request's events and whether it is a poison request.
    mutating func nextBatch(maxBatch: Int) -> (batch: Int, events: [PublishedEvent], poison: Bool) {
        batch += 1
        if rng.chance(0.01) {
            nextNumber += 1
            // Either the id (a NUL) or the payload (a number numeric cannot hold) is
            // something PostgreSQL refuses; the producer is meant to refuse both at the door.
            let nulInID = rng.chance(0.5)
            let id = nulInID ? "\(prefix)poison-\(batch)\u{0}x" : "\(prefix)poison-\(batch)"
            return (batch, [PublishedEvent(id: id, n: -nextNumber)], true)
        }
        let size = rng.int(1...maxBatch)
        var events: [PublishedEvent] = []
        for _ in 0..<size {
            nextNumber += 1
            let id: String
            if !events.isEmpty && rng.chance(0.08) {
                id = rng.pick(events).id
            } else if !pool.isEmpty && rng.chance(0.05) {
                id = rng.pick(pool)
            } else {
                nextID += 1
                id = "\(prefix)\(nextID)"
                pool.append(id)
            }
            events.append(PublishedEvent(id: id, n: nextNumber))
        }
        return (batch, events, false)
    }

    /// The request body for a batch: `{"n": N}` payloads; a negative `n` marks the
    /// poison payload variant.
    static func body(_ events: [PublishedEvent], poison: Bool) -> String {
        let items = events.map { event -> String in
            let payload = poison && !event.id.contains("\u{0}") ? "{\"n\":\(event.n),\"big\":1e131072}" : "{\"n\":\(event.n)}"
            return "{\"event_id\":\(jsonString(event.id)),\"payload\":\(payload)}"
        }
        return items.count == 1 ? items[0] : "[" + items.joined(separator: ",") + "]"
    }

    /// A JSON string literal, control characters escaped.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Everything published, as the checker needs it. Thread-safe.
final class PublishHistory: @unchecked Sendable {
    private let lock = NSLock()
    private var attempts: [PublishAttempt] = []

    func append(_ attempt: PublishAttempt) {
        lock.lock()
        attempts.append(attempt)
        lock.unlock()
    }

    var all: [PublishAttempt] {
        lock.lock()
        defer { lock.unlock() }
        return attempts
    }

    /// (events acknowledged, attempts with no answer, poison requests refused).
    var counts: (acked: Int, unknown: Int, refusedPoison: Int) {
        lock.lock()
        defer { lock.unlock() }
        var result = (0, 0, 0)
        for attempt in attempts {
            switch attempt.outcome {
            case .acked: result.0 += attempt.events.count
            case .unknown: result.1 += 1
            case .refused: if attempt.poison { result.2 += 1 }
            }
        }
        return result
    }
}

/// Publishes the seeded stream at a steady rate from its own thread, one request per
/// connection, and records every answer in the history.
final class Publisher: @unchecked Sendable {
    private let history: PublishHistory
    private let port: Int
    private let rate: Int
    private let maxBatch: Int
    private let clock: RunClock
    private let lock = NSLock()
    private var generator: StreamGenerator
    private var running = false
    private var paused = true
    private var finished = true
    private var eventsSent = 0

    init(seed: UInt64, port: Int, rate: Int, maxBatch: Int, history: PublishHistory, clock: RunClock) {
        generator = StreamGenerator(seed: seed)
        self.port = port
        self.rate = rate
        self.maxBatch = maxBatch
        self.history = history
        self.clock = clock
    }

    /// Starts (or resumes) publishing.
    func resume() {
        lock.lock()
        paused = false
        let start = !running
        running = true
        if start { finished = false }
        lock.unlock()
        if start {
            let thread = Thread { [self] in loop() }
            thread.name = "chaos-publisher"
            thread.start()
        }
    }

    /// Stops sending new requests and waits for the one in flight.
    func pause() {
        lock.lock()
        paused = true
        lock.unlock()
        waitIdle()
    }

    /// Ends the thread for good.
    func stop() {
        lock.lock()
        running = false
        lock.unlock()
        waitIdle()
    }

    private var sending = false

    private func waitIdle() {
        while true {
            lock.lock()
            let busy = sending || (!running && !finished)
            lock.unlock()
            if !busy { return }
            usleep(10_000)
        }
    }

    private func loop() {
        var budgetStart = clock.now
        var budgetSent = 0
        while true {
            lock.lock()
            if !running { finished = true; lock.unlock(); return }
            if paused {
                lock.unlock()
                usleep(20_000)
                budgetStart = clock.now
                budgetSent = 0
                continue
            }
            sending = true
            lock.unlock()
            // Steady rate: the next request waits until the events sent so far are due.
            var due = budgetStart + Double(budgetSent) / Double(max(rate, 1))
            if clock.now - due > 1 {
                // Fell behind (the producer was down): carry on at the rate, no burst.
                budgetStart = clock.now
                budgetSent = 0
                due = budgetStart
            }
            let wait = due - clock.now
            if wait > 0 { usleep(UInt32(min(wait, 1) * 1e6)) }
            let (batch, events, poison) = generator.nextBatch(maxBatch: maxBatch)
            let attempt = send(batch: batch, events: events, poison: poison)
            history.append(attempt)
            budgetSent += events.count
            lock.lock()
            eventsSent += events.count
            sending = false
            lock.unlock()
            if case .acked = attempt.outcome {} else if !poison { usleep(100_000) }
        }
    }

    private func send(batch: Int, events: [PublishedEvent], poison: Bool) -> PublishAttempt {
        let body = StreamGenerator.body(events, poison: poison)
        let sentAt = clock.now
        var attempt = PublishAttempt(batch: batch, events: events, poison: poison, sentAt: sentAt, answeredAt: sentAt, outcome: .unknown(""))
        do {
            let (status, text) = try httpRequest(port: port, method: "POST", path: "/publish", body: body, timeoutSeconds: 15)
            attempt.answeredAt = clock.now
            if status == 202, let first = Self.firstSeq(text, count: events.count) {
                attempt.outcome = .acked(firstSeq: first)
            } else if status == 202 {
                attempt.outcome = .unknown("202 with an unexpected body: \(text.prefix(200))")
            } else {
                attempt.outcome = .refused("\(status) \(text.prefix(200))")
            }
        } catch let error as SocketError where error.operation.hasPrefix("connect") {
            attempt.answeredAt = clock.now
            attempt.outcome = .refused("\(error)")
        } catch {
            attempt.answeredAt = clock.now
            attempt.outcome = .unknown("\(error)")
        }
        return attempt
    }

    /// `first_seq` from a 202 body, when `accepted` and `last_seq` agree with the batch.
    static func firstSeq(_ body: String, count: Int) -> Int? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
              let accepted = object["accepted"] as? Int, let first = object["first_seq"] as? Int,
              let last = object["last_seq"] as? Int, accepted == count, last == first + count - 1 else { return nil }
        return first
    }
}

/// Seconds since the run began, on the monotonic clock.
final class RunClock: Sendable {
    private let origin = ContinuousClock.now

    var now: Double {
        let elapsed = ContinuousClock.now - origin
        let (seconds, attoseconds) = elapsed.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
