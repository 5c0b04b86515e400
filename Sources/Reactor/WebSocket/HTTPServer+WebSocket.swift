extension HTTPServer {
    /// Serves WebSocket upgrades on this HTTP server: every `GET` with `Upgrade: websocket`
    /// gets the RFC 6455 handshake (101, or 400/426 and close) and, on success, is handed
    /// to `onAccept` as a server-role WebSocketConnection, which sets the delegate and may
    /// read `socket.request` (`from_seq`). Plain requests keep going to the router.
    public func acceptWebSockets(configuration: WebSocketConfiguration = WebSocketConfiguration(),
                                 onAccept: @escaping (WebSocketConnection) -> Void) {
        onUpgrade = { request, connection in
            if let socket = WebSocketServerHandshake.accept(request: request, connection: connection,
                                                            configuration: configuration) {
                onAccept(socket)
                socket.delegate?.webSocketDidOpen(socket)
            }
            return true
        }
    }
}
