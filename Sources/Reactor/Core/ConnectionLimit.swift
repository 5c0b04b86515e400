import Synchronization

/// A cap on open connections shared by several listening sockets, on any loops (a
/// producer's HTTP and WebSocket ports count together against one number).
///
/// A `TCPServer` with a limit takes a slot for every connection it accepts; the connection
/// gives the slot back when it closes, whoever owns it by then (an HTTP connection
/// upgraded to WebSocket keeps its slot). With every slot taken, a new connection is
/// closed at once, before a byte is read or written: the client sees the connection end
/// (EOF, or a reset if it had already sent something) and no response. Refusing at accept
/// keeps the backlog moving, unlike leaving connections unaccepted, so clients learn at
/// once instead of waiting on a queue that will not drain.
public final class ConnectionLimit: Sendable {
    /// Most connections open at once across every listener sharing this limit.
    public let maximum: Int
    private let taken = Atomic<Int>(0)
    private let refused = Atomic<Int>(0)

    /// A limit of `maximum` open connections (0 refuses every connection).
    public init(maximum: Int) {
        precondition(maximum >= 0, "a connection limit cannot be negative")
        self.maximum = maximum
    }

    /// Connections holding a slot now.
    public var openConnections: Int { taken.load(ordering: .relaxed) }

    /// Connections closed at accept because every slot was taken, since creation.
    public var refusedConnections: Int { refused.load(ordering: .relaxed) }

    /// Takes a slot; false (and counted as refused) when every slot is taken.
    func acquire() -> Bool {
        var current = taken.load(ordering: .relaxed)
        while current < maximum {
            let (exchanged, original) = taken.compareExchange(expected: current, desired: current + 1,
                                                              ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        refused.wrappingAdd(1, ordering: .relaxed)
        return false
    }

    /// Gives back a slot taken by `acquire`.
    func release() {
        taken.wrappingSubtract(1, ordering: .relaxed)
    }
}
