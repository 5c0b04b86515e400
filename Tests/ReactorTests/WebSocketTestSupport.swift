import XCTest
@testable import Reactor

/// Records everything a WebSocket endpoint hears; optionally echoes messages back.
final class WebSocketRecorder: WebSocketClientDelegate {
    var messages: [(opcode: WebSocketOpcode, bytes: [UInt8])] = []
    var pongs: [[UInt8]] = []
    var closes: [(code: WebSocketCloseCode, reason: String)] = []
    var opened: [WebSocketConnection] = []
    var failures: [WebSocketClientError] = []
    var echo = false
    /// Called for every message instead of echoing, when set.
    var onMessage: ((WebSocketConnection, WebSocketOpcode, [UInt8]) -> Void)?
    /// Answers urlForReconnectAttempt.
    var nextURL: ((Int) -> WebSocketURL?)?

    func webSocketDidOpen(_ socket: WebSocketConnection) { opened.append(socket) }

    func webSocket(_ socket: WebSocketConnection, didReceiveMessage opcode: WebSocketOpcode, bytes: UnsafeRawBufferPointer) {
        messages.append((opcode, Array(bytes)))
        if let onMessage { return onMessage(socket, opcode, Array(bytes)) }
        if echo { socket.send(opcode: opcode, payload: bytes) }
    }

    func webSocket(_ socket: WebSocketConnection, didReceivePong bytes: UnsafeRawBufferPointer) { pongs.append(Array(bytes)) }

    func webSocketDidClose(_ socket: WebSocketConnection, code: WebSocketCloseCode, reason: String) {
        closes.append((code, reason))
    }

    func webSocketClient(_ client: WebSocketClient, didFailToConnect error: WebSocketClientError) { failures.append(error) }

    func webSocketClient(_ client: WebSocketClient, urlForReconnectAttempt attempt: Int) -> WebSocketURL? { nextURL?(attempt) }
}

/// A loop, a WebSocketServer on an ephemeral port whose connections report to `server`,
/// and helpers to make clients.
final class WebSocketHarness {
    let loop: EventLoop
    let server = WebSocketRecorder()
    var serverSockets: [WebSocketConnection] = []
    var wsServer: WebSocketServer!

    init(configuration: WebSocketConfiguration = WebSocketConfiguration()) throws {
        loop = try EventLoop()
        wsServer = try WebSocketServer(loop: loop, host: "127.0.0.1", port: 0, reusePort: false,
                                       configuration: configuration) { [unowned self] socket in
            socket.delegate = self.server
            self.serverSockets.append(socket)
        }
    }

    var url: WebSocketURL { WebSocketURL(host: "127.0.0.1", port: wsServer.port, path: "/") }

    /// Connects a client and runs the loop until its handshake is done.
    func connectedClient(_ recorder: WebSocketRecorder, configuration: WebSocketConfiguration = WebSocketConfiguration(),
                         file: StaticString = #filePath, line: UInt = #line) -> WebSocketClient {
        let client = WebSocketClient(loop: loop, url: url, configuration: configuration, delegate: recorder)
        client.connect()
        XCTAssertTrue(run { client.isConnected && !self.serverSockets.isEmpty }, "client did not connect", file: file, line: line)
        return client
    }

    @discardableResult
    func run(seconds: Int = 10, until condition: () -> Bool) -> Bool {
        loop.run(timeout: .seconds(seconds), until: condition)
    }

    deinit { wsServer.close() }
}

/// A raw TCP peer for handshake and protocol-violation tests: collects what it reads.
final class RawPeer: TCPConnectionDelegate {
    var received: [UInt8] = []
    var connected = false
    var closed = false
    func connectionDidConnect(_ connection: TCPConnection) { connected = true }
    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        received += bytes
        return bytes.count
    }
    func connectionDidClose(_ connection: TCPConnection, error: SocketError?) { closed = true }
    var text: String { String(decoding: received, as: UTF8.self) }
}

/// Counts open descriptors of this process.
func openFileDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}
