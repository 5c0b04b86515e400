/// A WebSocket-only server: a TCPServer whose connections must open with an upgrade
/// request (the producer's WS_PORT). Each accepted connection is handed to `onAccept`,
/// which sets the delegate and reads `socket.request` (e.g. `from_seq`).
public final class WebSocketServer {
    /// The listening socket.
    public let tcpServer: TCPServer
    /// The configuration every accepted connection gets.
    public let configuration: WebSocketConfiguration
    private let onAccept: (WebSocketConnection) -> Void

    /// Binds `host:port` on `loop` (port 0: the kernel picks; read `port`).
    public init(loop: EventLoop, host: String, port: Int, reusePort: Bool = true,
                configuration: WebSocketConfiguration = WebSocketConfiguration(),
                onAccept: @escaping (WebSocketConnection) -> Void) throws {
        self.configuration = configuration
        self.onAccept = onAccept
        var upgrade: ((TCPConnection) -> Void)?
        tcpServer = try TCPServer(loop: loop, host: host, port: port, reusePort: reusePort) { connection in
            upgrade?(connection)
        }
        upgrade = { [unowned self] connection in
            connection.delegate = WebSocketUpgradeReader(configuration: self.configuration, onAccept: self.onAccept)
            // A deadline, not an idle timeout: a handshake trickled a byte at a time still ends.
            connection.setDeadline(in: configuration.handshakeTimeout)
        }
    }

    /// The bound port.
    public var port: Int { tcpServer.port }

    /// Stops listening; open connections stay open.
    public func close() { tcpServer.close() }
}

/// Reads the upgrade request of a fresh connection, then hands over to WebSocketConnection.
final class WebSocketUpgradeReader: TCPConnectionDelegate {
    private var parser = HTTPRequestParser(limits: HTTPParserLimits(maxHeadBytes: 8 * 1024, maxBodyBytes: 0))
    private let configuration: WebSocketConfiguration
    private let onAccept: (WebSocketConnection) -> Void

    init(configuration: WebSocketConfiguration, onAccept: @escaping (WebSocketConnection) -> Void) {
        self.configuration = configuration
        self.onAccept = onAccept
    }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        switch parser.parse(UnsafeRawBufferPointer(bytes)) {
        case .needMore:
            return 0
        case .error(let status, let message):
            WebSocketServerHandshake.refuse(connection: connection, status: status, message: message)
            return bytes.count
        case .request(let request, let consumed):
            if let refusal = configuration.refusal?(request) {
                WebSocketServerHandshake.refuse(connection: connection, status: refusal.status, message: refusal.message)
                return bytes.count
            }
            connection.setDeadline(in: nil)
            if let socket = WebSocketServerHandshake.accept(request: request, connection: connection,
                                                            configuration: configuration) {
                onAccept(socket)
                socket.delegate?.webSocketDidOpen(socket)
            }
            return consumed
        }
    }

    func connectionDidClose(_ connection: TCPConnection, error: SocketError?) {}
}
