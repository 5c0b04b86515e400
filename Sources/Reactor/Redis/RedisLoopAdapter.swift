import CHiredis
import Glibc

/// One hiredis async context driven by our loop: hiredis' `adapters/ae.h` in Swift.
///
/// hiredis asks for read/write interest through the `ev` hooks; we translate them into the
/// loop's registration of `ac->c.fd` (level-triggered, because `redisBufferRead` reads at
/// most 16 KiB per call). Writes are not armed as EPOLLOUT once connected: the first
/// `addWrite` of a turn schedules one `redisAsyncHandleWrite` in the loop's before-sleep
/// pass, so every command issued in the turn leaves in one `write()`; EPOLLOUT is armed
/// only when the kernel refused part of it (Redis' handleClientsWithPendingWrites).
///
/// Never frees the context from inside a hiredis callback: `teardown` is for timers and
/// deferred work only; the owner checks `isDispatching` first (hiredis itself frees a
/// context it is dispatching only after the callback returns).
final class RedisConnection: IOHandler, Flushable {
    let loop: EventLoop
    /// The hiredis context; nil once hiredis freed it (our `cleanup` hook ran).
    private(set) var context: UnsafeMutablePointer<redisAsyncContext>?
    let fd: Int32
    /// "ip:port", for messages.
    let peer: String
    /// Receives replies and the end of the connection. Not weak: a weak reference would put
    /// the client's refcount in a side table (slow retains on every command); the client
    /// clears it before it goes away.
    unowned(unsafe) var owner: RedisClient?

    private var registered = false
    private var wantRead = false
    /// EPOLLOUT armed: only while connecting or after the kernel refused bytes.
    private var wantWrite = false
    private var flushScheduled = false
    private var inFlush = false
    private var dispatchDepth = 0
    /// A read failed; the teardown is scheduled.
    private var readFailed = false

    /// Storage for top-level replies (see `RedisReplyObjects`); outlives the context.
    let replySlot = RedisReplyObjects.allocateSlot()

    /// Why we tore the connection down ourselves (timeout, close, failed handshake); pending
    /// commands complete with this instead of a generic "connection lost".
    var teardownReason: RedisError?
    private var cachedEndReason: RedisError?

    private init(loop: EventLoop, context: UnsafeMutablePointer<redisAsyncContext>, peer: String) {
        self.loop = loop
        self.context = context
        self.fd = context.pointee.c.fd
        self.peer = peer
    }

    /// Starts a nonblocking connect to an IP literal (resolution happened before: hiredis
    /// would run a blocking getaddrinfo here). Fails at once only when the socket could not
    /// even be created; a refused connect shows up later through the owner.
    static func open(loop: EventLoop, ip: String, port: Int, owner: RedisClient) -> Result<RedisConnection, RedisError> {
        guard let ac = redisAsyncConnect(ip, Int32(port)) else {
            return .failure(.connectionLost("cannot allocate a hiredis context"))
        }
        if ac.pointee.err != 0 {
            let message = RedisConnection.message(ac.pointee.c.errstr)
            redisAsyncFree(ac)
            return .failure(.connectionLost("connect \(ip):\(port): \(message)"))
        }
        let connection = RedisConnection(loop: loop, context: ac, peer: "\(ip):\(port)")
        connection.owner = owner
        ac.pointee.data = Unmanaged.passUnretained(connection).toOpaque()
        // Keep the reader's buffer between replies instead of freeing and reallocating it,
        // and build top-level replies in the connection's slot instead of calloc/malloc.
        ac.pointee.c.reader.pointee.maxbuf = 0
        RedisReplyObjects.install(on: ac.pointee.c.reader, slot: connection.replySlot)
        // The hooks must be in place before redisAsyncSetConnectCallback, which calls addWrite.
        ac.pointee.ev.data = Unmanaged.passUnretained(connection).toOpaque()
        ac.pointee.ev.addRead = { data in RedisConnection.from(data)?.setRead(true) }
        ac.pointee.ev.delRead = { data in RedisConnection.from(data)?.setRead(false) }
        ac.pointee.ev.addWrite = { data in RedisConnection.from(data)?.requestWrite() }
        ac.pointee.ev.delWrite = { data in RedisConnection.from(data)?.setWrite(false) }
        ac.pointee.ev.cleanup = { data in RedisConnection.from(data)?.contextGone() }
        _ = redisAsyncSetConnectCallback(ac) { ac, status in
            guard let ac, let data = ac.pointee.data else { return }
            let connection = Unmanaged<RedisConnection>.fromOpaque(data).takeUnretainedValue()
            if status != REDIS_OK {
                connection.cachedEndReason = .connectionLost(
                    "connect \(connection.peer): \(RedisConnection.message(ac.pointee.c.errstr))")
            }
            connection.owner?.connectionDidConnect(connection, ok: status == REDIS_OK)
        }
        return .success(connection)
    }

