import Reactor
import Synchronization
import TestSupport

/// A producer stand-in that serves a fixed stream of lines, honouring `from_seq` (only
/// lines with a greater seq are sent) so a listener that reconnects resumes as with the
/// real one. For events the real producer refuses at the door, which a listener must
/// still survive.
final class FakeProducer: Sendable {
    let port: Int
    private let group: EventLoopGroup
    private let connectionCount: Counter

    private final class Counter: Sendable { let value = Mutex(0) }

    /// `lines` are (seq, JSON line) in seq order; `stream` is sent as `Dedup-Stream` when set.
    init(port: Int, lines: [(UInt64, String)]) throws {
        self.port = port
        let count = Counter()
        connectionCount = count
        group = try EventLoopGroup(threads: 1) { loop, _ in
            let server = try WebSocketServer(loop: loop, host: "127.0.0.1", port: port, reusePort: false) { socket in
                count.value.withLock { $0 += 1 }
                let from = socket.request?.queryParameter("from_seq").flatMap { UInt64($0) } ?? 0
                let text = lines.filter { $0.0 > from }.map(\.1).joined(separator: "\n")
                if !text.isEmpty { socket.send(text: text) }
            }
            loop.keepAlive(server)
        }
    }

    var connections: Int { connectionCount.value.withLock { $0 } }

    func shutdown() { group.shutdown() }
}
