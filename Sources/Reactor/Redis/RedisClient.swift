import CHiredis

/// A pipelining Redis client on one event loop, over hiredis' async API.
///
/// Commands are RESP-encoded by us into one reusable buffer and appended to hiredis' output
/// buffer (`redisAppendFormattedCommand`); everything issued in one loop turn leaves in one
/// `write()` before the loop sleeps. Each command's completion waits in a FIFO ring (replies
/// come back in order) instead of in hiredis' callback list, and scalar replies are built in
/// a per-connection slot, so a command and its reply allocate nothing.
///
/// Every completion runs on the loop, exactly once: with the reply, or with an error when the
/// command times out, the connection drops, the client is down or closed. The client
/// reconnects on its own with capped exponential backoff and reports `state` and
/// `lastError` for health checks.
///
/// Not Sendable: create and use it on its loop's thread.
public final class RedisClient {
    /// Whether the client can carry commands now.
    public enum State: Equatable, Sendable {
        /// TCP connect or handshake (AUTH, SELECT, SCRIPT LOAD) in progress.
        case connecting
        /// Handshake done; commands go straight to the server.
        case up
        /// Between connection attempts; `lastError` says why.
        case down
        /// `close()` was called.
        case closed
    }

    /// What happens to commands issued while the client is not up.
    public enum WhileDown: Equatable, Sendable {
        /// Complete them at once with `RedisError.notConnected`.
        case failFast
        /// Keep up to `limit` of them and send them once the handshake succeeds; each still
        /// fails with `timedOut` if it waits longer than the command timeout.
        case queue(limit: Int)
    }

    /// Timeouts, backoff and the while-down policy.
    public struct Configuration: Sendable {
        /// Longest time from starting a connect to the end of the handshake.
        public var connectTimeout: Duration
        /// Longest time a command may wait for its reply (or, queued, for a connection).
        public var commandTimeout: Duration
        /// First delay before reconnecting; doubles after each failure.
        public var reconnectDelay: Duration
        /// Cap of the reconnect delay.
        public var maxReconnectDelay: Duration
        /// What commands issued while down do.
        public var whileDown: WhileDown

        /// Defaults suit the listener: 2 s connect, 5 s per command, 50 ms..2 s backoff,
        /// up to 100,000 commands queued while down.
        public init(connectTimeout: Duration = .seconds(2), commandTimeout: Duration = .seconds(5),
                    reconnectDelay: Duration = .milliseconds(50), maxReconnectDelay: Duration = .seconds(2),
                    whileDown: WhileDown = .queue(limit: 100_000)) {
            self.connectTimeout = connectTimeout
            self.commandTimeout = commandTimeout
            self.reconnectDelay = reconnectDelay
            self.maxReconnectDelay = maxReconnectDelay
            self.whileDown = whileDown
        }
    }

    /// The loop everything runs on.
    public let loop: EventLoop
    /// Where the client connects.
    public let url: RedisURL
    /// Timeouts and policies.
    public let configuration: Configuration
    /// Current state (updated at once; `onStateChange` hears about it after the event batch).
    public private(set) var state: State = .connecting
    /// The last connection or handshake error, kept after recovery for `/health`.
    public private(set) var lastError: String?
    /// Called on the loop when the client goes up, goes down (once per outage, not per
    /// retry) or is closed, with the state and `lastError`.
    public var onStateChange: ((State, String?) -> Void)?
    /// Successful handshakes so far (1 after the first connect; more means reconnects).
    public private(set) var connectCount = 0

    /// True when commands go straight to the server.
    public var isUp: Bool { state == .up }
    /// Commands sent and not yet answered.
    public var submittedCount: Int { pending.count }
    /// Commands waiting for a connection (`.queue` policy).
    public var queuedCount: Int { waiting.count }

    private var connection: RedisConnection?
    /// Completions of the commands handed to hiredis, in send order.
    private var pending = RedisRing<PendingCommand>(capacity: 1024)
    /// Commands issued while down, in order; their encoded bytes wait in `waitingBytes`.
    private var waiting = RedisRing<PendingCommand>(capacity: 64)
    private let waitingBytes = ByteBuffer(capacity: 4096)
    /// Holds exactly one command while it is being encoded and submitted.
    let encoder = RESPEncoder()

