/// Sending: every frame is encoded straight into the TCP connection's outbound buffer and
/// leaves with the loop's next flush. Client frames are masked with a fresh CSPRNG key.
/// Each method returns false (and sends nothing) once the close handshake has started.
extension WebSocketConnection {
    private var canSend: Bool { state == .open && connection.isOpen }
    private var nextMaskKey: UInt32? { maskKeys?.nextKey() }

    /// Sends a text message. `text` is valid UTF-8 by construction.
    @discardableResult
    public func send(text: String) -> Bool {
        var text = text
        return text.withUTF8 { send(opcode: .text, payload: UnsafeRawBufferPointer($0)) }
    }

    /// Sends a text message from bytes the caller guarantees are valid UTF-8.
    @discardableResult
    public func send(textBytes bytes: UnsafeRawBufferPointer) -> Bool {
        send(opcode: .text, payload: bytes)
    }

    /// Sends a binary message.
    @discardableResult
    public func send(binary bytes: UnsafeRawBufferPointer) -> Bool {
        send(opcode: .binary, payload: bytes)
    }

    /// Sends a binary message.
    @discardableResult
    public func send(binary bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { send(opcode: .binary, payload: $0) }
    }

    /// Sends one frame. With `fin: false` it starts (opcode text/binary) or continues
    /// (opcode continuation) a fragmented message; the caller keeps the sequence valid.
    @discardableResult
    public func send(opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer, fin: Bool = true) -> Bool {
        guard canSend else { return false }
        precondition(!opcode.isControl || payload.count <= 125, "control frames carry at most 125 bytes")
        WebSocketFrameEncoder.writeFrame(into: connection.outbound, fin: fin, opcode: opcode,
                                         payload: payload, maskKey: nextMaskKey)
        connection.didWriteToOutbound()
        return true
    }

    /// Sends a text message whose payload `body` writes in place into the outbound buffer
    /// (ByteBuffer's write methods), e.g. many NDJSON lines encoded straight into one frame.
    /// `expectedLength` only sizes the header slot; a wrong guess costs a short memmove.
    /// The caller must write valid UTF-8.
    @discardableResult
    public func sendText(expectedLength: Int = 0, withBody body: (ByteBuffer) throws -> Void) rethrows -> Bool {
        try sendMessage(.text, expectedLength: expectedLength, withBody: body)
    }

    /// Sends a binary message whose payload `body` writes in place (see `sendText(withBody:)`).
    @discardableResult
    public func sendBinary(expectedLength: Int = 0, withBody body: (ByteBuffer) throws -> Void) rethrows -> Bool {
        try sendMessage(.binary, expectedLength: expectedLength, withBody: body)
    }

    private func sendMessage(_ opcode: WebSocketOpcode, expectedLength: Int,
                             withBody body: (ByteBuffer) throws -> Void) rethrows -> Bool {
        guard canSend else { return false }
        try WebSocketFrameEncoder.writeFrame(into: connection.outbound, opcode: opcode, maskKey: nextMaskKey,
                                             expectedLength: expectedLength, body: body)
        connection.didWriteToOutbound()
        return true
    }

    /// Queues a frame encoded once for many receivers (a broadcast): server role only, since
    /// client frames need a fresh mask each. `frame` must be whole, valid, unmasked frames.
    @discardableResult
    public func send(encodedFrames frame: UnsafeRawBufferPointer) -> Bool {
        precondition(role == .server, "pre-encoded frames are unmasked: server role only")
        guard canSend else { return false }
        connection.outbound.write(frame)
        connection.didWriteToOutbound()
        return true
    }

    /// Sends a ping (at most 125 bytes of payload); the answer arrives as `didReceivePong`.
    @discardableResult
    public func sendPing(_ payload: [UInt8] = []) -> Bool {
        guard canSend else { return false }
        payload.withUnsafeBytes { writeControl(.ping, $0) }
        return true
    }

    /// Writes a control frame even while closing (pong and close need that).
    func writeControl(_ opcode: WebSocketOpcode, _ payload: UnsafeRawBufferPointer) {
        guard connection.isOpen else { return }
        WebSocketFrameEncoder.writeFrame(into: connection.outbound, opcode: opcode,
                                         payload: UnsafeRawBufferPointer(rebasing: payload.prefix(125)),
                                         maskKey: nextMaskKey)
        connection.didWriteToOutbound()
    }
}
