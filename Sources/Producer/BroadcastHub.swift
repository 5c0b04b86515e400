import Logging
import Reactor

/// Owns the sequence, the replay ring and every WebSocket subscriber, on one loop (the
/// hub loop). Every subscriber is a cursor into the ring: live broadcast and replay are
/// the same operation (send the lines after the cursor), so a reconnecting listener
/// switches from replay to live without a gap or a duplicate, and a slow one costs no
/// memory beyond its socket's high-water mark: its backlog is the ring itself.
///
/// Scaling: publish requests are parsed and validated on every loop; only the already
/// encoded batches reach the hub, once per loop turn per loop, so the per-event work on
/// the hub is one copy into the ring and one copy per subscriber frame.
final class BroadcastHub {
    let loop: EventLoop
    let ring: ReplayRing
    let metrics: ProducerMetrics
    let logger: Logger
    /// Largest frame sent; everything ready in one turn goes out in frames up to this.
    let maxFrameBytes: Int
    /// A subscriber that cannot take bytes for this long while behind is closed with 1013.
    let slowClientTimeoutNanos: UInt64
    private var subscribers: [Subscriber] = []
    private var stallTimer: TimerHandle?

    init(loop: EventLoop, replayCapacity: Int, arenaBytes: Int, maxFrameBytes: Int = 256 * 1024,
         slowClientTimeoutMillis: Int, metrics: ProducerMetrics, logger: Logger) {
        self.loop = loop
        ring = ReplayRing(capacity: replayCapacity, arenaSize: arenaBytes)
        self.maxFrameBytes = maxFrameBytes
        self.slowClientTimeoutNanos = UInt64(slowClientTimeoutMillis) * 1_000_000
        self.metrics = metrics
        self.logger = logger
        loop.addBeforeSleepHook { [unowned self] in self.feedAll() }
        scheduleStallCheck()
    }

    /// The seq the next event will get.
    var nextSeq: UInt64 { ring.lastSeq + 1 }

    /// Sequences a batch into the ring; subscribers get it before the loop sleeps.
    /// Returns the first and last seq given.
    func publish(_ batch: EventBatch) -> (first: UInt64, last: UInt64) {
        let first = ring.lastSeq + 1
        batch.forEach { rest in ring.append(rest: rest) }
        metrics.published.add(batch.count)
        metrics.lastSeq.set(Int(ring.lastSeq))
        metrics.ringEvents.set(ring.count)
        metrics.ringBytes.set(ring.retainedBytes)
        return (first, ring.lastSeq)
    }

    /// Largest event line the ring can hold (bigger ones are refused at publish time).
    var maxLineBytes: Int { ring.maxLineBytes }

    // MARK: subscribers

    /// A new WebSocket client: `fromSeq` is its `?from_seq=` (nil: live only).
    func subscribe(_ socket: WebSocketConnection, fromSeq: UInt64?) {
        let subscriber = Subscriber(socket: socket, hub: self)
        socket.delegate = subscriber
        subscribers.append(subscriber)
        metrics.clients.set(subscribers.count)
        guard let fromSeq else {
            subscriber.cursor = ring.lastSeq + 1
            logger.info("subscriber \(socket.connection.peerDescription) connected, live from seq \(subscriber.cursor)")
            return
        }
        metrics.replayRequests.add()
        var cursor = fromSeq &+ 1
        if cursor > ring.lastSeq + 1 {
            // Ahead of us: it saw a previous run of the producer (seqs restart per run).
            logger.warning("subscriber \(socket.connection.peerDescription) asked from_seq=\(fromSeq) beyond last seq \(ring.lastSeq); replaying everything retained")
            cursor = ring.count > 0 ? ring.firstSeq : ring.lastSeq + 1
        }
        let oldest = ring.count > 0 ? ring.firstSeq : ring.lastSeq + 1
        if cursor < oldest {
            let missingFrom = cursor
            let missingTo = oldest - 1
            metrics.gaps.add()
            metrics.gapEvents.add(Int(missingTo - missingFrom + 1))
            logger.warning("subscriber \(socket.connection.peerDescription) asked from_seq=\(fromSeq): seqs \(missingFrom)-\(missingTo) are no longer in the replay ring; reporting the gap")
            socket.send(text: "{\"gap\":{\"from\":\(missingFrom),\"to\":\(missingTo)}}")
            cursor = oldest
        }
        subscriber.cursor = cursor
        logger.info("subscriber \(socket.connection.peerDescription) connected, replaying from seq \(cursor) (last \(ring.lastSeq))")
        feed(subscriber)
    }

