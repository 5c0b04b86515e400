/// The HTTP/1.1 protocol on one accepted connection: parses requests in place from the
/// connection's input, hands each to the router, writes the answers in request order.
///
/// While an answer is pending (or output is backed up past the high-water mark) it parses
/// nothing more: the unconsumed bytes stay in the connection, and reading pauses once
/// they exceed `maxBufferedInputWhileBusy`. When the answer is written, parsing resumes
/// from those bytes. Malformed input gets a JSON error with `Connection: close`, and the
/// connection closes after flushing it.
final class HTTPServerConnection: TCPConnectionDelegate {
    enum Mode {
        case serving
        /// Sent a final answer with `Connection: close`; input is discarded.
        case closing
        /// The upgrade hook took the connection; we no longer touch it.
        case upgraded
        case closed
    }

    let server: HTTPServer
    let connection: TCPConnection
    private var parser: HTTPRequestParser
    private var inFlight: HTTPResponder?
    private var mode = Mode.serving
    private var continueSent = false
    /// True inside connectionDidRead, whose loop picks up the next request itself.
    private var reading = false

    init(server: HTTPServer, connection: TCPConnection) {
        self.server = server
        self.connection = connection
        parser = HTTPRequestParser(limits: server.configuration.limits)
    }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        guard mode == .serving else { return bytes.count }
        reading = true
        defer { reading = false }
        var offset = 0
        while mode == .serving, inFlight == nil, connection.isWritable, offset < bytes.count {
            switch parser.parse(UnsafeRawBufferPointer(rebasing: bytes[offset...])) {
            case .needMore:
                if parser.expectsContinue && !continueSent {
                    // curl and others wait (about a second) for this before sending the body.
                    continueSent = true
                    connection.outbound.write("HTTP/1.1 100 Continue\r\n\r\n" as StaticString)
                    connection.didWriteToOutbound()
                }
                return offset
            case .request(let request, let consumed):
                offset += consumed
                continueSent = false
                dispatch(request)
                // The new delegate gets the bytes after the upgrade request from the connection.
                if mode == .upgraded { return offset }
            case .error(let status, let message):
                fail(status, message)
                return bytes.count
            }
        }
        if mode != .serving { return bytes.count }
        if offset < bytes.count, bytes.count - offset > server.configuration.maxBufferedInputWhileBusy {
            connection.pauseReading()
        }
        return offset
    }

    func connectionWritabilityChanged(_ connection: TCPConnection) {
        if connection.isWritable { resumeInput() }
    }

    func connectionDidClose(_ connection: TCPConnection, error: SocketError?) {
        let wasCounted = mode != .upgraded
        mode = .closed
        inFlight?.connectionClosed()
        inFlight = nil
        if wasCounted { server.connectionDidClose() }
    }

    private func dispatch(_ request: HTTPRequest) {
        if let hook = server.onUpgrade, request.isWebSocketUpgrade {
            // Set first: reads the hook triggers must not be parsed as HTTP.
            mode = .upgraded
            if hook(request, connection) {
                // No longer ours: the new delegate hears the close, so stop counting it here.
                server.connectionDidClose()
                return
            }
            mode = .serving
        }
        let responder = HTTPResponder(owner: self, request: request)
        inFlight = responder
        server.router.handle(request, responder)
    }

    /// The answer to the request in flight: write it, then go on with the next request.
    func complete(_ responder: HTTPResponder, _ response: HTTPResponse) {
        guard inFlight === responder else { return }
        inFlight = nil
        guard mode == .serving, connection.isOpen else { return }
        let keepAlive = responder.keepAlive && !response.closeConnection
        response.write(to: connection.outbound, keepAlive: keepAlive, version: responder.version,
                       includeBody: !responder.isHead)
        connection.didWriteToOutbound()
        if !keepAlive {
            mode = .closing
            connection.close()
            return
        }
        if !reading { resumeInput() }
    }

    /// Parses what arrived while we were busy, reading again if we had paused.
    private func resumeInput() {
        guard mode == .serving, inFlight == nil, connection.isWritable else { return }
        if connection.isReadingPaused {
            connection.resumeReading()
        } else {
            connection.redeliverBufferedInput()
        }
    }

    /// Refuses malformed input: a JSON error, `Connection: close`, close after flushing.
    private func fail(_ status: Int, _ message: String) {
        mode = .closing
        HTTPResponse.error(status, message).write(to: connection.outbound, keepAlive: false)
        connection.didWriteToOutbound()
        connection.close()
    }
}