    private var handshakeRemaining = 0
    private var connectTimer: TimerHandle?
    private var reconnectTimer: TimerHandle?
    private var watchdog: TimerHandle?
    private var backoff: Backoff
    private let commandTimeoutNanos: UInt64
    private var reportedState: State?

    /// Creates the client and starts connecting at once. Call on the loop's thread.
    public init(loop: EventLoop, url: RedisURL, configuration: Configuration = Configuration()) {
        self.loop = loop
        self.url = url
        self.configuration = configuration
        self.backoff = Backoff(initial: configuration.reconnectDelay, maximum: configuration.maxReconnectDelay)
        self.commandTimeoutNanos = max(configuration.commandTimeout.nanoseconds, 1_000_000)
        connectAttempt()
    }

    /// Parses `url` (`redis://[[user]:password@]host[:port][/db]`) and starts connecting.
    public convenience init(loop: EventLoop, url: String, configuration: Configuration = Configuration()) throws(RedisURLError) {
        self.init(loop: loop, url: try RedisURL(parsing: url), configuration: configuration)
    }

    deinit {
        for timer in [connectTimer, reconnectTimer, watchdog] { if let timer { loop.cancel(timer) } }
        if let connection {
            // Dropped without close(): completions are released uncalled.
            connection.owner = nil
            if connection.isDispatching {
                loop.executeSoon { connection.teardown(.closed) }
            } else {
                connection.teardown(.closed)
            }
        }
        pending.destroy()
        waiting.destroy()
    }

    /// Stops for good: queued and pending commands complete with `RedisError.closed`, the
    /// connection is freed (after the current hiredis callback if called from one).
    public func close() {
        guard state != .closed else { return }
        setState(.closed)
        for timer in [connectTimer, reconnectTimer, watchdog] { if let timer { loop.cancel(timer) } }
        connectTimer = nil
        reconnectTimer = nil
        watchdog = nil
        while let entry = waiting.popFirst() {
            waitingBytes.moveReaderIndex(forwardBy: entry.encodedLength)
            Self.fail(entry.completion, .closed)
        }
        if let connection { tearDown(connection, .closed) }
    }

    /// Takes back the commands waiting for a connection (never sent), oldest first, with
    /// their encoded bytes: a cluster lane leaving the map sends them to the new master.
    func takeQueued(_ body: (UnsafeRawBufferPointer, RedisCompletion) -> Void) {
        while let entry = waiting.popFirst() {
            waitingBytes.withReadableBytes { body(UnsafeRawBufferPointer(rebasing: $0[..<entry.encodedLength]), entry.completion) }
            waitingBytes.moveReaderIndex(forwardBy: entry.encodedLength)
        }
    }

    // MARK: submitting

    /// Sends the command in `encoder` (or queues or fails it, by state) and clears the
    /// buffer.
    func submit(_ completion: RedisCompletion) {
        var entry = PendingCommand(completion: completion, deadline: monotonicNanos() &+ commandTimeoutNanos)
        defer { encoder.reset() }
        switch state {
        case .up:
            guard let connection, connection.send(encoder.bytes) else {
                failSoon(completion, connection?.endReason ?? .notConnected(lastError ?? "no connection"))
                return
            }
            pending.append(entry)
            if watchdog == nil { armWatchdog() }
        case .connecting, .down:
            switch configuration.whileDown {
            case .failFast:
                failSoon(completion, .notConnected(lastError ?? "connecting to \(url)"))
            case .queue(let limit):
                guard waiting.count < limit else {
                    failSoon(completion, .queueFull(limit: limit))
                    return
                }
                entry.encodedLength = encoder.count
                waitingBytes.write(encoder.bytes)
                waiting.append(entry)
                if watchdog == nil { armWatchdog() }
            }
        case .closed:
            failSoon(completion, .closed)
        }
    }

    /// Errors found while issuing are reported after the current batch, never from inside the
    /// call that issued the command (callers need not be re-entrant).
    private func failSoon(_ completion: RedisCompletion, _ error: RedisError) {
        loop.executeSoon { Self.fail(completion, error) }
    }

