import Foundation
import Glibc

/// A TCP proxy for tests that sits on a link (listener to Redis, to PostgreSQL, to the
/// producer) and injects the faults a real network and real servers produce: resets, black
/// holes, latency, refused connections, and a command that ran but whose reply was lost.
///
/// It listens on 127.0.0.1 (`port`); each accepted client gets its own connection to the
/// upstream server, and bytes are forwarded both ways by one thread of its own (plain
/// non-blocking sockets and `poll`), unchanged and in order unless a fault says otherwise.
/// Every control method is thread-safe and synchronous: when it returns, the proxy thread
/// has applied it, so a test can act on the new state at once.
///
/// Faults, precisely (the client is whoever connected to the proxy, the server is upstream):
/// - `resetAll()`: every open connection is aborted on both sides with an RST (SO_LINGER 0,
///   then close); both peers see ECONNRESET on their next read or write. Bytes the proxy
///   still held are discarded. New connections are served normally afterwards.
/// - `blackhole(true, directions:)`: the proxy stops reading from the source and writing
///   to the destination of those directions, without closing anything. Bytes are *held*,
///   never dropped (TCP loses nothing it acknowledged, and dropping part of a stream would
///   corrupt every protocol after it): the sender's writes succeed until the socket
///   buffers fill, then block; the receiver sees nothing, not even a close. `blackhole(false)`
///   delivers what was held, in order, then forwards normally. Closes and resets from a
///   peer are held too, until the black hole ends. New clients are still accepted and
///   connected upstream, but carry nothing while it lasts.
/// - `latency(_:directions:)`: each chunk read is written on no earlier than that long
///   after it was read (order kept). Changing it affects chunks read from then on.
/// - `refuse(true)`: new clients are accepted and reset at once (their connect succeeds,
///   their first read or write fails with ECONNRESET); no upstream connection is made.
///   Open connections are untouched.
/// - `armCutBeforeReply(matching:times:)`: the command ran, its reply was lost. When the
///   client-to-server bytes of a connection contain the pattern (also across two reads),
///   that connection is doomed: client bytes keep flowing to the server (so a request
///   that spans many reads, a big INSERT, arrives whole), replies the server sent before
///   the matching chunk was fully written still reach the client, and every server byte
///   read after that is swallowed, never forwarded (counted in `bytesSwallowed`). As soon
///   as some have been swallowed and every client byte read so far is written, both sides
///   are reset (RST) and `cutsFired` goes up by one. So when a test sees the cut, the
///   server has executed the command and answered it. With pipelining, answers to other
///   commands sent in the same write are lost too, as with a real reset. A request written
///   in pieces with pauses between them can be cut before its last piece if an earlier
///   answer arrives in a pause. If the server closes before answering, the client is reset
///   without a count. Each matching connection uses one of `times`; nothing else is cut.
///   `armCutBeforeNextReply(times:)` matches any client bytes.
///
/// A failed upstream connect resets the client (counted in `upstreamConnectFailures`); a
/// FIN from either peer is passed on (half-close) after the bytes before it; an RST from
/// either peer becomes an RST to the other.
public final class FaultProxy: @unchecked Sendable {
    /// One direction of a proxied connection.
    public enum Direction: Int, Sendable, CaseIterable {
        /// Client to server: requests and commands.
        case toServer = 0
        /// Server to client: replies.
        case toClient = 1
    }

    /// The counters a test asserts on to prove a fault happened (or did not).
    public struct Stats: Sendable, Equatable {
        /// Clients accepted, refused ones included.
        public var connectionsAccepted = 0
        /// Clients reset at once because `refuse(true)` was on.
        public var connectionsRefused = 0
        /// Client/server pairs open right now.
        public var connectionsOpen = 0
        /// Upstream connects that failed (the client was reset).
        public var upstreamConnectFailures = 0
        /// Pairs aborted by `resetAll()`.
        public var connectionsReset = 0
        /// Bytes written to servers.
        public var bytesToServer = 0
        /// Bytes written to clients.
        public var bytesToClient = 0
        /// Server bytes swallowed by a cut-before-reply.
        public var bytesSwallowed = 0
        /// Cuts still armed.
        public var cutsArmed = 0
        /// Cuts that happened: request forwarded, reply swallowed, connection reset.
        public var cutsFired = 0

        /// All zero.
        public init() {}
    }

    /// The port the proxy listens on (127.0.0.1).
    public let port: Int
    /// The server the proxy connects each client to.
    public let upstreamHost: String
    /// The server's port.
    public let upstreamPort: Int

    private let control: FaultProxyControl
    private let stopOnce = NSLock()
    private var stopped = false

