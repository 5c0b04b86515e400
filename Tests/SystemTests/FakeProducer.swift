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

    /// `lines` are (seq, JSON line) in seq order.
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

/// A producer stand-in that sends its frames one at a time, each when the test releases
/// it (to every client connected then, and, honouring `from_seq`, to any that connects
/// later): a test decides what a listener has received at each step.
final class PacedFakeProducer: Sendable {
    let port: Int
    private let group: EventLoopGroup
    private let state: State

    /// Touched on the loop's thread only.
    private final class State: @unchecked Sendable {
        let frames: [[(UInt64, String)]]
        var released = 0
        var sockets: [WebSocketConnection] = []
        init(frames: [[(UInt64, String)]]) { self.frames = frames }

        func text(_ frame: Int, after from: UInt64) -> String {
            frames[frame].filter { $0.0 > from }.map(\.1).joined(separator: "\n")
        }
    }

    /// `frames` hold (seq, JSON line) in seq order; `stream` goes out as `Dedup-Stream`
    /// (listeners share claims only with members on the same, known stream).
    init(port: Int, frames: [[(UInt64, String)]], stream: String = "paced-fake-stream") throws {
        self.port = port
        let state = State(frames: frames)
        self.state = state
        var settings = WebSocketConfiguration()
        settings.responseHeaders = [("Dedup-Stream", stream)]
        let configuration = settings
        group = try EventLoopGroup(threads: 1) { loop, _ in
            let server = try WebSocketServer(loop: loop, host: "127.0.0.1", port: port, reusePort: false,
                                             configuration: configuration) { socket in
                let from = socket.request?.queryParameter("from_seq").flatMap { UInt64($0) } ?? 0
                state.sockets.removeAll { !$0.isOpen }
                state.sockets.append(socket)
                for frame in 0..<state.released {
                    let text = state.text(frame, after: from)
                    if !text.isEmpty { socket.send(text: text) }
                }
            }
            loop.keepAlive(server)
        }
    }

    /// Sends the next frame to every connected client.
    func releaseNext() {
        let state = self.state
        group.handle(for: 0).execute { _ in
            guard state.released < state.frames.count else { return }
            let text = state.text(state.released, after: 0)
            state.released += 1
            for socket in state.sockets where socket.isOpen { socket.send(text: text) }
        }
    }

    func shutdown() { group.shutdown() }
}