    static func fail(_ completion: RedisCompletion, _ error: RedisError) {
        switch completion {
        case .reply(let done): done(.failure(error))
        case .set(_, let done): done(.failure(error))
        case .sink(let sink, let index): sink.redisReply(index, nil, error: error)
        case .bytes(let done): done(.failure(error))
        case .integer(let done): done(.failure(error))
        case .bool(let done): done(.failure(error))
        case .routed(let lane, let sequence): lane.failed(sequence, error)
        case .handshake: break
        }
    }

    // MARK: replies

    /// The reply to the oldest command sent (`reply` nil: the connection is going away).
    /// The reply is freed when this returns.
    func replyArrived(_ reply: UnsafeMutablePointer<redisReply>?, on connection: RedisConnection) {
        guard let entry = pending.popFirst() else { return }
        guard let reply else {
            let reason = connection.endReason
            if state == .up || state == .connecting { markDown(reason) }
            Self.fail(entry.completion, reason)
            return
        }
        deliver(entry, reply, connection)
        if pending.isEmpty { connection.rejectLeftoverReplies() }
    }

    private func deliver(_ entry: PendingCommand, _ reply: UnsafeMutablePointer<redisReply>, _ connection: RedisConnection) {
        if case .handshake(let step) = entry.completion {
            handshakeReply(step, reply, connection)
            return
        }
        Self.complete(entry.completion, reply)
    }

    /// Turns `reply` into the completion's result. Shared with `RedisClusterLane`, which
    /// holds the caller's completion while it may still follow a redirection.
    @inline(__always)
    static func complete(_ completion: RedisCompletion, _ reply: UnsafeMutablePointer<redisReply>) {
        let type = reply.replyType
        if type == HiredisReplyType.error {
            // A cluster lane reads error replies itself: MOVED and ASK are not the caller's.
            if case .routed(let lane, let sequence) = completion {
                lane.replyArrived(sequence, reply)
            } else {
                fail(completion, .server(reply.payloadString))
            }
            return
        }
        switch completion {
        case .reply(let done):
            done(.success(reply.copyReply()))
        case .set(let flags, let done):
            switch type {
            case HiredisReplyType.status: done(.success(.written))
            case HiredisReplyType.null: done(.success(flags.nx && !flags.get ? .taken(nil) : .written))
            case HiredisReplyType.string: done(.success(flags.nx ? .taken(Array(reply.payload)) : .written))
            default: done(.failure(.unexpectedReply("SET answered \(reply.summary)")))
            }
        case .sink(let sink, let index):
            sink.redisReply(index, RedisReplyView(reply), error: nil)
        case .bytes(let done):
            switch type {
            case HiredisReplyType.string: done(.success(Array(reply.payload)))
            case HiredisReplyType.null: done(.success(nil))
            default: done(.failure(.unexpectedReply(reply.summary)))
            }
        case .integer(let done):
            if type == HiredisReplyType.integer { done(.success(reply.pointee.integer)) } else {
                done(.failure(.unexpectedReply(reply.summary)))
            }
        case .bool(let done):
            if type == HiredisReplyType.integer { done(.success(reply.pointee.integer != 0)) } else {
                done(.failure(.unexpectedReply(reply.summary)))
            }
        case .routed(let lane, let sequence):
            lane.replyArrived(sequence, reply)
        case .handshake:
            break
        }
    }

    // MARK: connection life cycle

    private func connectAttempt() {
        guard state != .closed, connection == nil else { return }
        setState(.connecting)
        let ip: String
        do {
            ip = try Self.resolve(url.host, port: url.port)
        } catch {
            markDown(.connectionLost("resolve \(url.host): \(error)"))
            scheduleReconnect()
            return
        }
        switch RedisConnection.open(loop: loop, ip: ip, port: url.port, owner: self) {
        case .failure(let error):
            markDown(error)
            scheduleReconnect()
        case .success(let connection):
            self.connection = connection
            sendHandshake(on: connection)
            let timeout = configuration.connectTimeout
            // Captures are unowned/strong, never weak: one weak reference would move the
            // client's refcount to a side table and slow every retain on the hot path. The
            // timers are cancelled in deinit and when the connection ends.
            connectTimer = loop.schedule(in: timeout) { [unowned self, connection] in
                guard connection === self.connection, self.state != .up else { return }
                self.connectTimer = nil
                let ms = Int(timeout.nanoseconds / 1_000_000)
                self.tearDown(connection, .connectionLost("connect to \(connection.peer) timed out after \(ms) ms"))
            }
        }
    }

