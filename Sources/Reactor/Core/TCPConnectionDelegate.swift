/// What a protocol (HTTP, WebSocket, Redis, ...) implements to sit on a TCP connection.
public protocol TCPConnectionDelegate: AnyObject {
    /// Bytes arrived. `bytes` holds the unconsumed input: bytes kept from earlier reads
    /// followed by the new ones, writable so parsers may unmask or decode in place. Return
    /// how many were consumed; the connection keeps the rest and offers them again, with
    /// more, on the next read. A delegate that replaces `connection.delegate` during this
    /// call has the leftover bytes offered to the new delegate at once (protocol upgrade).
    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer) -> Int

    /// Asked after `connectionDidRead` consumed less than it was offered: how many bytes,
    /// counted from the first one it left, it needs before it can consume more (0: it
    /// cannot tell). The connection then keeps room for all of them at once and reads the
    /// rest straight into it, instead of through the loop's shared buffer and a copy.
    func connectionBytesWanted(_ connection: TCPConnection) -> Int

    /// A client connection finished its TCP handshake.
    func connectionDidConnect(_ connection: TCPConnection)

    /// `connection.isWritable` changed: pending output crossed the high- or low-water mark.
    func connectionWritabilityChanged(_ connection: TCPConnection)

    /// The connection closed (by us, the peer or an error). Called once, after the event
    /// batch in which it happened; the connection drops its delegate afterwards.
    func connectionDidClose(_ connection: TCPConnection, error: SocketError?)

    /// The deadline set with `connection.setDeadline(in:)` passed (it is cleared now).
    /// The default closes the connection at once; a protocol may answer first (HTTP's 408).
    func connectionDeadlinePassed(_ connection: TCPConnection)
}

extension TCPConnectionDelegate {
    public func connectionBytesWanted(_ connection: TCPConnection) -> Int { 0 }
    public func connectionDidConnect(_ connection: TCPConnection) {}
    public func connectionWritabilityChanged(_ connection: TCPConnection) {}
    public func connectionDeadlinePassed(_ connection: TCPConnection) { connection.expire("deadline") }
}