    func unsubscribe(_ subscriber: Subscriber, code: WebSocketCloseCode) {
        guard let index = subscribers.firstIndex(where: { $0 === subscriber }) else { return }
        subscribers.remove(at: index)
        metrics.clients.set(subscribers.count)
        logger.info("subscriber \(subscriber.peer) disconnected (code \(code.rawValue)) at seq \(subscriber.cursor &- 1)")
    }

    private func feedAll() {
        for subscriber in subscribers where subscriber.cursor <= ring.lastSeq { feed(subscriber) }
    }

    /// Sends the lines after the subscriber's cursor while its socket takes them.
    func feed(_ subscriber: Subscriber) {
        let socket = subscriber.socket
        while subscriber.cursor <= ring.lastSeq && socket.isOpen && socket.isWritable {
            guard ring.retains(subscriber.cursor) else {
                closeSlow(subscriber, reason: "fell behind the replay ring")
                return
            }
            let run = ring.run(from: subscriber.cursor, maxBytes: maxFrameBytes)
            socket.send(textBytes: run.bytes)
            metrics.frames.add()
            metrics.bytes.add(run.bytes.count)
            subscriber.cursor = run.lastSeq + 1
        }
        if subscriber.cursor > ring.lastSeq || socket.isWritable { subscriber.stalledSince = nil }
    }

    private func closeSlow(_ subscriber: Subscriber, reason: String) {
        metrics.slowClientCloses.add()
        logger.warning("closing slow subscriber \(subscriber.peer) at seq \(subscriber.cursor &- 1): \(reason); it can resume with from_seq")
        subscriber.socket.close(code: .tryAgainLater, reason: "too slow: resume with from_seq")
    }

    private func scheduleStallCheck() {
        stallTimer = loop.schedule(in: .milliseconds(250)) { [weak self] in
            guard let self else { return }
            let now = self.loop.nowNanos
            for subscriber in self.subscribers where subscriber.socket.isOpen {
                let behind = subscriber.cursor <= self.ring.lastSeq
                if behind && !subscriber.socket.isWritable {
                    let since = subscriber.stalledSince ?? now
                    subscriber.stalledSince = since
                    if now - since >= self.slowClientTimeoutNanos {
                        self.closeSlow(subscriber, reason: "took no bytes for \(self.slowClientTimeoutNanos / 1_000_000) ms")
                    }
                } else {
                    subscriber.stalledSince = nil
                }
            }
            self.scheduleStallCheck()
        }
    }

    var subscriberCount: Int { subscribers.count }
}

/// One WebSocket client of the broadcast: a cursor into the ring.
final class Subscriber: WebSocketDelegate {
    let socket: WebSocketConnection
    unowned let hub: BroadcastHub
    let peer: String
    /// The next seq to send.
    var cursor: UInt64 = 1
    var stalledSince: UInt64?

    init(socket: WebSocketConnection, hub: BroadcastHub) {
        self.socket = socket
        self.hub = hub
        peer = socket.connection.peerDescription
    }

    func webSocket(_ socket: WebSocketConnection, didReceiveMessage opcode: WebSocketOpcode, bytes: UnsafeRawBufferPointer) {
        // Listeners have nothing to say on this channel; messages are ignored.
    }

    func webSocketWritabilityChanged(_ socket: WebSocketConnection) {
        if socket.isWritable { hub.feed(self) }
    }

    func webSocketDidClose(_ socket: WebSocketConnection, code: WebSocketCloseCode, reason: String) {
        hub.unsubscribe(self, code: code)
    }
}
