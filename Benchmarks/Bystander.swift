import Foundation
import Reactor

/// `Benchmarks bystander <ws-url>`: a subscriber that only reads the producer's stream
/// (every frame, every line found with memchr) and claims nothing. The bystander pass runs
/// one listener with some of these beside it: what remains of the cost of adding
/// listeners once claims are shared (every subscriber still receives every event), which
/// no claim sharing can remove.
enum Bystander {
    private final class Reader: WebSocketClientDelegate {
        var lines = 0
        func webSocket(_ socket: WebSocketConnection, didReceiveMessage opcode: WebSocketOpcode, bytes: UnsafeRawBufferPointer) {
            guard var at = bytes.baseAddress, bytes.count > 0 else { return }
            let end = at + bytes.count
            lines += 1
            while let newline = memchr(at, 0x0A, end - at) {
                lines += 1
                at = UnsafeRawPointer(newline) + 1
            }
        }
        func webSocketDidClose(_ socket: WebSocketConnection, code: WebSocketCloseCode, reason: String) {}
    }

    static func run(url text: String) -> Never {
        guard let url = try? WebSocketURL(parsing: text) else { fail("bystander: bad URL \(text)") }
        let group: EventLoopGroup
        do {
            group = try EventLoopGroup(threads: 1, name: "bystander") { loop, _ in
                let reader = Reader()
                let client = WebSocketClient(loop: loop, url: url, reconnect: .backoff(initial: .milliseconds(100), max: .seconds(1)))
                client.delegate = reader
                client.connect()
                loop.keepAlive(client)
                loop.keepAlive(reader)
            }
        } catch {
            fail("bystander: \(error)")
        }
        while true { withExtendedLifetime(group) { _ = pause() } }
    }
}
