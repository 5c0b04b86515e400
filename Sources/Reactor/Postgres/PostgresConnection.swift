import CPostgres

/// Whether the link to PostgreSQL is usable, for `/health`.
public enum PostgresConnectionState: Sendable, Equatable {
    /// A connection attempt is under way.
    case connecting
    /// Connected, in pipeline mode, sending work.
    case up
    /// Not connected; a reconnect is scheduled (see `lastError` for why).
    case down
    /// `close()` was called; nothing more happens.
    case closed
}

/// One PostgreSQL connection driven by an `EventLoop`: nonblocking connect, pipeline mode,
/// prepared statements, a bounded FIFO of operations, reconnect with capped backoff.
///
/// Loop-bound like every reactor type: create and use it on the loop's thread only. Every
/// operation's completion runs exactly once on the loop: with its result, or with an error
/// when the server refuses it, the connection drops while it is in flight, it waits longer
/// than `operationTimeout`, the queue is full, or the client is closed.
public final class PostgresConnection: IOHandler {
    /// The loop this connection lives on.
    public let loop: EventLoop
    /// The settings this connection was made with.
    public let configuration: PostgresConfiguration

    /// Up, down, connecting or closed.
    public private(set) var state: PostgresConnectionState = .down
    /// The most recent connection-level failure (kept after a successful reconnect, so
    /// `/health` can say what went wrong last).
    public private(set) var lastError: PostgresError?
    /// Called on every state change, with `lastError`.
    public var onStateChange: ((PostgresConnectionState, PostgresError?) -> Void)?
    /// Called when `canAcceptWork` flips (backpressure).
    public var onCanAcceptWorkChange: ((Bool) -> Void)?
    /// False while the server is down or the backlog is at its bound: callers should stop
    /// taking new work until it turns true again (`onCanAcceptWorkChange`).
    public private(set) var canAcceptWork = false
    /// Successful connections made so far (1 after the first connect; more after reconnects).
    public private(set) var connectCount = 0
    /// Operations run again after an abort or a transient server error.
    public private(set) var retriedOperationCount = 0

    /// Operations queued or in flight.
    public var pendingOperationCount: Int { queued.count + inFlight.count }

    /// Operations sent to the server and not yet answered (the pipeline depth right now).
    public var inFlightOperationCount: Int { inFlight.count }

    var conn: OpaquePointer?
    private var fd: Int32 = -1
    /// Bumped on every successful connect: statements remember the epoch they were
    /// prepared in, so a new server session re-prepares them lazily.
    var epoch: UInt64 = 0
    var queued = HeadQueue<PostgresOperation>()
    var inFlight = HeadQueue<PostgresOperation>()
    var wantsWrite = false
    private var pumpScheduled = false
    private var connectTimer: TimerHandle?
    private var reconnectTimer: TimerHandle?
    private var sweepTimer: TimerHandle?
    private var backoff: Backoff
    private var statementCounter = 0

    /// Checks a connection URI the way libpq will read it; nil when it parses.
    public static func validate(url: String) -> PostgresError? {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let options = url.withCString { PQconninfoParse($0, &errorMessage) }
        if let options {
            PQconninfoFree(options)
            return nil
        }
        var text = "could not parse connection URI"
        if let errorMessage {
            text = PostgresError.trimmed(String(cString: errorMessage))
            PQfreemem(errorMessage)
        }
        return PostgresError(.invalidURI, text)
    }

    /// Validates the URI and starts connecting at once; work submitted before the connection
    /// is up waits in the queue. Throws only for a URI that cannot be parsed.
    public init(loop: EventLoop, configuration: PostgresConfiguration) throws(PostgresError) {
        if let error = Self.validate(url: configuration.url) { throw error }
        self.loop = loop
        self.configuration = configuration
        backoff = Backoff(initial: configuration.initialBackoff, maximum: configuration.maxBackoff)
        startConnect()
    }

    /// Connects to `url` with default settings.
    public convenience init(loop: EventLoop, url: String) throws(PostgresError) {
        try self.init(loop: loop, configuration: PostgresConfiguration(url: url))
    }

    deinit {
        if let conn { PQfinish(conn) }
    }

    /// Closes the connection for good: pending operations fail with `.closed`.
    public func close() {
        guard state != .closed else { return }
        for timer in [connectTimer, reconnectTimer, sweepTimer] { if let timer { loop.cancel(timer) } }
        connectTimer = nil
        reconnectTimer = nil
        sweepTimer = nil
        teardown()
        setState(.closed)
        let failed = inFlight.removeAll() + queued.removeAll()
        for op in failed { op.finish(.failure(PostgresError(.closed, "connection closed"))) }
    }

    // MARK: connecting