    private static func from(_ data: UnsafeMutableRawPointer?) -> RedisConnection? {
        guard let data else { return nil }
        return Unmanaged<RedisConnection>.fromOpaque(data).takeUnretainedValue()
    }

    /// Reads hiredis' fixed `char errstr[128]`.
    static func message<T>(_ errstr: T) -> String {
        withUnsafeBytes(of: errstr) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// True while hiredis is on the stack (reading, writing or freeing): no free now.
    var isDispatching: Bool { dispatchDepth > 0 }

    /// True once the TCP connect finished.
    var isConnected: Bool {
        guard let ac = context else { return false }
        return ac.pointee.c.flags & REDIS_CONNECTED != 0
    }

    /// Why the connection ended, computed once while hiredis' error string is still there.
    var endReason: RedisError {
        if let reason = teardownReason { return reason }
        if let reason = cachedEndReason { return reason }
        var text = "connection to \(peer) closed"
        if let ac = context, ac.pointee.c.err != 0 {
            text = "\(peer): \(RedisConnection.message(ac.pointee.c.errstr))"
        }
        let reason = RedisError.connectionLost(text)
        cachedEndReason = reason
        return reason
    }

    // MARK: commands

    /// Hands one RESP-encoded command to hiredis (copied into its output buffer, which
    /// leaves in this turn's write). Its reply comes back through `RedisClient.replyArrived`,
    /// in order; if the connection ends first, the client fails it (`connectionDidEnd`).
    ///
    /// Appended with the plain context's `redisAppendFormattedCommand`, not the async
    /// API's: that one mallocs a callback node per command (and frees it per reply), one
    /// allocation per claim on the listener's hot path, while the client's ring already
    /// knows which completion each reply belongs to. Replies are read by `readReplies`.
    @inline(__always)
    func send(_ command: UnsafeRawBufferPointer) -> Bool {
        guard let ac = context, !readFailed else { return false }
        let c = Self.plainContext(ac)
        guard c.pointee.flags & (REDIS_DISCONNECTING | REDIS_FREEING) == 0,
              redisAppendFormattedCommand(c, command.baseAddress?.assumingMemoryBound(to: CChar.self), command.count) == REDIS_OK
        else { return false }
        requestWrite()
        return true
    }

    /// `&ac->c`: the async context starts with its plain context.
    @inline(__always)
    private static func plainContext(_ ac: UnsafeMutablePointer<redisAsyncContext>) -> UnsafeMutablePointer<redisContext> {
        UnsafeMutableRawPointer(ac).assumingMemoryBound(to: redisContext.self)
    }

    /// Reads what the socket has and hands every whole reply to the owner, in order (what
    /// `redisAsyncHandleRead` does, minus its callback list). A read or protocol error
    /// tears the connection down after this event.
    private func readReplies(_ ac: UnsafeMutablePointer<redisAsyncContext>) {
        let c = Self.plainContext(ac)
        guard redisBufferRead(c) == REDIS_OK else { return readFailedNow() }
        while context != nil, !readFailed {
            var reply: UnsafeMutableRawPointer?
            guard redisGetReplyFromReader(c, &reply) == REDIS_OK else { return readFailedNow() }
            guard let reply else { return }
            owner?.replyArrived(reply.assumingMemoryBound(to: redisReply.self), on: self)
            RedisReplyObjects.free(reply)
        }
    }

    /// The connection is unusable (EOF, a socket error or a protocol error, in `c->err`):
    /// free it once this event is handled.
    private func readFailedNow() {
        guard !readFailed else { return }
        readFailed = true
        _ = endReason
        loop.executeSoon { [self] in teardown(endReason) }
    }

    // MARK: hiredis event hooks

    private func setRead(_ on: Bool) {
        wantRead = on
        updateInterest()
    }

    private func setWrite(_ on: Bool) {
        wantWrite = on
        updateInterest()
    }

    /// hiredis has bytes to send. Before the connect completes, wait for EPOLLOUT (that is how
    /// hiredis learns the connect result); after it, flush once before the loop sleeps.
    private func requestWrite() {
        if inFlush || !isConnected {
            setWrite(true)
            return
        }
        // EPOLLOUT armed means the kernel buffer is full: the writable event will flush.
        guard !wantWrite, !flushScheduled else { return }
        flushScheduled = true
        loop.scheduleFlush(self)
    }

    func flushPending() {
        flushScheduled = false
        guard let ac = context else { return }
        inFlush = true
        dispatchDepth += 1
        redisAsyncHandleWrite(ac)
        dispatchDepth -= 1
        inFlush = false
    }

    private func updateInterest() {
        guard context != nil else { return }
        var mask: IOMask = []
        if wantRead { mask.insert(.readable) }
        if wantWrite { mask.insert(.writable) }
        if registered {
            try? loop.modify(fd, mask: mask)
        } else if !mask.isEmpty {
            do {
                try loop.register(fd, mask: mask, handler: self)
                registered = true
            } catch {
                // Without registration nothing ever completes; the connect timer reports it.
                cachedEndReason = .connectionLost("cannot watch redis socket: \(error)")
            }
        }
    }

    /// hiredis' `cleanup` hook: the context is being freed (after it failed every pending
    /// callback with NULL). Stop watching the fd before hiredis closes it.
    private func contextGone() {
        guard context != nil else { return }
        _ = endReason
        if registered {
            loop.deregister(fd)
            registered = false
        }
        context = nil
        owner?.connectionDidEnd(self)
    }

    // MARK: events

    func handleIO(_ mask: IOMask) {
        guard let ac = context else { return }
        dispatchDepth += 1
        defer { dispatchDepth -= 1 }
        if mask.contains(.readable) && wantRead && !readFailed {
            if isConnected && (owner?.submittedCount ?? 0) == 0 { rejectUnsolicitedInput() }
            if isConnected { readReplies(ac) } else { redisAsyncHandleRead(ac) }
        }
        // Errors and hang-ups come as readable+writable: only write when asked to.
        if mask.contains(.writable) && wantWrite && !readFailed, let ac = context {
            redisAsyncHandleWrite(ac)
        }
    }

    // MARK: garbage guard

    /// hiredis 0.14 asserts (aborting the process) on a non-error reply nobody asked for.
    /// A real Redis never sends one outside pub/sub, so such bytes mean the peer is not a
    /// Redis server: turn them into a protocol error that closes the connection instead.
    private func rejectUnsolicitedInput() {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        if n == 1 && byte != UInt8(ascii: "-") { poison("unsolicited data from \(peer) (not a Redis server?)") }
    }

    /// Called after the last pending reply: bytes still in hiredis' reader would be parsed as
    /// a reply with no callback.
    func rejectLeftoverReplies() {
        guard let ac = context, let reader = ac.pointee.c.reader else { return }
        let r = reader.pointee
        guard r.pos < r.len, let buf = r.buf else { return }
        if UInt8(bitPattern: buf[r.pos]) != UInt8(ascii: "-") {
            poison("more replies than commands from \(peer) (not a Redis server?)")
        }
    }

    /// Puts the context and its reader into a protocol-error state, so hiredis' next read or
    /// parse fails and tears the connection down through its normal error path.
    private func poison(_ message: String) {
        guard let ac = context else { return }
        let code = Int32(REDIS_ERR_PROTOCOL)
        ac.pointee.c.err = code
        RedisConnection.store(message, into: &ac.pointee.c.errstr)
        if let reader = ac.pointee.c.reader {
            reader.pointee.err = code
            RedisConnection.store(message, into: &reader.pointee.errstr)
        }
    }

    private static func store<T>(_ message: String, into errstr: inout T) {
        withUnsafeMutableBytes(of: &errstr) { raw in
            let bytes = Array(message.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
    }

    // MARK: teardown

    /// Frees the context now: hiredis fails every pending callback with NULL (they complete
    /// with `reason`), calls our cleanup hook and closes the fd. Never call it while
    /// `isDispatching`.
    func teardown(_ reason: RedisError) {
        guard let ac = context else { return }
        precondition(!isDispatching, "redis context freed from inside a hiredis callback")
        if teardownReason == nil { teardownReason = reason }
        dispatchDepth += 1
        redisAsyncFree(ac)
        dispatchDepth -= 1
    }

    deinit {
        // The owner tears down before dropping us; this is the last-resort path.
        // Detach every hook first: hiredis must not call back into an object being destroyed.
        if let ac = context {
            ac.pointee.data = nil
            ac.pointee.ev.data = nil
            ac.pointee.ev.cleanup = nil
            redisAsyncFree(ac)
        }
        replySlot.deallocate()
    }
}
