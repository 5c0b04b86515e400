import CHiredis

/// One master of a Redis Cluster: its pipelined `RedisClient`, and every command sent
/// through it that is not answered yet, with its encoded bytes kept, so a command answered
/// `MOVED` or `ASK` can leave again for another node.
///
/// The kept bytes live in one buffer in send order and are released from its front as the
/// oldest commands complete: no allocation per command once the buffer reached its
/// working size. Commands are found by sequence number, so a completion that arrives out
/// of order (a command failed while being issued) still finds its own entry.
final class RedisClusterLane {
    /// "host:port" as the cluster names the node.
    let address: String
    /// The node's connection (its own reconnects, timeouts and while-down queue).
    let client: RedisClient
    /// Hears about redirections; cleared when the cluster client is closed or goes away.
    unowned(unsafe) var cluster: RedisClusterClient?
    /// No longer in the slot map: closes once its last command completed.
    private(set) var retired = false

    private struct Entry {
        /// The caller's completion; nil for an `ASKING` sent ahead of a command.
        var completion: RedisCompletion?
        /// Absolute position of the command's bytes in `kept`.
        var start: Int
        var length: Int
        var slot: Int
        var redirects: Int
        var done = false
    }

    private var entries = RedisRing<Entry>(capacity: 1024)
    /// Sequence number of `entries`' oldest element.
    private var headSequence = 0
    private let kept = ByteBuffer(capacity: 16 * 1024)
    /// Absolute position of `kept`'s first readable byte.
    private var keptBase = 0

    init(address: String, client: RedisClient, cluster: RedisClusterClient) {
        self.address = address
        self.client = client
        self.cluster = cluster
    }

    deinit { entries.destroy() }

    /// Sends the command encoded in `client.encoder`, for `slot` (-1: keyless).
    @inline(__always)
    func submit(_ completion: RedisCompletion, slot: Int, redirects: Int = 0) {
        let bytes = client.encoder.bytes
        entries.append(Entry(completion: completion, start: keptBase + kept.readableBytes, length: bytes.count,
                             slot: slot, redirects: redirects))
        kept.write(bytes)
        client.submit(.routed(self, headSequence + entries.count - 1))
    }

    /// Sends `ASKING`, which lets the next command on this connection reach a slot that is
    /// still being imported.
    private func submitAsking() {
        client.encoder.beginCommand(argumentCount: 1)
        client.encoder.argument("ASKING")
        entries.append(Entry(completion: nil, start: keptBase + kept.readableBytes, length: 0, slot: -1, redirects: 0))
        client.submit(.routed(self, headSequence + entries.count - 1))
    }

    // MARK: completions (called by RedisClient)

    /// A reply to command `sequence`: redirections are followed, everything else goes to the
    /// caller's completion.
    func replyArrived(_ sequence: Int, _ reply: UnsafeMutablePointer<redisReply>) {
        let offset = sequence - headSequence
        let entry = entries[offset]
        guard let completion = entry.completion else {
            // ASKING's +OK; were it refused, the command behind it says why.
            finish(offset)
            return
        }
        if reply.replyType == HiredisReplyType.error, let redirect = RedisRedirect(reply.payload) {
            follow(redirect, entry, completion, message: reply.payloadString)
            finish(offset)
            return
        }
        finish(offset)
        RedisClient.complete(completion, reply)
    }

    /// Command `sequence` failed without a reply (connection lost, timeout, closed).
    func failed(_ sequence: Int, _ error: RedisError) {
        let offset = sequence - headSequence
        let completion = entries[offset].completion
        finish(offset)
        if let completion { RedisClient.fail(completion, error) }
    }

    private func follow(_ redirect: RedisRedirect, _ entry: Entry, _ completion: RedisCompletion, message: String) {
        guard let cluster else {
            RedisClient.fail(completion, .closed)
            return
        }
        guard entry.redirects < RedisClusterClient.maxRedirects else {
            RedisClient.fail(completion, .server(message))
            return
        }
        let bytes = kept.withReadableBytes {
            UnsafeRawBufferPointer(rebasing: $0[(entry.start - keptBase)..<(entry.start - keptBase + entry.length)])
        }
        switch redirect.kind {
        case .moved, .ask:
            let target = cluster.redirected(redirect, from: self)
            if redirect.kind == .ask { target.submitAsking() }
            // Into the target's encoder first: `kept` may move when the target is this lane.
            target.client.encoder.appendEncoded(bytes)
            target.submit(completion, slot: entry.slot, redirects: entry.redirects + 1)
        case .tryAgain:
            cluster.retryLater(Array(bytes), completion, slot: entry.slot, redirects: entry.redirects + 1)
        }
    }

    /// Marks the entry done and releases every done entry at the front, with its bytes.
    private func finish(_ offset: Int) {
        entries[offset].completion = nil
        entries[offset].done = true
        while entries.withFirst({ $0.done }) == true, let first = entries.popFirst() {
            kept.moveReaderIndex(forwardBy: first.length)
            keptBase += first.length
            headSequence += 1
        }
        if retired && entries.isEmpty { closeIfDrained() }
    }

    // MARK: retiring

    /// Leaves the slot map: commands already sent still complete here (their replies may
    /// redirect them), then the connection closes. Commands still waiting for this node to
    /// come back (a failover replaced it) were never sent: they go to the slot's new master.
    func retire() {
        retired = true
        client.onStateChange = nil
        if !client.isUp {
            var sequences: [Int] = []
            client.takeQueued { _, completion in
                if case .routed(_, let sequence) = completion { sequences.append(sequence) }
            }
            for sequence in sequences { handBack(sequence - headSequence) }
        }
        closeIfDrained()
    }

    private func handBack(_ offset: Int) {
        let entry = entries[offset]
        if let completion = entry.completion {
            let bytes = kept.withReadableBytes { Array($0[(entry.start - keptBase)..<(entry.start - keptBase + entry.length)]) }
            if let cluster {
                cluster.reroute(bytes, completion, slot: entry.slot, redirects: entry.redirects)
            } else {
                RedisClient.fail(completion, .closed)
            }
        }
        finish(offset)
    }

    private func closeIfDrained() {
        // Commands queued while the node is down would wait for a node that left the map.
        guard entries.isEmpty || !client.isUp else { return }
        client.close()
        cluster?.laneClosed(self)
    }
}
