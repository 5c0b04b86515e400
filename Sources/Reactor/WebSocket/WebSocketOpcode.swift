/// A frame's opcode (RFC 6455 section 5.2). Any other value fails the connection.
public enum WebSocketOpcode: UInt8, Sendable {
    /// The next fragment of a fragmented data message.
    case continuation = 0x0
    /// A UTF-8 text message.
    case text = 0x1
    /// A binary message.
    case binary = 0x2
    /// The close handshake.
    case close = 0x8
    /// A ping; answered with a pong carrying the same payload.
    case ping = 0x9
    /// The answer to a ping (or an unsolicited heartbeat).
    case pong = 0xA

    /// Close, ping and pong: at most 125 bytes, never fragmented, may interleave with a
    /// fragmented data message.
    @inlinable public var isControl: Bool { rawValue & 0x8 != 0 }
}

/// Which end of the connection we are: clients mask every frame they send and servers
/// must not, and each side rejects frames the other side got wrong.
public enum WebSocketRole: Sendable {
    /// Masks what it sends; refuses masked frames.
    case client
    /// Never masks; demands masked frames.
    case server
}