    private func startConnect() {
        reconnectTimer = nil
        guard state != .closed else { return }
        setState(.connecting)
        // The first PQconnectPoll step runs inside PQconnectStart; after it libpq wants to
        // write (the TCP connect is pending), so we wait for writability first.
        guard let c = configuration.url.withCString({ PQconnectStart($0) }) else {
            connectFailed(PostgresError(.connectFailed, "out of memory starting a connection"))
            return
        }
        conn = c
        // Notices (e.g. "relation already exists, skipping") would go to stderr by default.
        PQsetNoticeProcessor(c, { _, _ in }, nil)
        if PQstatus(c) == CONNECTION_BAD {
            connectFailed(PostgresError.fromConnection(.connectFailed, c, fallback: "connection failed"))
            return
        }
        connectTimer = loop.schedule(in: configuration.connectTimeout) { [weak self] in
            guard let self, self.state == .connecting else { return }
            self.connectTimer = nil
            self.connectFailed(PostgresError(.connectTimeout, "no connection within \(self.configuration.connectTimeout)"))
        }
        watchSocket(.writable)
    }

    /// Registers libpq's current socket for `mask`. libpq may close and reopen its socket
    /// during connect (next host, SSL retry) under the same fd number, and the loop's
    /// `modify` skips the syscall when the mask is unchanged, so we always remove and add
    /// again: the new socket is what the kernel then watches.
    private func watchSocket(_ mask: IOMask) {
        guard let conn else { return }
        if fd >= 0 { loop.deregister(fd) }
        fd = PQsocket(conn)
        guard fd >= 0 else {
            connectFailed(PostgresError.fromConnection(.connectFailed, conn, fallback: "libpq has no socket"))
            return
        }
        do {
            try loop.register(fd, mask: mask, handler: self)
        } catch {
            fd = -1
            connectFailed(PostgresError(.connectFailed, "cannot watch the socket: \(error)"))
        }
    }

    private func continueConnect() {
        guard let conn else { return }
        switch PQconnectPoll(conn) {
        case PGRES_POLLING_READING:
            watchSocket(.readable)
        case PGRES_POLLING_WRITING:
            watchSocket(.writable)
        case PGRES_POLLING_OK:
            connected()
        default:
            connectFailed(PostgresError.fromConnection(.connectFailed, conn, fallback: "connection failed"))
        }
    }

    private func connected() {
        guard let conn else { return }
        if let timer = connectTimer { loop.cancel(timer) }
        connectTimer = nil
        guard PQsetnonblocking(conn, 1) == 0 else {
            connectFailed(PostgresError.fromConnection(.connectFailed, conn, fallback: "PQsetnonblocking failed"))
            return
        }
        guard PQenterPipelineMode(conn) == 1 else {
            connectFailed(PostgresError.fromConnection(.connectFailed, conn, fallback: "PQenterPipelineMode failed"))
            return
        }
        watchSocket(.readable)
        guard self.conn != nil else { return }
        epoch &+= 1
        connectCount += 1
        backoff.reset()
        setState(.up)
        pump()
    }

    private func connectFailed(_ error: PostgresError) {
        teardown()
        lastError = error
        setState(.down)
        scheduleReconnect()
    }

    private func scheduleReconnect() {
        guard state != .closed, reconnectTimer == nil else { return }
        let delay = backoff.nextDelay()
        reconnectTimer = loop.schedule(in: delay) { [weak self] in self?.startConnect() }
    }

    /// Frees libpq's connection and forgets the socket; deregister first, while the fd is
    /// still open, so the epoll set really drops it.
    private func teardown() {
        if let timer = connectTimer { loop.cancel(timer) }
        connectTimer = nil
        if fd >= 0 { loop.deregister(fd) }
        fd = -1
        if let conn { PQfinish(conn) }
        conn = nil
        wantsWrite = false
    }

    /// The connection broke (or is stuck): everything in flight fails back to its caller,
    /// who still holds the data; queued work waits for the reconnect or its timeout.
    func dropConnection(_ error: PostgresError, expiredAt now: UInt64? = nil) {
        guard state == .up || state == .connecting else { return }
        teardown()
        lastError = error
        setState(.down)
        scheduleReconnect()
        let failed = inFlight.removeAll()
        for op in failed {
            if let now, op.deadline <= now {
                op.finish(.failure(PostgresError(.timeout, "no answer within \(configuration.operationTimeout)")))
            } else {
                op.finish(.failure(PostgresError(.connectionLost, error.message)))
            }
        }
        updateAcceptWork()
    }

    private func setState(_ newState: PostgresConnectionState) {
        guard state != newState else { return }
        state = newState
        updateAcceptWork()
        onStateChange?(newState, lastError)
    }

    /// Recomputes `canAcceptWork` with hysteresis (off at the bound, on again at 3/4), so a
    /// caller hovering at the limit is not flipped on and off every operation.
    func updateAcceptWork() {
        let pending = pendingOperationCount
        let limit = configuration.maxPendingOperations
        let accept: Bool
        if state != .up {
            accept = false
        } else if canAcceptWork {
            accept = pending < limit
        } else {
            accept = pending <= limit * 3 / 4
        }
        guard accept != canAcceptWork else { return }
        canAcceptWork = accept
        onCanAcceptWorkChange?(accept)
    }

    // MARK: I/O

