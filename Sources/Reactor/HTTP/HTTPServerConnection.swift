/// The HTTP/1.1 protocol on one accepted connection: parses requests in place from the
/// connection's input, hands each to the router, writes the answers in request order.
///
/// Up to `maxPipelinedRequests` pipelined requests are handed to the router before the
/// first is answered (so a handler that answers late, e.g. after a disk sync, gets them
/// together); their answers are held and written in request order. With that many
/// pending (or output backed up past the high-water mark) it parses nothing more: the
/// unconsumed bytes stay in the connection, and reading pauses once they exceed
/// `maxBufferedInputWhileBusy`. When answers are written, parsing resumes from those
/// bytes. Malformed input gets a JSON error with `Connection: close` after the answers
/// owed before it, and the connection closes after flushing it.
///
/// Deadlines: while the parser holds part of a request head, the connection carries a
/// deadline (`headerTimeout`) set when the head's first byte is parsed; it is cleared when
/// the head completes, never moved by more bytes, and when it passes the client gets 408
/// (after the answers owed before it) and the connection closes. Between requests only the
/// connection's idle timeout applies.
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
    /// Requests handed to the router and not yet written back, oldest first.
    private var inFlight: [HTTPResponder] = []
    /// Malformed input found behind requests still in flight: answered after them.
    private var deferredFailure: (status: Int, message: String)?
    private var mode = Mode.serving
    private var continueSent = false
    /// True inside connectionDidRead, whose loop picks up the next request itself.
    private var reading = false
    /// True while the header deadline runs (part of a head is buffered).
    private var awaitingHead = false

    init(server: HTTPServer, connection: TCPConnection) {
        self.server = server
        self.connection = connection
        parser = HTTPRequestParser(limits: server.configuration.limits)
    }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        guard mode == .serving, deferredFailure == nil else { return bytes.count }
        reading = true
        defer { reading = false }
        var offset = 0
        while canParse, offset < bytes.count {
            switch parser.parse(UnsafeRawBufferPointer(rebasing: bytes[offset...])) {
            case .needMore:
                // Part of a request is here: the head's clock starts with its first byte.
                headInProgress(parser.isReadingHead)
                // An interim answer must not overtake the final answers owed before it.
                if parser.expectsContinue && !continueSent && inFlight.isEmpty {
                    // curl and others wait (about a second) for this before sending the body.
                    continueSent = true
                    connection.outbound.write("HTTP/1.1 100 Continue\r\n\r\n" as StaticString)
                    connection.didWriteToOutbound()
                }
                return offset
            case .request(let request, let consumed):
                offset += consumed
                continueSent = false
                headInProgress(false)
                dispatch(request)
                // The new delegate gets the bytes after the upgrade request from the connection.
                if mode == .upgraded { return offset }
            case .error(let status, let message):
                headInProgress(false)
                if inFlight.isEmpty {
                    fail(status, message)
                } else {
                    deferredFailure = (status, message)
                }
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

    /// The head did not arrive in time: 408, in order behind the answers owed before it.
    func connectionDeadlinePassed(_ connection: TCPConnection) {
        awaitingHead = false
        guard mode == .serving, deferredFailure == nil else { return }
        let message = "request headers not received within \(Self.describe(server.configuration.headerTimeout))"
        if inFlight.isEmpty {
            fail(408, message)
        } else {
            deferredFailure = (408, message)
        }
    }

    /// Starts the header deadline when a head begins and clears it when it is complete.
    private func headInProgress(_ inProgress: Bool) {
        guard inProgress != awaitingHead else { return }
        if inProgress {
            guard let timeout = server.configuration.headerTimeout else { return }
            connection.setDeadline(in: timeout)
        } else {
            connection.setDeadline(in: nil)
        }
        awaitingHead = inProgress
    }

    /// "10 s", "1.5 s": for the 408 message.
    private static func describe(_ duration: Duration?) -> String {
        guard let duration else { return "the time allowed" }
        let millis = duration.nanoseconds / 1_000_000
        return millis % 1000 == 0 ? "\(millis / 1000) s" : "\(Double(millis) / 1000) s"
    }

    func connectionDidClose(_ connection: TCPConnection, error: SocketError?) {
        let wasCounted = mode != .upgraded
        mode = .closed
        for responder in inFlight { responder.connectionClosed() }
        inFlight.removeAll()
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
        inFlight.append(responder)
        server.router.handle(request, responder)
    }

    /// True when another request may be parsed and dispatched now. An upgrade request
    /// hands the connection over, so with an upgrade hook requests go one at a time.
    private var canParse: Bool {
        mode == .serving && deferredFailure == nil && connection.isWritable
            && inFlight.count < (server.onUpgrade == nil ? server.configuration.maxPipelinedRequests : 1)
    }

    /// An answer: written at once if its request is the oldest in flight, else held until
    /// the earlier ones are answered. Then parsing goes on.
    func complete(_ responder: HTTPResponder, _ response: HTTPResponse) {
        guard inFlight.contains(where: { $0 === responder }) else { return }
        responder.response = response
        while let oldest = inFlight.first, let answer = oldest.response {
            inFlight.removeFirst()
            guard mode == .serving, connection.isOpen else { continue }
            let keepAlive = oldest.keepAlive && !answer.closeConnection
            answer.write(to: connection.outbound, keepAlive: keepAlive, version: oldest.version,
                         includeBody: !oldest.isHead)
            connection.didWriteToOutbound()
            if !keepAlive {
                mode = .closing
                for later in inFlight { later.connectionClosed() }
                inFlight.removeAll()
                connection.close()
                return
            }
        }
        if inFlight.isEmpty, let failure = deferredFailure, mode == .serving {
            deferredFailure = nil
            fail(failure.status, failure.message)
            return
        }
        if !reading { resumeInput() }
    }

    /// Parses what arrived while we were busy, reading again if we had paused.
    private func resumeInput() {
        guard canParse else { return }
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
