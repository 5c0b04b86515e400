/// One WebSocket connection (either role) on top of a TCPConnection, after the handshake.
///
/// Receiving: frames are parsed and unmasked in place in the TCP connection's input;
/// an unfragmented message is handed to the delegate right there, without a copy. Only a
/// fragmented message is assembled, in a buffer of its own, checked against the size
/// limit before each fragment is buffered. Control frames may arrive between fragments:
/// pings are answered with the same payload, the close handshake follows RFC 6455 7.1.
///
/// Sending: frames are encoded straight into the TCP connection's outbound buffer (see
/// WebSocketConnection+Send.swift). Not Sendable: use it on its loop only.
public final class WebSocketConnection: TCPConnectionDelegate {
    /// Where the connection is in the close handshake.
    public enum State: Equatable, Sendable {
        /// Messages flow both ways.
        case open
        /// We sent a close frame and wait for the peer's (or for TCP to go away).
        case closeSent
        /// The peer's close frame arrived (and we answered); waiting for TCP to close.
        case closeReceived
        /// TCP is closed; the delegate has heard `webSocketDidClose`.
        case closed
    }

    /// Client or server.
    public let role: WebSocketRole
    /// The TCP connection underneath (backpressure, peer address, idle timeout).
    public let connection: TCPConnection
    /// The handshake request (server side); its `query` carries e.g. `from_seq`.
    public let request: HTTPRequest?
    /// The request target the handshake used (`/?from_seq=17`).
    public let requestTarget: String
    /// The owner's callbacks. Weak: the owner usually keeps its connections in a table.
    public weak var delegate: WebSocketDelegate?
    /// The limits in force.
    public let configuration: WebSocketConfiguration
    /// Free slot for the owner (an index into its own table, a client id).
    public var userTag: Int = 0

    /// Close-handshake progress.
    public private(set) var state: State = .open
    /// The code of the close frame we sent, if any.
    public private(set) var closeCodeSent: WebSocketCloseCode?
    /// The code of the close frame the peer sent (1005 when it carried none), if any.
    public private(set) var closeCodeReceived: WebSocketCloseCode?
    /// The reason the peer gave in its close frame.
    public private(set) var closeReasonReceived = ""
    /// The protocol error that made us fail the connection, if any.
    public private(set) var protocolError: WebSocketProtocolError?

    let parser: WebSocketFrameParser
    /// The length of the frame the last read stopped short of (0: its header was not all there).
    private var bytesWanted = 0
    /// Fragments of the data message in progress (nil when none).
    private var fragmentOpcode: WebSocketOpcode?
    private var fragments: ByteBuffer?
    /// After a close frame in either direction that ends reading, or a failure: input is dropped.
    private var inputClosed = false
    let maskKeys: WebSocketMaskKeyPool?
    private var closeTimer: TimerHandle?
    private var pingTimer: TimerHandle?
    private var silenceTimer: TimerHandle?
    /// When a byte last arrived (monotonic ns); time spent with reading paused counts as heard.
    private var lastHeardNanos: UInt64 = 0
    /// True when this side dropped the connection because the peer fell silent.
    public private(set) var droppedForSilence = false
    /// Lets WebSocketClient learn about the end of a connection it made.
    var onClosed: ((WebSocketConnection) -> Void)?

    /// Wraps a TCP connection whose handshake is done and makes itself its delegate.
    /// Use `WebSocketServerHandshake.accept` or `WebSocketClient` rather than this directly.
    public init(connection: TCPConnection, role: WebSocketRole, requestTarget: String, request: HTTPRequest? = nil,
                configuration: WebSocketConfiguration = WebSocketConfiguration(), delegate: WebSocketDelegate? = nil) {
        self.connection = connection
        self.role = role
        self.request = request
        self.requestTarget = requestTarget
        self.configuration = configuration
        self.delegate = delegate
        parser = WebSocketFrameParser(role: role)
        maskKeys = role == .client ? WebSocketMaskKeyPool() : nil
        connection.delegate = self
        connection.idleTimeout = configuration.idleTimeout
        lastHeardNanos = connection.loop.nowNanos
        schedulePing()
        scheduleSilenceCheck()
    }

