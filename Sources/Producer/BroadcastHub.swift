import EventLog
import Logging
import Reactor

/// Owns the sequence, the durable log, the replay ring and every WebSocket subscriber, on
/// one loop (the hub loop). Every subscriber is a cursor into the stream: live broadcast
/// and replay are the same operation (send the lines after the cursor, from the ring when
/// it still holds them, else from the log on disk), so a reconnecting listener switches
/// from replay to live without a gap or a duplicate, and a slow one costs no memory
/// beyond its socket's high-water mark: its backlog is the log itself.
///
/// Only durable events enter the ring: a batch is sequenced, written and synced by the
/// `LogCommitter`, and only then broadcast and answered.
///
/// Scaling: publish requests are parsed and validated on every loop; only the already
/// encoded batches reach the hub, once per loop turn per loop, so the per-event work on
/// the hub is one copy into the ring and one copy per subscriber frame.
final class BroadcastHub {
    let loop: EventLoop
    let ring: ReplayRing
    let committer: LogCommitter
    var log: EventLog { committer.log }
    let metrics: ProducerMetrics
    let logger: Logger
    /// Largest frame sent; everything ready in one turn goes out in frames up to this.
    let maxFrameBytes: Int
    /// A subscriber that cannot take bytes for this long while behind is closed with 1013.
    let slowClientTimeoutNanos: UInt64
    private var subscribers: [Subscriber] = []
    private var stallTimer: TimerHandle?
    /// One frame of lines read from disk, reused.
    private var diskFrame: [UInt8] = []
    /// A disk replay stopped at the turn's budget with its socket still writable.
    private var moreDiskWork = false
    /// When this turn's disk replay must stop (nil: no frame read from disk this turn).
    private var diskDeadline: UInt64?
    /// Where the next turn's round of subscribers starts, so the budget goes round.
    private var nextFirst = 0
    /// The hub loop time all disk replays together may take in one turn (at least one
    /// frame), and the size of a frame read from disk. Every publish waits for this loop
    /// (its group commit starts and its answer leaves here), so subscribers catching up
    /// from disk must not hold a turn. `Benchmarks micro --only replay_storm`: with four
    /// 256 KiB frames per subscriber per turn, as before, 4 subscribers replaying a 3M-event
    /// log raised publish p99 from 0.6 ms to 39 ms and 16 of them to 163 ms; with this
    /// budget 1.3-4.5 ms, while the replays together still read 2.0-2.3M events/s (one
    /// alone 1.8M, down from 3.0M: smaller frames cost more each, and a publish waits for
    /// at most one of them).
    static let diskNanosPerTurn: UInt64 = 250_000
    static let diskFrameBytes = 64 * 1024

    init(loop: EventLoop, log: EventLog, replayCapacity: Int, arenaBytes: Int, maxFrameBytes: Int = 256 * 1024,
         slowClientTimeoutMillis: Int, metrics: ProducerMetrics, logger: Logger) {
        self.loop = loop
        let ring = ReplayRing(capacity: replayCapacity, arenaSize: arenaBytes, after: log.lastSeq)
        self.ring = ring
        committer = LogCommitter(log: log, loop: loop, metrics: metrics, logger: logger) { entries in
            ring.append(entries)
        }
        self.maxFrameBytes = maxFrameBytes
        self.slowClientTimeoutNanos = UInt64(slowClientTimeoutMillis) * 1_000_000
        self.metrics = metrics
        self.logger = logger
        diskFrame.reserveCapacity(min(maxFrameBytes, Self.diskFrameBytes) + 4096)
        metrics.lastSeq.set(Int(log.lastSeq))
        metrics.logBytes.set(log.sizeBytes)
        metrics.logSegments.set(log.segmentCount)
        loop.addBeforeSleepHook { [unowned self] in self.feedAll() }
        scheduleStallCheck()
    }

    /// Sequences batches through the log; `done` gets one outcome per batch once they are
    /// durable (and in the ring, so subscribers get them before the loop sleeps) or failed.
    func publish(_ batches: [EventBatch], done: @escaping LogCommitter.Completion) {
        committer.enqueue(batches) { [unowned self] outcomes in
            var events = 0
            for case .accepted(let first, let last) in outcomes { events += Int(last - first + 1) }
            self.metrics.published.add(events)
            self.metrics.lastSeq.set(Int(self.ring.lastSeq))
            self.metrics.ringEvents.set(self.ring.count)
            self.metrics.ringBytes.set(self.ring.retainedBytes)
            done(outcomes)
        }
    }

    /// Largest event line the ring can hold (bigger ones are refused at publish time).
    var maxLineBytes: Int { ring.maxLineBytes }

    // MARK: subscribers

    /// Oldest seq still served, from the ring or the log.
    private var oldestRetained: UInt64 {
        ring.count > 0 ? min(ring.firstSeq, log.firstSeq) : min(log.firstSeq, ring.lastSeq + 1)
    }

