import CEpoll
import Glibc

/// A nonblocking TCP connection owned by one loop.
///
/// Reads go into the loop's shared receive buffer; the connection keeps bytes of its own
/// only when its delegate leaves some unconsumed (an unfinished request or frame). Writes
/// are appended to one outbound buffer and leave in one `write()` in the loop's
/// before-sleep pass; EPOLLOUT is armed only when the kernel refuses bytes, and disarmed
/// once drained. Past `highWaterMark` pending bytes the connection reports itself not
/// writable so its owner stops producing.
public final class TCPConnection: IOHandler, Flushable {
    enum State {
        case connecting
        case open
        /// close() asked: flush what is queued, then shut down.
        case closing
        /// Our side is shut down; reading until the peer closes so it sees our last bytes
        /// instead of a reset.
        case draining
        case closed
    }

    /// The loop that owns the connection.
    public let loop: EventLoop
    /// The protocol on top; strong, dropped after `connectionDidClose`.
    public var delegate: TCPConnectionDelegate?
    /// Free slot for the owner (e.g. an index into its own table).
    public var userTag: Int = 0

    private(set) var fd: Int32
    private(set) var state: State
    private var inbound: ByteBuffer?
    /// How many bytes the delegate waits for in all, counted from the first kept one (0:
    /// unknown); the missing ones are read straight into `inbound`.
    private var keptWanted = 0
    /// Room held at once for what a delegate waits for, at most.
    static let largestReadAhead = 4 << 20
    private var _outbound: ByteBuffer?
    private var flushScheduled = false
    /// True between `pauseReading()` and `resumeReading()`.
    public private(set) var readingPaused = false
    private var waitingForWritable = false
    private var closeError: SocketError?
    private var connectTimer: TimerHandle?
    private var drainTimer: TimerHandle?
    private let peer: SocketAddress?
    /// The shared limit whose slot this connection holds (accepted under a limit); given
    /// back once, when the descriptor is released.
    var limitSlot: ConnectionLimit?
    private var deadlineNanos: UInt64?
    /// True while the loop's sweep visits this connection (an idle timeout or a deadline).
    private var swept = false

    /// False while pending output is above the high-water mark.
    public private(set) var isWritable = true
    /// Pending output above which `isWritable` turns false (default 1 MiB).
    public var highWaterMark = 1 << 20
    /// Pending output below which `isWritable` turns true again (default 256 KiB).
    public var lowWaterMark = 256 << 10
    /// Monotonic time of the last read or write.
    public private(set) var lastActivityNanos: UInt64

    /// Closes the connection after this long without reading or writing; nil never does.
    /// Every byte moves it, so it bounds silence, not slowness: see `setDeadline(in:)`.
    /// One coarse timer per loop sweeps every connection that has one.
    public var idleTimeout: Duration? {
        didSet { updateSweep() }
    }

    /// Sets a time limit that traffic does not move, unlike `idleTimeout`: once `duration`
    /// has passed, the delegate's `connectionDeadlinePassed` runs (by default the connection
    /// closes). nil clears it; a new call replaces it. Checked by the same coarse sweep as
    /// idle timeouts, so it fires up to about 100 ms late. Only an open connection has one.
    public func setDeadline(in duration: Duration?) {
        deadlineNanos = duration.map { monotonicNanos() &+ $0.nanoseconds }
        updateSweep()
    }

    /// True while a deadline is set and has not passed.
    public var hasDeadline: Bool { deadlineNanos != nil }

    private func updateSweep() {
        let wanted = state != .closed && (idleTimeout != nil || deadlineNanos != nil)
        guard wanted != swept else { return }
        swept = wanted
        loop.trackIdle(self, enabled: wanted)
    }

    init(acceptedFD: Int32, loop: EventLoop, peer: SocketAddress?) {
        self.fd = acceptedFD
        self.loop = loop
        self.peer = peer
        self.state = .open
        self.lastActivityNanos = monotonicNanos()
    }

    private init(connectingFD: Int32, loop: EventLoop, peer: SocketAddress) {
        self.fd = connectingFD
        self.loop = loop
        self.peer = peer
        self.state = .connecting
        self.lastActivityNanos = monotonicNanos()
    }

