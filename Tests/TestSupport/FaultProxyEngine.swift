import Glibc

/// The proxy thread: one poll loop over the listener, a self-pipe and every pair.
///
/// One turn: take the settings and commands (and apply the commands), write every due
/// chunk that may be written, pass FINs on, publish the counters, close the sockets of
/// pairs that ended, acknowledge the settings, then poll (no longer than the next latency
/// deadline), accept clients and read what arrived. Writing before acknowledging is what
/// makes the control calls synchronous: a chunk read under the old settings is written,
/// if at all, under the new; closing after publishing means a peer that sees a reset can
/// already see it counted.
final class FaultProxyEngine {
    private let listenFD: Int32
    private let wakeFD: Int32
    private let upstream: in_addr
    private let upstreamPort: Int
    private let control: FaultProxyControl
    private var pairs: [FaultProxyPair] = []
    private var settings = FaultSettings()
    private var stats = FaultProxy.Stats()
    private var cutPattern: [UInt8] = []
    private var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)
    /// Clients refused or without an upstream, reset after the counters are published.
    private var doomedClients: [Int32] = []

    init(listenFD: Int32, wakeFD: Int32, upstream: in_addr, upstreamPort: Int, control: FaultProxyControl) {
        self.listenFD = listenFD
        self.wakeFD = wakeFD
        self.upstream = upstream
        self.upstreamPort = upstreamPort
        self.control = control
    }

    /// Runs until a stop command; closes everything it owns on the way out.
    func run() {
        while true {
            let (newSettings, commands, generation) = control.take()
            settings = newSettings
            if let arm = commands.arm {
                cutPattern = arm.pattern
                stats.cutsArmed = arm.times
            }
            if commands.stop { break }
            if commands.resetAll {
                for pair in pairs { pair.reset() }
                stats.connectionsReset += pairs.count
            }
            let now = monotonicNow()
            for pair in pairs { pump(pair, now: now) }
            stats.connectionsOpen = pairs.count(where: { !$0.closed })
            control.publish(stats)
            finishEnded()
            control.publish(stats, applied: generation)
            pollOnce(now: now)
        }
        for pair in pairs { pair.close() }
        stats.connectionsOpen = 0
        finishEnded()
        close(listenFD)
        close(wakeFD)
        control.markFinished(stats)
    }

    /// Closes the sockets of every pair and client whose end was decided in this turn.
    private func finishEnded() {
        for pair in pairs where pair.closed { pair.finish() }
        pairs.removeAll { $0.closed }
        for fd in doomedClients { FaultProxySocket.reset(fd) }
        doomedClients.removeAll()
    }

    // MARK: writing

    /// Writes the due chunks of both lanes and passes a finished source's FIN on.
    private func pump(_ pair: FaultProxyPair, now: UInt64) {
        for direction in FaultProxy.Direction.allCases where !pair.closed {
            guard mayWrite(pair, direction) else { continue }
            let fd = pair.destination(direction)
            while let head = pair.lanes[direction.rawValue].first, head.due <= now {
                let written = head.bytes.withUnsafeBytes { raw in
                    send(fd, raw.baseAddress! + head.offset, head.bytes.count - head.offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                }
                if written < 0 {
                    if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { break }
                    pair.reset()  // the destination is gone: pass the abort on to the source
                    return
                }
                count(written, direction)
                if direction == .toServer { pair.clientBytesWritten += written }
                pair.lanes[direction.rawValue].consume(written)
            }
            let lane = pair.lanes[direction.rawValue]
            if lane.sourceEnded && lane.isEmpty && !lane.finSent {
                shutdown(fd, Int32(SHUT_WR))
                pair.lanes[direction.rawValue].finSent = true
            }
        }
        if pair.cutMark != nil && pair.swallowed > 0 && pair.lanes[FaultProxy.Direction.toServer.rawValue].isEmpty {
            // Part of the answer came while client bytes were still held; they are written now.
            endCut(pair)
            pair.reset()
        }
        if pair.lanes.allSatisfy(\.finSent) { pair.close() }
    }

    private func count(_ written: Int, _ direction: FaultProxy.Direction) {
        switch direction {
        case .toServer: stats.bytesToServer += written
        case .toClient: stats.bytesToClient += written
        }
    }

    private func mayWrite(_ pair: FaultProxyPair, _ direction: FaultProxy.Direction) -> Bool {
        !settings.blackholed[direction.rawValue] && (direction == .toClient || pair.serverConnected)
    }

    /// A chunk is due but the destination's buffer was full: wait for POLLOUT.
    private func wantsWrite(_ pair: FaultProxyPair, _ direction: FaultProxy.Direction, now: UInt64) -> Bool {
        guard mayWrite(pair, direction), let head = pair.lanes[direction.rawValue].first else { return false }
        return head.due <= now
    }

    /// The source of `direction` may be read: not held, not ended, not too much held, and
    /// (for the server) connected.
    private func wantsRead(_ pair: FaultProxyPair, _ direction: FaultProxy.Direction) -> Bool {
        let lane = pair.lanes[direction.rawValue]
        guard !settings.blackholed[direction.rawValue], !lane.sourceEnded, lane.heldBytes < FaultProxyLane.holdLimit else { return false }
        return direction == .toServer || pair.serverConnected
    }

    // MARK: polling

    private func pollOnce(now: UInt64) {
        var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)]
        var nextDue = UInt64.max
        for pair in pairs {
            for (side, fd) in [pair.client, pair.server].enumerated() {
                // Side 0 (client) is the source of .toServer and the destination of .toClient.
                let readDirection: FaultProxy.Direction = side == 0 ? .toServer : .toClient
                let writeDirection: FaultProxy.Direction = side == 0 ? .toClient : .toServer
                var events: Int16 = 0
                if wantsRead(pair, readDirection) { events |= Int16(POLLIN) }
                if wantsWrite(pair, writeDirection, now: now) { events |= Int16(POLLOUT) }
                if side == 1 && !pair.serverConnected { events |= Int16(POLLOUT) }
                let skip = events == 0 && pair.hungUp[side]
                fds.append(pollfd(fd: skip ? -1 : fd, events: events, revents: 0))
                if mayWrite(pair, writeDirection), let head = pair.lanes[writeDirection.rawValue].first, head.due > now {
                    nextDue = min(nextDue, head.due)
                }
            }
        }
        // Bounded even without deadlines, so a missed wake-up costs a second, not a hang.
        var timeoutMs: Int32 = 1_000
        if nextDue != .max { timeoutMs = Int32(min(1_000, (nextDue - now + 999_999) / 1_000_000)) }
        let ready = poll(&fds, nfds_t(fds.count), timeoutMs)
        guard ready > 0 else { return }
        if fds[0].revents != 0 { drainWake() }
        // Only the pairs that were polled have results; clients accepted below join next turn.
        let polled = pairs
        if fds[1].revents != 0 { acceptClients() }
        let readAt = monotonicNow()
        for (index, pair) in polled.enumerated() where !pair.closed {
            let clientEvents = fds[2 + 2 * index].revents
            let serverEvents = fds[3 + 2 * index].revents
            if serverEvents != 0 && !pair.serverConnected { finishConnect(pair) }
            if serverEvents != 0 { handleReadable(pair, .toClient, events: serverEvents, at: readAt) }
            if clientEvents != 0 { handleReadable(pair, .toServer, events: clientEvents, at: readAt) }
        }
    }

    private func drainWake() {
        var scratch = [UInt8](repeating: 0, count: 64)
        while read(wakeFD, &scratch, scratch.count) > 0 {}
    }

    private func acceptClients() {
        while let client = FaultProxySocket.accept(listenFD) {
            stats.connectionsAccepted += 1
            if settings.refuse {
                stats.connectionsRefused += 1
                doomedClients.append(client)
                continue
            }
            guard let server = FaultProxySocket.startConnect(to: upstream, port: upstreamPort) else {
                stats.upstreamConnectFailures += 1
                doomedClients.append(client)
                continue
            }
            FaultProxySocket.noDelay(client)
            pairs.append(FaultProxyPair(client: client, server: server))
        }
    }

    private func finishConnect(_ pair: FaultProxyPair) {
        if FaultProxySocket.connectError(pair.server) == 0 {
            pair.serverConnected = true
            FaultProxySocket.noDelay(pair.server)
        } else {
            stats.upstreamConnectFailures += 1
            pair.reset()
        }
    }

    // MARK: reading

    /// Reads what the source of `direction` has, when it may be read; otherwise notes a
    /// hang-up so the descriptor does not spin in poll.
    private func handleReadable(_ pair: FaultProxyPair, _ direction: FaultProxy.Direction, events: Int16, at now: UInt64) {
        guard !pair.closed else { return }
        let side = direction == .toServer ? 0 : 1
        if events & Int16(POLLERR | POLLHUP) != 0 { pair.hungUp[side] = true }
        guard events & Int16(POLLIN | POLLERR | POLLHUP) != 0, wantsRead(pair, direction) else { return }
        let n = readBuffer.withUnsafeMutableBytes { recv(pair.source(direction), $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT)) }
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return }
            endCut(pair)
            pair.reset()  // an RST (or worse) from the source: the other peer gets one too
            return
        }
        if n == 0 {
            if direction == .toClient && pair.cutMark != nil {
                // The server closed instead of (or after part of) its answer: the client
                // loses the connection all the same.
                endCut(pair)
                pair.reset()
                return
            }
            pair.lanes[direction.rawValue].sourceEnded = true
            return
        }
        let bytes = Array(readBuffer[0..<n])
        switch direction {
        case .toClient:
            if let mark = pair.cutMark, pair.clientBytesWritten >= mark {
                // The matching request is written, so these bytes answer it (or come with
                // the answer): never forwarded. Reset once every client byte read so far is
                // written too, so a request that arrived in pieces runs whole.
                pair.swallowed += n
                stats.bytesSwallowed += n
                if pair.lanes[FaultProxy.Direction.toServer.rawValue].isEmpty {
                    endCut(pair)
                    pair.reset()
                }
                return
            }
        case .toServer:
            pair.clientBytesRead += n
            if pair.cutMark == nil, pair.noteClientBytes(bytes, pattern: stats.cutsArmed > 0 ? cutPattern : nil) {
                pair.cutMark = pair.clientBytesRead
                stats.cutsArmed -= 1
            }
        }
        pair.lanes[direction.rawValue].append(bytes, due: now + settings.latencyNanos[direction.rawValue])
    }

    /// Counts a cut as fired when the pair ends having swallowed part of an answer.
    private func endCut(_ pair: FaultProxyPair) {
        if pair.cutMark != nil && pair.swallowed > 0 && !pair.closed { stats.cutsFired += 1 }
    }

    private func monotonicNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