    /// A new WebSocket client: `fromSeq` is its `?from_seq=` (nil: live only), `stream`
    /// its `&stream=` (the stream its seqs belong to; another one means start over).
    func subscribe(_ socket: WebSocketConnection, fromSeq: UInt64?, stream: String?) {
        let subscriber = Subscriber(socket: socket, hub: self)
        socket.delegate = subscriber
        subscribers.append(subscriber)
        metrics.clients.set(subscribers.count)
        let peer = socket.connection.peerDescription
        if let stream, stream != log.streamID {
            // Its seqs name events of a log that is gone: everything retained is new to it.
            metrics.replayRequests.add()
            subscriber.cursor = oldestRetained
            logger.warning("subscriber \(peer) resumes stream \(stream), but this is stream \(log.streamID); replaying everything retained from seq \(subscriber.cursor)")
            feed(subscriber)
            return
        }
        guard let fromSeq else {
            subscriber.cursor = ring.lastSeq + 1
            logger.info("subscriber \(peer) connected, live from seq \(subscriber.cursor)")
            return
        }
        metrics.replayRequests.add()
        var cursor = fromSeq &+ 1
        if cursor > ring.lastSeq + 1 {
            // Ahead of the log: it saw another stream and did not say so.
            logger.warning("subscriber \(peer) asked from_seq=\(fromSeq) beyond last seq \(ring.lastSeq); replaying everything retained")
            cursor = oldestRetained
        }
        let oldest = oldestRetained
        if cursor < oldest {
            let missingFrom = cursor
            let missingTo = oldest - 1
            metrics.gaps.add()
            metrics.gapEvents.add(Int(missingTo - missingFrom + 1))
            logger.warning("subscriber \(peer) asked from_seq=\(fromSeq): seqs \(missingFrom)-\(missingTo) are older than the retained log; reporting the gap")
            socket.send(text: "{\"gap\":{\"from\":\(missingFrom),\"to\":\(missingTo)}}")
            cursor = oldest
        }
        subscriber.cursor = cursor
        logger.info("subscriber \(peer) connected, replaying from seq \(cursor) (last \(ring.lastSeq))")
        feed(subscriber)
    }

    func unsubscribe(_ subscriber: Subscriber, code: WebSocketCloseCode) {
        guard let index = subscribers.firstIndex(where: { $0 === subscriber }) else { return }
        subscribers.remove(at: index)
        metrics.clients.set(subscribers.count)
        logger.info("subscriber \(subscriber.peer) disconnected (code \(code.rawValue)) at seq \(subscriber.cursor &- 1)")
    }

    private func feedAll() {
        let count = subscribers.count
        if count > 0 {
            let first = nextFirst % count
            nextFirst = first + 1
            for k in 0..<count {
                let subscriber = subscribers[(first + k) % count]
                if subscriber.cursor <= ring.lastSeq { feed(subscriber) }
            }
        }
        diskDeadline = nil
        if moreDiskWork {
            // Keep the loop from sleeping: the next turn's feed continues the replay.
            moreDiskWork = false
            loop.executeSoon {}
        }
    }

    /// Sends the lines after the subscriber's cursor while its socket takes them: from the
    /// ring when it holds them, else from disk while the turn's disk budget lasts.
    func feed(_ subscriber: Subscriber) {
        let socket = subscriber.socket
        while subscriber.cursor <= ring.lastSeq && socket.isOpen && socket.isWritable {
            guard ring.retains(subscriber.cursor) else {
                guard log.retains(subscriber.cursor) else {
                    closeSlow(subscriber, reason: "fell behind the retained log")
                    return
                }
                let now = monotonicNanos()
                if let diskDeadline, now >= diskDeadline {
                    moreDiskWork = true
                    break
                }
                if diskDeadline == nil { diskDeadline = now + Self.diskNanosPerTurn }
                sendFromDisk(subscriber)
                continue
            }
            let run = ring.run(from: subscriber.cursor, maxBytes: maxFrameBytes)
            socket.send(textBytes: run.bytes)
            metrics.frames.add()
            metrics.bytes.add(run.bytes.count)
            subscriber.cursor = run.lastSeq + 1
        }
        if subscriber.cursor > ring.lastSeq || socket.isWritable { subscriber.stall.clear() }
    }

    /// Sends one frame of lines read from the log. Records that fail their checksum (a bad
    /// sector in a sealed segment) are never sent: the rest of that segment is reported as
    /// a gap, like events past retention, and the replay goes on after it.
    private func sendFromDisk(_ subscriber: Subscriber) {
        diskFrame.removeAll(keepingCapacity: true)
        let from = subscriber.cursor
        var lastRead = from - 1
        var unreadable: (to: UInt64, error: Error)?
        do {
            _ = try log.read(from: from, maxBytes: min(maxFrameBytes, Self.diskFrameBytes)) { seq, rest in
                EventLine.append(seq: seq, rest: rest, to: &diskFrame)
                lastRead = seq
            }
        } catch {
            unreadable = (log.segmentLastSeq(containing: lastRead + 1), error)
        }
        if !diskFrame.isEmpty {
            diskFrame.removeLast()  // the frame ends without the last line's newline
            diskFrame.withUnsafeBytes { _ = subscriber.socket.send(textBytes: $0) }
            metrics.frames.add()
            metrics.bytes.add(diskFrame.count)
            metrics.diskReplayEvents.add(Int(lastRead - from + 1))
        }
        subscriber.cursor = lastRead + 1
        if let unreadable {
            let missingFrom = subscriber.cursor
            metrics.gaps.add()
            metrics.gapEvents.add(Int(unreadable.to - missingFrom + 1))
            logger.error("event log unreadable for \(subscriber.peer): \(unreadable.error); reporting seqs \(missingFrom)-\(unreadable.to) as a gap")
            subscriber.socket.send(text: "{\"gap\":{\"from\":\(missingFrom),\"to\":\(unreadable.to)}}")
            subscriber.cursor = unreadable.to + 1
        }
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
                let socket = subscriber.socket
                if subscriber.stall.look(now: now, behind: subscriber.cursor <= self.ring.lastSeq, writable: socket.isWritable,
                                         cursor: subscriber.cursor, pendingBytes: socket.pendingWriteBytes) {
                    self.closeSlow(subscriber, reason: "took no bytes for \(self.slowClientTimeoutNanos / 1_000_000) ms")
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
    var stall: StallWatch

    init(socket: WebSocketConnection, hub: BroadcastHub) {
        self.socket = socket
        self.hub = hub
        stall = StallWatch(timeoutNanos: hub.slowClientTimeoutNanos)
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