    /// Starts a nonblocking connect to `host:port` (an IP literal or a name, resolved first).
    /// The delegate hears `connectionDidConnect` or `connectionDidClose(error:)`.
    public static func connect(loop: EventLoop, host: String, port: Int,
                               timeout: Duration = .seconds(10),
                               delegate: TCPConnectionDelegate) throws -> TCPConnection {
        let address = try SocketAddress(host: host, port: port)
        let fd = CEpoll_socket_nonblocking(address.family, Int32(SOCK_STREAM.rawValue))
        guard fd >= 0 else { throw SocketError.current("socket") }
        _ = CEpoll_set_nodelay(fd)
        let rc = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        if rc != 0 && errno != EINPROGRESS {
            let error = SocketError.current("connect \(address)")
            Glibc.close(fd)
            throw error
        }
        let connection = TCPConnection(connectingFD: fd, loop: loop, peer: address)
        connection.delegate = delegate
        do {
            try loop.register(fd, mask: .writable, handler: connection)
        } catch {
            Glibc.close(fd)
            throw error
        }
        connection.connectTimer = loop.schedule(in: timeout) { [weak connection] in
            guard let connection, connection.state == .connecting else { return }
            connection.finish(error: SocketError(errno: ETIMEDOUT, operation: "connect \(address)"))
        }
        return connection
    }

    func startAccepted() {
        guard delegate != nil else {
            Glibc.close(fd)
            fd = -1
            state = .closed
            releaseLimitSlot()
            updateSweep()
            return
        }
        do {
            try loop.register(fd, mask: .readable, handler: self)
        } catch let error as SocketError {
            finish(error: error)
        } catch {}
    }

    /// True until the connection is fully closed or closing.
    public var isOpen: Bool { state == .open || state == .connecting }

    /// Bytes queued and not yet accepted by the kernel.
    public var pendingWriteBytes: Int { _outbound?.readableBytes ?? 0 }

    /// Bytes received and kept for the delegate (an unfinished message).
    public var bufferedReadBytes: Int { inbound?.readableBytes ?? 0 }

    /// The remote address as "ip:port".
    public var peerDescription: String { peer?.description ?? "?" }

    /// The underlying descriptor (diagnostics; never close it yourself).
    public var descriptor: Int32 { fd }

    // MARK: events

    public func handleIO(_ mask: IOMask) {
        switch state {
        case .connecting:
            finishConnect()
        case .open:
            if mask.contains(.writable) && waitingForWritable { flushPending() }
            if mask.contains(.readable) && !readingPaused && state == .open { readAvailable() }
        case .closing:
            if mask.contains(.writable) { flushPending() }
            if mask.contains(.readable) && state == .closing { discardInput() }
        case .draining:
            if mask.contains(.readable) || mask.contains(.writable) { discardInput() }
        case .closed:
            break
        }
    }

    private func finishConnect() {
        let error = CEpoll_socket_error(fd)
        if let timer = connectTimer { loop.cancel(timer); connectTimer = nil }
        guard error == 0 else {
            finish(error: SocketError(errno: error, operation: "connect \(peerDescription)"))
            return
        }
        state = .open
        lastActivityNanos = monotonicNanos()
        updateInterest()
        delegate?.connectionDidConnect(self)
        if pendingWriteBytes > 0 { scheduleFlush() }
    }