    /// Readiness of libpq's socket: drives the connect state machine, then flushes pending
    /// output and reads results.
    public func handleIO(_ mask: IOMask) {
        switch state {
        case .connecting:
            continueConnect()
        case .up:
            if mask.contains(.writable) && wantsWrite { flush() }
            if mask.contains(.readable) && state == .up { readResults() }
        case .down, .closed:
            break
        }
    }

    /// Sends libpq's buffered output; arms EPOLLOUT only while the kernel refuses more.
    func flush() {
        guard let conn else { return }
        switch PQflush(conn) {
        case 0:
            if wantsWrite {
                wantsWrite = false
                watchInterest([.readable])
            }
        case 1:
            if !wantsWrite {
                wantsWrite = true
                watchInterest([.readable, .writable])
            }
        default:
            dropConnection(PostgresError.fromConnection(.connectionLost, conn, fallback: "write failed"))
        }
    }

    private func watchInterest(_ mask: IOMask) {
        do {
            try loop.modify(fd, mask: mask)
        } catch {
            dropConnection(PostgresError(.connectionLost, "cannot watch the socket: \(error)"))
        }
    }

    private func readResults() {
        guard let conn else { return }
        if PQconsumeInput(conn) == 0 {
            dropConnection(PostgresError.fromConnection(.connectionLost, conn, fallback: "read failed"))
            return
        }
        processResults()
        if let conn = self.conn, PQstatus(conn) == CONNECTION_BAD {
            dropConnection(PostgresError.fromConnection(.connectionLost, conn, fallback: "connection lost"))
            return
        }
        pump()
    }

    // MARK: submitting

    /// Queues an operation, or fails it (on the next loop pass, never re-entrantly) when the
    /// queue is at its bound, the client is closed, or the link is down and we must not queue.
    func submit(_ op: PostgresOperation) {
        let failure: PostgresError?
        if state == .closed {
            failure = PostgresError(.closed, "connection closed")
        } else if pendingOperationCount >= configuration.maxPendingOperations {
            failure = PostgresError(.queueFull, "\(pendingOperationCount) operations pending (limit \(configuration.maxPendingOperations))")
        } else if state != .up && !configuration.queueWhileDown {
            failure = PostgresError(.notConnected, lastError?.message ?? "not connected")
        } else {
            failure = nil
        }
        if let failure {
            loop.executeSoon { op.finish(.failure(failure)) }
            return
        }
        op.deadline = loop.nowNanos &+ configuration.operationTimeout.nanoseconds
        queued.append(op)
        schedulePump()
        ensureSweep()
        updateAcceptWork()
    }

    /// Everything submitted in one loop pass goes out in one flush.
    private func schedulePump() {
        guard !pumpScheduled else { return }
        pumpScheduled = true
        loop.executeSoon { [weak self] in
            guard let self else { return }
            self.pumpScheduled = false
            self.pump()
        }
    }

    /// Moves queued operations into the pipeline up to `maxInFlight`, then flushes once.
    func pump() {
        guard state == .up, let conn else { return }
        var sent = false
        while inFlight.count < configuration.maxInFlight, let op = queued.popFirst() {
            guard send(op, on: conn) else {
                queued.prepend(op)
                dropConnection(PostgresError.fromConnection(.connectionLost, conn, fallback: "send failed"))
                return
            }
            inFlight.append(op)
            sent = true
        }
        if sent { flush() }
    }

    /// Called by the result reader when an operation's sync arrived.
    func retryOrFinish(_ op: PostgresOperation) {
        if let error = op.failure {
            let retryable = op.aborted && op.error == nil || (op.error?.isTransient ?? false)
            if retryable && op.attempts < configuration.maxRetries && loop.nowNanos < op.deadline {
                op.attempts += 1
                retriedOperationCount += 1
                op.resetAttempt()
                queued.prepend(op)
                schedulePump()
                return
            }
            op.finish(.failure(error))
        } else {
            op.finish(.success(op.takeResult()))
        }
        updateAcceptWork()
    }

    func nextStatementName() -> String {
        statementCounter += 1
        return "stmt_\(statementCounter)"
    }

    // MARK: timeouts

    private func ensureSweep() {
        guard sweepTimer == nil, pendingOperationCount > 0 else { return }
        let quarter = configuration.operationTimeout / 4
        let period = max(.milliseconds(20), min(quarter, .milliseconds(500)))
        sweepTimer = loop.schedule(in: period) { [weak self] in
            guard let self else { return }
            self.sweepTimer = nil
            self.sweep()
            self.ensureSweep()
        }
    }

    /// Fails queued operations past their deadline; an in-flight one past its deadline means
    /// the server stopped answering, so the connection is dropped and made anew.
    private func sweep() {
        let now = loop.nowNanos
        let expired = queued.removeExpired(now: now)
        for op in expired {
            let why = state == .up ? "still queued" : "PostgreSQL is \(state)"
            op.finish(.failure(PostgresError(.timeout, "\(why) after \(configuration.operationTimeout)")))
        }
        if let head = inFlight.first, head.deadline <= now {
            dropConnection(PostgresError(.timeout, "server did not answer within \(configuration.operationTimeout)"), expiredAt: now)
        }
        updateAcceptWork()
    }
}