    /// False while the TCP connection's pending output is above its high-water mark:
    /// stop producing until `webSocketWritabilityChanged` says otherwise.
    public var isWritable: Bool { connection.isWritable }
    /// Bytes queued for the peer and not yet taken by the kernel.
    public var pendingWriteBytes: Int { connection.pendingWriteBytes }
    /// True while messages may be sent (the close handshake has not started).
    public var isOpen: Bool { state == .open && connection.isOpen }

    // MARK: TCPConnectionDelegate

    public func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        lastHeardNanos = connection.loop.nowNanos
        var offset = 0
        while offset < bytes.count {
            if inputClosed || !connection.isOpen { return bytes.count }
            let rest = UnsafeMutableRawBufferPointer(rebasing: bytes[offset...])
            let limit = configuration.maxMessageSize - (fragments?.readableBytes ?? 0)
            switch parser.parse(rest, limit: limit) {
            case .needMore:
                bytesWanted = parser.frameLength(UnsafeRawBufferPointer(rest)) ?? 0
                return offset
            case .error(let error):
                fail(error)
                return bytes.count
            case .frame(let header, let range, let consumed):
                offset += consumed
                handleFrame(header, UnsafeRawBufferPointer(rebasing: rest[range]))
            }
        }
        return offset
    }

    /// The rest of the frame it stopped at: read straight into the connection's kept
    /// bytes, not through the loop's shared buffer and a copy.
    public func connectionBytesWanted(_ connection: TCPConnection) -> Int { bytesWanted }

    public func connectionWritabilityChanged(_ connection: TCPConnection) {
        delegate?.webSocketWritabilityChanged(self)
    }

    public func connectionDidClose(_ connection: TCPConnection, error: SocketError?) {
        guard state != .closed else { return }
        state = .closed
        inputClosed = true
        cancelTimers()
        fragments = nil
        let code = closeCodeReceived ?? (protocolError == nil ? nil : closeCodeSent) ?? .abnormalClosure
        let reason = closeCodeReceived != nil ? closeReasonReceived : (protocolError?.description ?? "")
        delegate?.webSocketDidClose(self, code: code, reason: reason)
        onClosed?(self)
        onClosed = nil
    }

    // MARK: receiving

    private func handleFrame(_ header: WebSocketFrameHeader, _ payload: UnsafeRawBufferPointer) {
        switch header.opcode {
        case .text, .binary:
            guard fragmentOpcode == nil else { return fail(.expectedContinuation) }
            if header.fin {
                deliver(header.opcode, payload)
            } else {
                fragmentOpcode = header.opcode
                let buffer = fragments ?? ByteBuffer(capacity: max(4096, payload.count * 2))
                buffer.write(payload)
                fragments = buffer
            }
        case .continuation:
            guard let opcode = fragmentOpcode, let buffer = fragments else { return fail(.unexpectedContinuation) }
            buffer.write(payload)
            guard header.fin else { return }
            fragmentOpcode = nil
            buffer.withReadableBytes { deliver(opcode, $0) }
            // Keep a modest assembly buffer for the next fragmented message; drop a big one.
            if buffer.allocatedCapacity > 64 * 1024 { fragments = nil } else { buffer.clear() }
        case .ping:
            if state == .open { writeControl(.pong, payload) }
        case .pong:
            delegate?.webSocket(self, didReceivePong: payload)
        case .close:
            handleClose(payload)
        }
    }

    private func deliver(_ opcode: WebSocketOpcode, _ payload: UnsafeRawBufferPointer) {
        if opcode == .text && !UTF8Validator.isValid(payload) { return fail(.invalidUTF8) }
        delegate?.webSocket(self, didReceiveMessage: opcode, bytes: payload)
    }

    private func handleClose(_ payload: UnsafeRawBufferPointer) {
        var code = WebSocketCloseCode.noStatusReceived
        if payload.count == 1 { return fail(.invalidCloseFrame) }
        if payload.count >= 2 {
            code = WebSocketCloseCode(UInt16(payload[0]) << 8 | UInt16(payload[1]))
            guard code.isValidOnWire else { return fail(.invalidCloseCode(code.rawValue)) }
            let reason = UnsafeRawBufferPointer(rebasing: payload[2...])
            guard UTF8Validator.isValid(reason) else { return fail(.invalidUTF8) }
            closeReasonReceived = String(decoding: reason, as: UTF8.self)
        }
        closeCodeReceived = code
        inputClosed = true
        if state == .open {
            // Echo the code (an empty close is answered with an empty close: 1005 never goes on the wire).
            writeClose(code == .noStatusReceived ? nil : code, reason: "")
            state = .closeReceived
        }
        finishClosingAfterHandshake()
    }

    /// Both close frames are out: the server drops TCP at once (RFC 6455 7.1.1), the client
    /// waits for that and only drops TCP itself if the server does not.
    private func finishClosingAfterHandshake() {
        switch role {
        case .server:
            connection.close()
        case .client:
            armCloseTimer()
        }
    }

    /// _Fail the WebSocket Connection_ (RFC 6455 7.1.7): send a close frame with the error's
    /// code unless one was sent already, stop reading and close TCP once it is flushed.
    func fail(_ error: WebSocketProtocolError) {
        guard protocolError == nil else { return }
        protocolError = error
        inputClosed = true
        fragments = nil
        fragmentOpcode = nil
        if state == .open {
            writeClose(error.closeCode, reason: error.description)
            state = .closeSent
        }
        connection.close()
    }

    // MARK: closing

    /// Starts the close handshake with `code` and a reason (at most 123 UTF-8 bytes; longer
    /// ones are cut at a character boundary). The delegate hears `webSocketDidClose` when the
    /// TCP connection is gone; a peer that never answers is dropped after `closeTimeout`.
    public func close(code: WebSocketCloseCode = .normalClosure, reason: String = "") {
        guard state == .open, connection.isOpen else { return }
        precondition(code.isValidOnWire, "close code \(code) may not be sent")
        writeClose(code, reason: reason)
        state = .closeSent
        armCloseTimer()
    }

    /// Drops the TCP connection without a close handshake (the delegate hears 1006).
    public func abort() {
        connection.abort()
    }

    private func armCloseTimer() {
        guard closeTimer == nil else { return }
        closeTimer = connection.loop.schedule(in: configuration.closeTimeout) { [weak self] in
            guard let self else { return }
            self.closeTimer = nil
            // A client gives the server a last chance to see a clean FIN; abort otherwise.
            if self.connection.isOpen && self.role == .client && self.closeCodeReceived != nil {
                self.connection.close()
            } else {
                self.connection.abort()
            }
        }
    }

    private func writeClose(_ code: WebSocketCloseCode?, reason: String) {
        closeCodeSent = code ?? .noStatusReceived
        guard let code else { return writeControl(.close, UnsafeRawBufferPointer(start: nil, count: 0)) }
        var payload: [UInt8] = [UInt8(code.rawValue >> 8), UInt8(code.rawValue & 0xFF)]
        var utf8 = Array(reason.utf8)
        if utf8.count > 123 {
            var cut = 123
            while cut > 0 && utf8[cut] & 0xC0 == 0x80 { cut -= 1 }  // never split a character
            utf8.removeSubrange(cut...)
        }
        payload += utf8
        payload.withUnsafeBytes { writeControl(.close, $0) }
    }

    // MARK: timers

    private func schedulePing() {
        guard let interval = configuration.pingInterval else { return }
        pingTimer = connection.loop.schedule(in: interval) { [weak self] in
            guard let self, self.state == .open else { return }
            // Measured from the last byte *received*: a peer we only write to must still
            // be asked to answer, or a silence timeout would drop a healthy reader.
            let unheard = self.connection.loop.nowNanos &- self.lastHeardNanos
            if unheard >= interval.nanoseconds { self.sendPing() }
            self.schedulePing()
        }
    }

    private func scheduleSilenceCheck() {
        guard let silence = configuration.silenceTimeout else { return }
        silenceTimer = connection.loop.schedule(in: silence / 4) { [weak self] in
            guard let self, self.state == .open, self.connection.isOpen else { return }
            let now = self.connection.loop.nowNanos
            // A reader that paused itself hears nothing by choice.
            if self.connection.readingPaused { self.lastHeardNanos = now }
            if now &- self.lastHeardNanos > silence.nanoseconds {
                self.droppedForSilence = true
                self.connection.abort()
                return
            }
            self.scheduleSilenceCheck()
        }
    }

    private func cancelTimers() {
        if let timer = closeTimer { connection.loop.cancel(timer); closeTimer = nil }
        if let timer = pingTimer { connection.loop.cancel(timer); pingTimer = nil }
        if let timer = silenceTimer { connection.loop.cancel(timer); silenceTimer = nil }
    }
}