    /// Starts a proxy listening on 127.0.0.1:`listenPort` (0: a free port, see `port`)
    /// that forwards every client to `upstreamHost`:`upstreamPort`. The upstream server
    /// need not be up yet: each client connects it anew.
    public init(listenPort: Int = 0, upstreamHost: String = "127.0.0.1", upstreamPort: Int) throws {
        let address = try FaultProxySocket.resolve(upstreamHost)
        let (listenFD, boundPort) = try FaultProxySocket.listen(port: listenPort)
        let wakeReadFD: Int32
        let wakeWriteFD: Int32
        do {
            (wakeReadFD, wakeWriteFD) = try FaultProxySocket.makePipe()
        } catch {
            close(listenFD)
            throw error
        }
        port = boundPort
        self.upstreamHost = upstreamHost
        self.upstreamPort = upstreamPort
        control = FaultProxyControl(wakeFD: wakeWriteFD)
        let control = self.control
        let thread = Thread {
            // The engine lives and dies on this thread: no other thread touches its sockets.
            let engine = FaultProxyEngine(listenFD: listenFD, wakeFD: wakeReadFD, upstream: address,
                                          upstreamPort: upstreamPort, control: control)
            engine.run()
        }
        thread.name = "fault-proxy-\(boundPort)"
        thread.start()
    }

    /// Convenience for `upstream` given as "host:port".
    public convenience init(listenPort: Int = 0, upstream: String) throws {
        guard let colon = upstream.lastIndex(of: ":"), let upstreamPort = Int(upstream[upstream.index(after: colon)...]) else {
            throw FaultProxyError.socket("upstream must be host:port, got \(upstream)")
        }
        try self.init(listenPort: listenPort, upstreamHost: String(upstream[..<colon]), upstreamPort: upstreamPort)
    }

    deinit {
        stop()
    }

    /// "127.0.0.1:`port`", for settings that take an address.
    public var address: String { "127.0.0.1:\(port)" }

    /// The latest counters (updated by the proxy thread after every turn).
    public var stats: Stats { control.currentStats }

    /// Aborts every open connection with an RST to both peers (see the type's notes).
    public func resetAll() {
        control.change { _, commands in commands.resetAll = true }
    }

    /// Holds (true) or resumes (false) the given directions of every connection.
    public func blackhole(_ on: Bool, directions: [Direction] = Direction.allCases) {
        control.change { settings, _ in
            for direction in directions { settings.blackholed[direction.rawValue] = on }
        }
    }

    /// Delays each chunk of the given directions by `delay` (zero: no delay).
    public func latency(_ delay: Duration, directions: [Direction] = Direction.allCases) {
        let (seconds, attoseconds) = delay.components
        let nanos = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds / 1_000_000_000))
        control.change { settings, _ in
            for direction in directions { settings.latencyNanos[direction.rawValue] = nanos }
        }
    }

    /// Resets new clients at once (true) or serves them again (false).
    public func refuse(_ on: Bool) {
        control.change { settings, _ in settings.refuse = on }
    }

    /// Arms `times` cuts: the next connections whose client-to-server bytes contain
    /// `pattern` get their request through and lose the reply (see the type's notes).
    /// Replaces any earlier arming.
    public func armCutBeforeReply(matching pattern: [UInt8], times: Int = 1) {
        precondition(!pattern.isEmpty && pattern.count <= FaultProxyPair.maxPatternLength,
                     "a cut pattern has 1...\(FaultProxyPair.maxPatternLength) bytes")
        control.change { _, commands in commands.arm = (pattern, max(0, times)) }
    }

    /// `armCutBeforeReply` with the pattern's UTF-8 bytes, e.g. "SET" or "INSERT".
    public func armCutBeforeReply(matching pattern: String, times: Int = 1) {
        armCutBeforeReply(matching: Array(pattern.utf8), times: times)
    }

    /// Arms `times` cuts that match whatever the next clients send: the next request on
    /// any connection runs and its reply is lost (for chaos schedules that pick no command).
    public func armCutBeforeNextReply(times: Int = 1) {
        control.change { _, commands in commands.arm = ([], max(0, times)) }
    }

    /// Cancels the cuts still armed.
    public func disarmCut() {
        control.change { _, commands in commands.arm = ([], 0) }
    }

    /// Ends every fault: no black hole, no latency, no refusal, no armed cut. Connections
    /// already reset stay gone; held bytes are delivered.
    public func heal() {
        control.change { settings, commands in
            settings = FaultSettings()
            commands.arm = ([], 0)
        }
    }

    /// Polls the counters until `condition` holds or `timeout` passes; true when it held.
    public func waitUntil(timeout: Duration = .seconds(10), _ condition: (Stats) -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            if condition(stats) { return true }
            if ContinuousClock.now >= deadline { return false }
            usleep(5_000)
        }
    }

    /// Closes the listener and every connection (FIN, not RST) and ends the thread.
    /// Idempotent; also done on deinit.
    public func stop() {
        stopOnce.lock()
        defer { stopOnce.unlock() }
        guard !stopped else { return }
        stopped = true
        control.change { _, commands in commands.stop = true }
        control.waitFinished()
    }
}
