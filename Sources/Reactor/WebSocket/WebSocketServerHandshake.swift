/// Why an upgrade request was refused.
public enum WebSocketHandshakeError: Error, Equatable, Sendable, CustomStringConvertible {
    case notGet
    case notHTTP11
    case missingUpgrade
    case missingConnectionUpgrade
    case unsupportedVersion(String?)
    case badKey

    /// The HTTP status to answer with: 426 (and `Sec-WebSocket-Version: 13`) for a version
    /// we do not speak, 400 for anything else.
    public var status: Int {
        if case .unsupportedVersion = self { return 426 }
        return 400
    }

    public var description: String {
        switch self {
        case .notGet: return "WebSocket upgrade must be a GET"
        case .notHTTP11: return "WebSocket upgrade needs HTTP/1.1"
        case .missingUpgrade: return "missing Upgrade: websocket"
        case .missingConnectionUpgrade: return "Connection header does not contain upgrade"
        case .unsupportedVersion(let v): return "unsupported Sec-WebSocket-Version \(v ?? "(none)"); only 13"
        case .badKey: return "Sec-WebSocket-Key is not 16 base64-encoded bytes"
        }
    }
}

/// The server side of the opening handshake (RFC 6455 section 4.2).
public enum WebSocketServerHandshake {
    /// Checks an upgrade request and returns the Sec-WebSocket-Accept value to answer with.
    public static func validate(_ request: HTTPRequest) -> Result<String, WebSocketHandshakeError> {
        guard request.method == "GET" else { return .failure(.notGet) }
        guard request.version == .http1_1 else { return .failure(.notHTTP11) }
        guard request.headers.containsToken("websocket", in: "Upgrade") else { return .failure(.missingUpgrade) }
        guard request.headers.containsToken("upgrade", in: "Connection") else { return .failure(.missingConnectionUpgrade) }
        let version = request.headers["Sec-WebSocket-Version"]
        guard version == "13" else { return .failure(.unsupportedVersion(version)) }
        let keys = request.headers.values(for: "Sec-WebSocket-Key")
        guard keys.count == 1, WebSocketHandshakeKey.isValidClientKey(Substring(keys[0])) else {
            return .failure(.badKey)
        }
        return .success(WebSocketHandshakeKey.acceptValue(forKey: keys[0]))
    }

    /// Answers an upgrade request on `connection`: on success writes `101 Switching Protocols`
    /// and turns the connection into a server-role WebSocketConnection (it becomes the TCP
    /// connection's delegate, so bytes after the request go to it); on failure answers 400
    /// or 426 with a one-line reason, closes the connection and returns nil.
    /// No extensions or subprotocols are negotiated (both are ignored, as RFC 6455 allows).
    @discardableResult
    public static func accept(request: HTTPRequest, connection: TCPConnection,
                              configuration: WebSocketConfiguration = WebSocketConfiguration(),
                              delegate: WebSocketDelegate? = nil) -> WebSocketConnection? {
        switch validate(request) {
        case .failure(let error):
            refuse(connection: connection, error: error)
            return nil
        case .success(let accept):
            let out = connection.outbound
            out.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " as StaticString)
            out.write(accept)
            for header in configuration.responseHeaders {
                out.write("\r\n" as StaticString)
                out.write(header.name)
                out.write(": " as StaticString)
                out.write(header.value)
            }
            out.write("\r\n\r\n" as StaticString)
            connection.didWriteToOutbound()
            let socket = WebSocketConnection(connection: connection, role: .server, requestTarget: request.target,
                                             request: request, configuration: configuration, delegate: delegate)
            delegate?.webSocketDidOpen(socket)
            return socket
        }
    }

    /// Answers a refused handshake and closes after the answer is flushed.
    public static func refuse(connection: TCPConnection, error: WebSocketHandshakeError) {
        refuse(connection: connection, status: error.status, message: error.description)
    }

    static func refuse(connection: TCPConnection, status: Int, message: String) {
        var response = HTTPResponse.error(status, message)
        if status == 426 { response.headers.append(.init(name: "Sec-WebSocket-Version", value: "13")) }
        response.write(to: connection.outbound, keepAlive: false)
        connection.didWriteToOutbound()
        connection.close()
    }
}