    private func readAvailable() {
        let buffer = loop.receiveBuffer
        // A few reads per event at most, so one fast peer cannot starve the others.
        for _ in 0..<4 {
            let asked: Int
            var n = 0
            var err: Int32 = 0
            if let kept = inbound, keptWanted > kept.readableBytes {
                // The rest of what the delegate waits for goes straight into the kept bytes.
                asked = keptWanted - kept.readableBytes
                kept.writeWithUnsafeMutableBytes(minimumCapacity: asked) { space in
                    n = Glibc.read(fd, space.baseAddress!, asked)
                    err = errno
                    return max(n, 0)
                }
                if n > 0 {
                    lastActivityNanos = monotonicNanos()
                    if n == asked { offerKept() }
                }
            } else {
                asked = buffer.count
                n = Glibc.read(fd, buffer.baseAddress!, asked)
                err = errno
                if n > 0 {
                    lastActivityNanos = monotonicNanos()
                    deliver(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]))
                }
            }
            if n > 0 {
                if n < asked || state != .open || readingPaused { return }
                continue
            }
            if n == 0 {
                finish(error: nil)
                return
            }
            if err == EAGAIN || err == EWOULDBLOCK || err == EINTR { return }
            finish(error: SocketError(errno: err, operation: "read"))
            return
        }
    }

    /// Hands `fresh` (or the kept bytes plus `fresh`) to the delegate and keeps the rest.
    private func deliver(_ fresh: UnsafeMutableRawBufferPointer) {
        if let kept = inbound, !kept.isEmpty {
            kept.write(UnsafeRawBufferPointer(fresh))
            offerKept()
            return
        }
        let consumed = offer(fresh)
        if consumed < fresh.count && state == .open {
            let rest = UnsafeRawBufferPointer(rebasing: fresh[consumed...])
            let wanted = wantedOfDelegate(keeping: rest.count)
            let kept = inbound ?? ByteBuffer(capacity: max(4096, rest.count, wanted))
            kept.write(rest)
            inbound = kept
            keptWanted = wanted
        }
    }

    private func offerKept() {
        guard let kept = inbound else { return }
        let consumed = kept.withMutableReadableBytes { offer($0) }
        if state == .open || state == .connecting {
            kept.moveReaderIndex(forwardBy: consumed)
        }
        keptWanted = kept.isEmpty ? 0 : wantedOfDelegate(keeping: kept.readableBytes)
        releaseInboundIfLarge()
    }

    /// What the delegate says it needs in all, when that is more than the `kept` bytes it
    /// left and small enough to hold room for at once; else 0 (read as it comes).
    private func wantedOfDelegate(keeping kept: Int) -> Int {
        guard state == .open, let wanted = delegate?.connectionBytesWanted(self),
              wanted > kept, wanted <= Self.largestReadAhead else { return 0 }
        return wanted
    }

    /// Offers bytes until the delegate stops consuming; follows a delegate swap at once.
    private func offer(_ bytes: UnsafeMutableRawBufferPointer) -> Int {
        var offset = 0
        while offset < bytes.count, state == .open, !readingPaused, let current = delegate {
            let consumed = current.connectionDidRead(self, UnsafeMutableRawBufferPointer(rebasing: bytes[offset...]))
            precondition(consumed >= 0 && consumed <= bytes.count - offset, "delegate consumed more than offered")
            offset += consumed
            if delegate === current { break }
        }
        return offset
    }

    /// A big message once buffered should not pin its memory forever.
    private func releaseInboundIfLarge() {
        if let kept = inbound, kept.isEmpty, kept.allocatedCapacity > 64 * 1024 {
            inbound = nil
        }
    }

    private func discardInput() {
        let buffer = loop.receiveBuffer
        let n = Glibc.read(fd, buffer.baseAddress!, buffer.count)
        if n > 0 { return }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
        if state == .draining || n == 0 || n < 0 {
            finish(error: state == .draining || n == 0 ? closeError : SocketError.current("read"))
        }
    }

    // MARK: writing

    /// The outbound buffer itself, for encoders that write in place; call
    /// `didWriteToOutbound()` after writing to it.
    public var outbound: ByteBuffer {
        if let buffer = _outbound { return buffer }
        let buffer = ByteBuffer(capacity: 16 * 1024)
        _outbound = buffer
        return buffer
    }

    /// Queues bytes to leave in this loop turn's flush.
    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard isOpen else { return }
        outbound.write(bytes)
        didWriteToOutbound()
    }

    /// Queues bytes to leave in this loop turn's flush.
    public func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Queues a string's UTF-8 bytes.
    public func write(_ string: String) {
        guard isOpen else { return }
        outbound.write(string)
        didWriteToOutbound()
    }

    /// Schedules the flush of what was written into `outbound` and updates writability.
    public func didWriteToOutbound() {
        guard isOpen else {
            if state != .closing { _outbound?.clear() }
            return
        }
        scheduleFlush()
        if isWritable && pendingWriteBytes > highWaterMark {
            isWritable = false
            notifyWritability()
        }
    }

    private func scheduleFlush() {
        guard !flushScheduled, !waitingForWritable, state != .connecting else { return }
        flushScheduled = true
        loop.scheduleFlush(self)
    }

    func flushPending() {
        flushScheduled = false
        guard state == .open || state == .closing, let out = _outbound else { return }
        while !out.isEmpty {
            // send(MSG_NOSIGNAL), not write(): a peer that vanished must be an EPIPE error
            // for this connection, not a SIGPIPE that kills the process.
            let n = out.withReadableBytes { Glibc.send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                out.moveReaderIndex(forwardBy: n)
                lastActivityNanos = monotonicNanos()
                continue
            }
            let err = errno
            if n < 0 && err == EINTR { continue }
            if n < 0 && (err == EAGAIN || err == EWOULDBLOCK) {
                if !waitingForWritable {
                    waitingForWritable = true
                    updateInterest()
                }
                return
            }
            finish(error: SocketError(errno: err, operation: "write"))
            return
        }
        if waitingForWritable {
            waitingForWritable = false
            updateInterest()
        }
        if out.allocatedCapacity > 256 * 1024 { _outbound = nil }
        if !isWritable && pendingWriteBytes <= lowWaterMark {
            isWritable = true
            notifyWritability()
        }
        if state == .closing { shutdownAndDrain() }
    }

    private func notifyWritability() {
        loop.executeSoon { [weak self] in
            guard let self, self.isOpen else { return }
            self.delegate?.connectionWritabilityChanged(self)
        }
    }

    // MARK: flow control

    /// Stops reading from the socket (backpressure); the kernel buffers, then the peer waits.
    public func pauseReading() {
        guard !readingPaused else { return }
        readingPaused = true
        updateInterest()
    }

    /// Reads again, first offering whatever was kept from before the pause.
    public func resumeReading() {
        guard readingPaused else { return }
        readingPaused = false
        updateInterest()
        if let kept = inbound, !kept.isEmpty {
            loop.executeSoon { [weak self] in
                guard let self, self.state == .open, !self.readingPaused else { return }
                self.offerKept()
            }
        }
    }

    /// Offers the kept bytes to the delegate again (after it became ready for more without
    /// new bytes arriving, e.g. a pipelined request waiting behind an answered one).
    public func redeliverBufferedInput() {
        loop.executeSoon { [weak self] in
            guard let self, self.state == .open, !self.readingPaused,
                  let kept = self.inbound, !kept.isEmpty else { return }
            self.offerKept()
        }
    }

    /// True while reading is paused.
    public var isReadingPaused: Bool { readingPaused }

    private func updateInterest() {
        guard fd >= 0 else { return }
        var mask: IOMask = []
        switch state {
        case .connecting: mask = .writable
        case .open:
            if !readingPaused { mask.insert(.readable) }
            if waitingForWritable { mask.insert(.writable) }
        case .closing:
            mask.insert(.readable)
            if waitingForWritable { mask.insert(.writable) }
        case .draining: mask = .readable
        case .closed: return
        }
        do { try loop.modify(fd, mask: mask) } catch let error as SocketError { finish(error: error) } catch {}
    }

    // MARK: closing

    /// Flushes what is queued, then closes; the peer sees every byte we wrote.
    public func close() {
        switch state {
        case .connecting: finish(error: nil)
        case .open:
            state = .closing
            if pendingWriteBytes == 0 { shutdownAndDrain() } else {
                updateInterest()
                scheduleFlush()
            }
        case .closing, .draining, .closed: break
        }
    }

    /// Closes at once, dropping queued output.
    public func abort() {
        finish(error: nil)
    }

    /// Half-closes our side and reads until the peer closes (bounded by a short timer), so
    /// a peer still sending does not get a reset that destroys our last answer.
    private func shutdownAndDrain() {
        guard state == .closing || state == .open else { return }
        state = .draining
        Glibc.shutdown(fd, Int32(SHUT_WR))
        updateInterest()
        drainTimer = loop.schedule(in: .seconds(2)) { [weak self] in self?.finish(error: nil) }
    }

    /// Releases the descriptor and tells the delegate, after the current batch.
    func finish(error: SocketError?) {
        guard state != .closed else { return }
        state = .closed
        if let timer = connectTimer { loop.cancel(timer); connectTimer = nil }
        if let timer = drainTimer { loop.cancel(timer); drainTimer = nil }
        deadlineNanos = nil
        updateSweep()
        loop.deregister(fd)
        Glibc.close(fd)
        fd = -1
        releaseLimitSlot()
        inbound = nil
        _outbound = nil
        closeError = error
        isWritable = false
        loop.executeSoon { [self] in
            let delegate = self.delegate
            self.delegate = nil
            delegate?.connectionDidClose(self, error: error)
        }
    }

    func idleCheck(now: UInt64) {
        guard state != .closed else { return }
        if let deadline = deadlineNanos, now >= deadline {
            deadlineNanos = nil
            updateSweep()
            if isOpen {
                if let delegate { delegate.connectionDeadlinePassed(self) } else { expire("deadline") }
            }
            if state == .closed { return }
        }
        if let timeout = idleTimeout, now &- lastActivityNanos >= timeout.nanoseconds {
            expire("idle timeout")
        }
    }

    /// Closes at once with ETIMEDOUT, for a timeout named by `operation`.
    func expire(_ operation: String) {
        finish(error: SocketError(errno: ETIMEDOUT, operation: operation))
    }

    private func releaseLimitSlot() {
        limitSlot?.release()
        limitSlot = nil
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
        // A loop torn down with connections still open: their slots go back all the same.
        limitSlot?.release()
    }
}

extension EventLoop {
    /// One coarse sweep for every idle timeout on the loop, instead of a timer per connection.
    func trackIdle(_ connection: TCPConnection, enabled: Bool) {
        let key = ObjectIdentifier(connection)
        if enabled {
            idleConnections[key] = connection
            if idleSweepTimer == nil { scheduleIdleSweep() }
        } else {
            idleConnections.removeValue(forKey: key)
        }
    }

    private func scheduleIdleSweep() {
        idleSweepTimer = schedule(in: .milliseconds(100)) { [weak self] in
            guard let self else { return }
            self.idleSweepTimer = nil
            let now = monotonicNanos()
            for connection in Array(self.idleConnections.values) { connection.idleCheck(now: now) }
            if !self.idleConnections.isEmpty { self.scheduleIdleSweep() }
        }
    }
}