    /// getaddrinfo once per attempt, here, so hiredis only ever sees an IP literal.
    private static func resolve(_ host: String, port: Int) throws -> String {
        let text = try SocketAddress(host: host, port: port).description
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            return String(text[text.index(after: text.startIndex)..<close])
        }
        return String(text[..<(text.lastIndex(of: ":") ?? text.endIndex)])
    }

    /// AUTH, SELECT and a PING, pipelined before the connect even completes; the client
    /// reports up only when all of them succeeded.
    private func sendHandshake(on connection: RedisConnection) {
        handshakeRemaining = 0
        if let password = url.password {
            if let user = url.username {
                encoder.beginCommand(argumentCount: 3)
                encoder.argument("AUTH")
                encoder.argument(user)
            } else {
                encoder.beginCommand(argumentCount: 2)
                encoder.argument("AUTH")
            }
            encoder.argument(password)
            sendHandshakeCommand(.auth, on: connection)
        }
        if url.database != 0 {
            encoder.beginCommand(argumentCount: 2)
            encoder.argument("SELECT")
            encoder.argument(decimal: url.database)
            sendHandshakeCommand(.select, on: connection)
        }
        // Always one step, so "up" means the server answered (hiredis has no connect callback here).
        encoder.beginCommand(argumentCount: 1)
        encoder.argument("PING")
        sendHandshakeCommand(.ping, on: connection)
    }

    private func sendHandshakeCommand(_ step: HandshakeStep, on connection: RedisConnection) {
        defer { encoder.reset() }
        guard connection.send(encoder.bytes) else { return }
        // The connect timer bounds the handshake; these never trip the command watchdog.
        pending.append(PendingCommand(completion: .handshake(step), deadline: .max))
        handshakeRemaining += 1
    }

    private func handshakeReply(_ step: HandshakeStep, _ reply: UnsafeMutablePointer<redisReply>, _ connection: RedisConnection) {
        guard state == .connecting, connection === self.connection else { return }
        guard reply.replyType == HiredisReplyType.status, step != .ping || reply.payload.elementsEqual("PONG".utf8) else {
            let what = reply.replyType == HiredisReplyType.error ? reply.payloadString : "unexpected \(reply.summary)"
            let reason = RedisError.connectionLost("\(step.name) failed on \(connection.peer): \(what)")
            markDown(reason)
            connection.teardownReason = reason
            tearDown(connection, reason)
            return
        }
        handshakeRemaining -= 1
        if handshakeRemaining == 0 { becameUp(connection) }
    }

    private func becameUp(_ connection: RedisConnection) {
        if let timer = connectTimer { loop.cancel(timer); connectTimer = nil }
        backoff.reset()
        connectCount += 1
        setState(.up)
        // Everything queued while down leaves now, in order, in this turn's write.
        while let entry = waiting.popFirst() {
            let sent = waitingBytes.withReadableBytes { connection.send(UnsafeRawBufferPointer(rebasing: $0[..<entry.encodedLength])) }
            waitingBytes.moveReaderIndex(forwardBy: entry.encodedLength)
            if sent {
                var moved = entry
                moved.encodedLength = 0
                pending.append(moved)
            } else {
                    failSoon(entry.completion, connection.endReason)
            }
        }
        if watchdog == nil { armWatchdog() }
    }

    /// hiredis noticed the TCP connect result. On failure the NULL replies and the cleanup
    /// hook follow at once; nothing to do here but keep the hook for symmetry with ae.h.
    func connectionDidConnect(_ connection: RedisConnection, ok: Bool) {}

    /// hiredis freed the context (cleanup hook): forget it and plan the next attempt.
    func connectionDidEnd(_ connection: RedisConnection) {
        guard connection === self.connection else { return }
        self.connection = nil
        if let timer = connectTimer { loop.cancel(timer); connectTimer = nil }
        if state == .up || state == .connecting { markDown(connection.endReason) }
        // Every command sent on it and not answered fails, in order (hiredis keeps no
        // callbacks of ours to do it; see `RedisConnection.send`).
        while let entry = pending.popFirst() { Self.fail(entry.completion, connection.endReason) }
        if state != .closed { scheduleReconnect() }
    }

    /// Frees the connection now, or right after the current hiredis callback returns.
    private func tearDown(_ connection: RedisConnection, _ reason: RedisError) {
        if connection.teardownReason == nil { connection.teardownReason = reason }
        if connection.isDispatching {
            loop.executeSoon { connection.teardown(reason) }
        } else {
            connection.teardown(reason)
        }
    }

    private func scheduleReconnect() {
        guard reconnectTimer == nil, state != .closed else { return }
        let delay = backoff.nextDelay().nanoseconds
        reconnectTimer = loop.schedule(atNanos: monotonicNanos() &+ delay) { [unowned self] in
            self.reconnectTimer = nil
            self.connectAttempt()
        }
    }

    private func markDown(_ reason: RedisError) {
        lastError = reason.description
        setState(.down)
    }

    private func setState(_ new: State) {
        guard new != state else {
            if new == .down { notifyIfChanged() }
            return
        }
        state = new
        notifyIfChanged()
    }

    /// Reports up, down (once per outage) and closed; reconnect attempts stay quiet.
    private func notifyIfChanged() {
        guard state != .connecting, state != reportedState, onStateChange != nil else { return }
        reportedState = state
        let snapshot = state
        let error = lastError
        loop.executeSoon { self.onStateChange?(snapshot, error) }
    }

    // MARK: timeouts

    /// One timer for all command timeouts, at the oldest deadline: replies come in order, so
    /// only the oldest command can be the first to time out.
    private func armWatchdog() {
        guard watchdog == nil else { return }
        var next = UInt64.max
        if let deadline = pending.withFirst({ $0.deadline }) { next = deadline }
        if let deadline = waiting.withFirst({ $0.deadline }) { next = min(next, deadline) }
        guard next != .max else { return }
        watchdog = loop.schedule(atNanos: next) { [unowned self] in
            self.watchdog = nil
            self.expireCommands()
        }
    }

    private func expireCommands() {
        let now = monotonicNanos()
        let ms = Int(commandTimeoutNanos / 1_000_000)
        if let deadline = pending.withFirst({ $0.deadline }), deadline <= now, let connection {
            // The server stopped answering: nothing behind the oldest command will come back
            // either, and a late reply would be matched to the wrong command. Start over.
            tearDown(connection, .timedOut(milliseconds: ms))
        }
        while let deadline = waiting.withFirst({ $0.deadline }), deadline <= now, let entry = waiting.popFirst() {
            waitingBytes.moveReaderIndex(forwardBy: entry.encodedLength)
            Self.fail(entry.completion, .timedOut(milliseconds: ms))
        }
        armWatchdog()
    }
}

