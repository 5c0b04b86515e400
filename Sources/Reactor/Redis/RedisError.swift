/// Why a Redis command did not produce the value asked for.
public enum RedisError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The server answered with an error reply (`-ERR ...`, `-WRONGTYPE ...`).
    case server(String)
    /// The connection went away (or never came up) while the command was pending.
    case connectionLost(String)
    /// Issued while the client was down under `.failFast`; carries the last connection error.
    case notConnected(String)
    /// Issued while down under `.queue(limit:)` with the queue already full.
    case queueFull(limit: Int)
    /// No reply within the command timeout; the connection is reset, since a Redis that
    /// stopped answering the oldest command answers none of the later ones either.
    case timedOut(milliseconds: Int)
    /// The client was closed before the command completed.
    case closed
    /// A reply of a type the typed operation cannot turn into its result.
    case unexpectedReply(String)

    /// Whether the failed command may still have run on the server: an error reply means
    /// Redis refused it, and a command issued while down or over the queue was never sent;
    /// a lost connection, a timeout or a close may come after it ran.
    public var commandMayHaveRun: Bool {
        switch self {
        case .server, .notConnected, .queueFull: return false
        case .connectionLost, .timedOut, .closed, .unexpectedReply: return true
        }
    }

    /// One line for logs and `/health`.
    public var description: String {
        switch self {
        case .server(let message): return "redis error reply: \(message)"
        case .connectionLost(let reason): return "redis connection lost: \(reason)"
        case .notConnected(let reason): return "redis not connected: \(reason)"
        case .queueFull(let limit): return "redis down and \(limit) commands already queued"
        case .timedOut(let ms): return "redis command timed out after \(ms) ms"
        case .closed: return "redis client closed"
        case .unexpectedReply(let what): return "unexpected redis reply: \(what)"
        }
    }
}
