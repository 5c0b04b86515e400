/// When a client tries again after its connection fails or closes.
public enum WebSocketReconnectPolicy: Sendable, Equatable {
    /// Never: the client stays closed.
    case never
    /// Capped exponential backoff with jitter: the n-th consecutive failed attempt waits a
    /// random time in [d/2, d] with d = min(max, initial * 2^(n-1)). The count resets
    /// once a handshake succeeds.
    case backoff(initial: Duration, max: Duration)

    /// The delay before attempt `attempt` (1 = first retry); `unit` in [0, 1) is the jitter.
    public func delay(attempt: Int, unit: Double) -> Duration? {
        guard case .backoff(let initial, let maximum) = self else { return nil }
        let capped = Double(Backoff(initial: initial, maximum: maximum).delay(afterFailures: attempt).nanoseconds)
        return .nanoseconds(Int64(capped / 2 + capped / 2 * unit))
    }
}

/// What the owner of a WebSocketClient implements on top of the message callbacks.
public protocol WebSocketClientDelegate: WebSocketDelegate {
    /// A connection attempt failed (TCP connect, handshake) before the socket opened.
    func webSocketClient(_ client: WebSocketClient, didFailToConnect error: WebSocketClientError)

    /// Called before each reconnection attempt: return the URL to use (e.g. with an updated
    /// `from_seq`), or nil to keep the current one.
    func webSocketClient(_ client: WebSocketClient, urlForReconnectAttempt attempt: Int) -> WebSocketURL?
}

extension WebSocketClientDelegate {
    public func webSocketClient(_ client: WebSocketClient, didFailToConnect error: WebSocketClientError) {}
    public func webSocketClient(_ client: WebSocketClient, urlForReconnectAttempt attempt: Int) -> WebSocketURL? { nil }
}

/// Why a client connection attempt failed.
public enum WebSocketClientError: Error, Equatable, Sendable, CustomStringConvertible {
    case connect(SocketError)
    case closedDuringHandshake(SocketError?)
    case badResponse(String)
    case timeout

    public var description: String {
        switch self {
        case .connect(let e): return "connect failed: \(e)"
        case .closedDuringHandshake(let e): return "connection closed during the handshake\(e.map { ": \($0)" } ?? "")"
        case .badResponse(let why): return "bad handshake response: \(why)"
        case .timeout: return "handshake timed out"
        }
    }
}

/// A WebSocket client on one loop: connects to a `ws://` URL, performs the handshake
/// (CSPRNG key, checks 101 and Sec-WebSocket-Accept) and, with a backoff policy, reconnects
/// whenever the connection fails or closes, until `close()` is called.
public final class WebSocketClient {
    /// The loop everything runs on.
    public let loop: EventLoop
    /// The URL of the current (or next) attempt.
    public private(set) var url: WebSocketURL
    /// Limits for the connections it makes.
    public let configuration: WebSocketConfiguration
    /// The reconnect policy.
    public var reconnect: WebSocketReconnectPolicy
    /// Receives messages and lifecycle events. Weak, like WebSocketConnection's.
    public weak var delegate: WebSocketClientDelegate?
    /// The open connection, nil while connecting or waiting to reconnect.
    public private(set) var socket: WebSocketConnection?
    /// Consecutive failed attempts since the last successful handshake.
    public private(set) var failedAttempts = 0
    /// Successful handshakes so far (tests, metrics).
    public private(set) var connectCount = 0
    /// The headers of the last accepted handshake response (a server's own headers, such
    /// as the id of the stream it serves, ride on it).
    public private(set) var responseHeaders = HTTPHeaders()

    private var handshake: WebSocketClientHandshake?
    private var retryTimer: TimerHandle?
    private var stopped = true
    private var jitter = SystemRandomNumberGenerator()

    /// Creates a client; nothing happens until `connect()`.
    public init(loop: EventLoop, url: WebSocketURL, configuration: WebSocketConfiguration = WebSocketConfiguration(),
                reconnect: WebSocketReconnectPolicy = .never, delegate: WebSocketClientDelegate? = nil) {
        self.loop = loop
        self.url = url
        self.configuration = configuration
        self.reconnect = reconnect
        self.delegate = delegate
    }

    /// Parses `url` first; throws a clear error for `wss://` and malformed URLs.
    public convenience init(loop: EventLoop, url: String, configuration: WebSocketConfiguration = WebSocketConfiguration(),
                            reconnect: WebSocketReconnectPolicy = .never, delegate: WebSocketClientDelegate? = nil) throws {
        self.init(loop: loop, url: try WebSocketURL(parsing: url), configuration: configuration,
                  reconnect: reconnect, delegate: delegate)
    }

    /// True while a handshake is done and the close handshake has not started.
    public var isConnected: Bool { socket?.isOpen ?? false }

    /// Starts connecting (no-op while a connection or attempt is in progress).
    public func connect() {
        stopped = false
        guard socket == nil, handshake == nil, retryTimer == nil else { return }
        attempt()
    }

    /// Stops reconnecting and closes the connection (close handshake with `code`), or
    /// abandons an attempt in progress.
    public func close(code: WebSocketCloseCode = .normalClosure, reason: String = "") {
        stopped = true
        if let timer = retryTimer { loop.cancel(timer); retryTimer = nil }
        if let handshake { handshake.abandon(); self.handshake = nil }
        socket?.close(code: code, reason: reason)
    }

    private func attempt() {
        let target = url
        let handshake = WebSocketClientHandshake(client: self, url: target)
        self.handshake = handshake
        do {
            handshake.connection = try TCPConnection.connect(loop: loop, host: target.host, port: target.port,
                                                             timeout: configuration.handshakeTimeout, delegate: handshake)
            handshake.armTimeout(configuration.handshakeTimeout)
        } catch let error as SocketError {
            // Report after this call returns, so connect() never calls back re-entrantly.
            loop.executeSoon { [weak self] in self?.handshakeFailed(handshake, .connect(error)) }
        } catch {
            loop.executeSoon { [weak self] in self?.handshakeFailed(handshake, .connect(SocketError(errno: 0, operation: "\(error)"))) }
        }
    }

    func handshakeFailed(_ handshake: WebSocketClientHandshake, _ error: WebSocketClientError) {
        guard self.handshake === handshake else { return }
        self.handshake = nil
        failedAttempts += 1
        delegate?.webSocketClient(self, didFailToConnect: error)
        scheduleRetry()
    }

    func handshakeSucceeded(_ handshake: WebSocketClientHandshake, socket: WebSocketConnection) {
        self.handshake = nil
        failedAttempts = 0
        connectCount += 1
        responseHeaders = handshake.responseHeaders
        self.socket = socket
        socket.delegate = delegate
        socket.onClosed = { [weak self] closed in
            guard let self, self.socket === closed else { return }
            self.socket = nil
            self.scheduleRetry()
        }
        delegate?.webSocketDidOpen(socket)
    }

    private func scheduleRetry() {
        guard !stopped, retryTimer == nil else { return }
        let attemptNumber = failedAttempts + 1
        let unit = Double(jitter.next() >> 11) / Double(1 << 53)
        guard let delay = reconnect.delay(attempt: attemptNumber, unit: unit) else { return }
        retryTimer = loop.schedule(in: delay) { [weak self] in
            guard let self else { return }
            self.retryTimer = nil
            guard !self.stopped else { return }
            if let next = self.delegate?.webSocketClient(self, urlForReconnectAttempt: attemptNumber) { self.url = next }
            self.attempt()
        }
    }
}
