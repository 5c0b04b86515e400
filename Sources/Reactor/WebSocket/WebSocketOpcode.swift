/// A frame's opcode (RFC 6455 section 5.2). Any other value fails the connection.
public enum WebSocketOpcode: UInt8, Sendable {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    /// Close, ping and pong: at most 125 bytes, never fragmented, may interleave with a
    /// fragmented data message.
    @inlinable public var isControl: Bool { rawValue & 0x8 != 0 }
}

/// Which end of the connection we are: clients mask every frame they send and servers
/// must not, and each side rejects frames the other side got wrong.
public enum WebSocketRole: Sendable {
    case client
    case server
}
