/// Takes over a connection whose request asked to switch protocols. See `HTTPServer.onUpgrade`.
public typealias HTTPUpgradeHandler = (_ request: HTTPRequest, _ connection: TCPConnection) -> Bool

/// An HTTP/1.1 server on one loop: one `TCPServer` plus the router its connections use.
/// For several loops, create one per loop (in `EventLoopGroup`'s setup) on the same port;
/// SO_REUSEPORT spreads the connections.
///
/// The server keeps itself alive (the loop holds its listening socket) until `close()`.
///
/// ## Upgrade contract (agreed with the WebSocket layer)
///
/// `onUpgrade` is called on the loop thread for a `GET` whose `Upgrade` header lists
/// `websocket` (case-insensitive; `request.isWebSocketUpgrade`), once every earlier
/// request on the connection has been answered and written to the outbound buffer.
/// The HTTP layer has stopped parsing by then. The hook:
///
/// - returns `false` to decline: the request is routed like any other (404 if no route);
/// - returns `true` when it took the connection. It must have written its answer itself
///   (`101 Switching Protocols`, or an error such as 400/426 followed by
///   `connection.close()`), and it must have set `connection.delegate` to its own
///   delegate (unless it closed the connection). Input bytes that followed the upgrade
///   request are then offered by the connection to the new delegate straight away. The
///   idle timeout set by the HTTP server stays on the connection; the new owner may change
///   `connection.idleTimeout`.
///
/// The handshake fields are read from the request: `request.headers["Sec-WebSocket-Key"]`,
/// `request.headers.containsToken("upgrade", in: "Connection")`, `request.path`,
/// `request.queryParameter("from_seq")`.
public final class HTTPServer {
    /// Settings of one server.
    public struct Configuration: Sendable {
        /// Address to bind (`0.0.0.0` for all IPv4 interfaces).
        public var host: String
        /// Port to bind; 0 lets the kernel choose (see `HTTPServer.port`).
        public var port: Int
        /// Share the port with servers on other loops (SO_REUSEPORT).
        public var reusePort: Bool
        /// Head, body and chunk framing limits (431, 413).
        public var limits: HTTPParserLimits
        /// Close a connection after this long without traffic in either direction: between
        /// requests, the keep-alive idle limit (counted from the last response's bytes);
        /// during a request, a backstop for a stalled body or reader. The client sees the
        /// connection close without an answer. nil never does.
        public var idleTimeout: Duration?
        /// Longest a request's head (request line and headers) may take to arrive, counted
        /// from its first byte, or from the end of the request before it when its bytes
        /// were already waiting (pipelining). Bytes trickling in do not move it: past it the
        /// client gets `408` with a JSON error and the connection closes. nil: no limit.
        public var headerTimeout: Duration?
        /// Input kept while a response is pending before reading pauses (pipelining flood).
        public var maxBufferedInputWhileBusy: Int
        /// Pipelined requests of one connection handed to the router before the first is
        /// answered: a handler that answers later (after a disk sync, a query) then sees
        /// several at once. Answers still leave in request order.
        public var maxPipelinedRequests: Int = 8
        /// Open connections shared with other listeners (every loop's server of a group,
        /// a WebSocket port); over it a new connection is closed at accept. nil: no cap.
        public var connectionLimit: ConnectionLimit?

        /// Creates a configuration; the defaults suit an API server.
        public init(host: String = "0.0.0.0", port: Int = 0, reusePort: Bool = true,
                    limits: HTTPParserLimits = HTTPParserLimits(), idleTimeout: Duration? = .seconds(60),
                    headerTimeout: Duration? = .seconds(10), maxBufferedInputWhileBusy: Int = 64 * 1024) {
            self.host = host
            self.port = port
            self.reusePort = reusePort
            self.limits = limits
            self.idleTimeout = idleTimeout
            self.headerTimeout = headerTimeout
            self.maxBufferedInputWhileBusy = maxBufferedInputWhileBusy
        }
    }

    /// The loop every connection of this server lives on.
    public let loop: EventLoop
    /// The settings in force.
    public let configuration: Configuration
    /// Where requests go.
    public let router: HTTPRouter
    /// Protocol upgrades (WebSocket); nil routes upgrade requests as plain requests.
    /// See the type's documentation for the contract.
    public var onUpgrade: HTTPUpgradeHandler?
    /// The bound port (the kernel's choice when the configuration says 0).
    public let port: Int
    /// Connections currently open (metrics and tests).
    public private(set) var openConnections = 0
    /// Connections accepted since start.
    public private(set) var acceptedConnections = 0

    private var listener: TCPServer?

    /// Binds and starts accepting on `loop`.
    public init(loop: EventLoop, configuration: Configuration = Configuration(), router: HTTPRouter = HTTPRouter()) throws {
        self.loop = loop
        self.configuration = configuration
        self.router = router
        var accept: ((TCPConnection) -> Void)?
        let listener = try TCPServer(loop: loop, host: configuration.host, port: configuration.port,
                                     reusePort: configuration.reusePort) { accept?($0) }
        listener.connectionLimit = configuration.connectionLimit
        self.listener = listener
        port = listener.port
        // Strong on purpose: the server lives as long as it listens; close() breaks the cycle.
        accept = { connection in self.accept(connection) }
    }

    private func accept(_ connection: TCPConnection) {
        acceptedConnections += 1
        openConnections += 1
        connection.idleTimeout = configuration.idleTimeout
        connection.delegate = HTTPServerConnection(server: self, connection: connection)
    }

    func connectionDidClose() { openConnections -= 1 }

    /// Stops accepting. Open connections finish their requests and close as usual.
    public func close() {
        listener?.close()
        listener = nil
    }
}