/// A command waiting for its reply or for a connection.
struct PendingCommand {
    var completion: RedisCompletion
    var deadline: UInt64
    /// Bytes of the encoded command in `waitingBytes` while queued.
    var encodedLength = 0

    init(completion: RedisCompletion, deadline: UInt64) {
        self.completion = completion
        self.deadline = deadline
    }
}

/// How a reply becomes the caller's result: one case per typed operation, so the caller's
/// closure is stored as is instead of being wrapped in another closure.
enum RedisCompletion {
    case reply((Result<RedisReply, RedisError>) -> Void)
    case sink(RedisReplySink, Int)
    case set(RedisSetFlags, (Result<RedisSetResult, RedisError>) -> Void)
    case bytes((Result<[UInt8]?, RedisError>) -> Void)
    case integer((Result<Int64, RedisError>) -> Void)
    case bool((Result<Bool, RedisError>) -> Void)
    /// Sent by a cluster lane, which finds the caller's completion by `sequence`.
    case routed(RedisClusterLane, Int)
    case handshake(HandshakeStep)
}

struct RedisSetFlags {
    var nx: Bool
    var get: Bool
}

enum HandshakeStep {
    case auth
    case select
    case ping

    var name: String {
        switch self {
        case .auth: return "AUTH"
        case .select: return "SELECT"
        case .ping: return "PING"
        }
    }
}
