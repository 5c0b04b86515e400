/// What the owner of a WebSocket connection implements. Every call comes on the loop thread.
public protocol WebSocketDelegate: AnyObject {
    /// The handshake finished; the connection can send.
    func webSocketDidOpen(_ socket: WebSocketConnection)

    /// A whole message arrived. `bytes` is valid only during the call: an unfragmented
    /// message points straight into the receive buffer (unmasked in place, never copied), a
    /// fragmented one into the connection's assembly buffer. Text is already UTF-8 validated.
    func webSocket(_ socket: WebSocketConnection, didReceiveMessage opcode: WebSocketOpcode,
                   bytes: UnsafeRawBufferPointer)

    /// A pong arrived (pings are answered by the connection itself).
    func webSocket(_ socket: WebSocketConnection, didReceivePong bytes: UnsafeRawBufferPointer)

    /// `socket.isWritable` changed: pending output crossed the high- or low-water mark.
    func webSocketWritabilityChanged(_ socket: WebSocketConnection)

    /// The TCP connection is gone; called exactly once. `code` is the peer's close code when it
    /// sent a close frame (1005 when that frame had none), else the code we failed the
    /// connection with, else 1006 (dropped without a close handshake).
    func webSocketDidClose(_ socket: WebSocketConnection, code: WebSocketCloseCode, reason: String)
}

extension WebSocketDelegate {
    public func webSocketDidOpen(_ socket: WebSocketConnection) {}
    public func webSocket(_ socket: WebSocketConnection, didReceivePong bytes: UnsafeRawBufferPointer) {}
    public func webSocketWritabilityChanged(_ socket: WebSocketConnection) {}
}

/// Limits and timers of a WebSocket connection.
public struct WebSocketConfiguration: Sendable {
    /// Largest message (all fragments together) accepted; larger ones close with 1009
    /// as soon as a frame header announces them, before the payload is buffered.
    public var maxMessageSize: Int
    /// When set, a ping is sent after this long without anything received (keeps NATs and
    /// proxies from dropping quiet connections, and gives a silent peer something to answer).
    public var pingInterval: Duration?
    /// How long to wait for the peer's close frame (or, for a client, for the server to
    /// drop TCP) after a close handshake starts, before dropping the connection.
    public var closeTimeout: Duration
    /// How long the opening handshake may take.
    public var handshakeTimeout: Duration
    /// The TCP idle timeout once open (replacing the HTTP server's); nil: none, since a
    /// quiet broadcast listener is not idle. Use `pingInterval` to keep NATs awake instead.
    public var idleTimeout: Duration?
    /// Extra headers a server sends in its `101 Switching Protocols` answer (names and
    /// values must be valid header text: no CR or LF).
    public var responseHeaders: [(name: String, value: String)] = []
    /// With nothing received this long (no frame, no pong) while reading, the connection
    /// is dropped (the delegate hears 1006 and `droppedForSilence` is set): a half-open peer
    /// shows only as silence. Pair it with a shorter `pingInterval`, so a live peer always
    /// has something to answer. Nil: never.
    public var silenceTimeout: Duration?
    /// Extra headers a client sends in its upgrade request (e.g. `Authorization`).
    public var requestHeaders: [(name: String, value: String)] = []
    /// A server's check of an upgrade request before it accepts: nil accepts; otherwise
    /// the handshake is answered with that status and message (a JSON error body) and
    /// the connection closed, e.g. 401 for a missing token.
    public var refusal: (@Sendable (HTTPRequest) -> (status: Int, message: String)?)?

    /// Creates a configuration; the defaults suit the producer's broadcast.
    public init(maxMessageSize: Int = 16 << 20, pingInterval: Duration? = nil,
                closeTimeout: Duration = .seconds(5), handshakeTimeout: Duration = .seconds(10),
                idleTimeout: Duration? = nil) {
        self.idleTimeout = idleTimeout
        self.maxMessageSize = maxMessageSize
        self.pingInterval = pingInterval
        self.closeTimeout = closeTimeout
        self.handshakeTimeout = handshakeTimeout
    }
}
