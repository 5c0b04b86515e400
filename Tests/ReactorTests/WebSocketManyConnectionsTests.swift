import XCTest
@testable import Reactor

/// 2,000 of our clients against our server in one process: all connect, all receive one
/// broadcast, all close cleanly, and no descriptor is left behind.
final class WebSocketManyConnectionsTests: XCTestCase {
    final class Counter: WebSocketClientDelegate {
        var opened = 0
        var messages = 0
        var wrongMessages = 0
        var closes: [WebSocketCloseCode: Int] = [:]
        var failures = 0
        let expected: [UInt8]
        init(expected: [UInt8]) { self.expected = expected }
        func webSocketDidOpen(_ socket: WebSocketConnection) { opened += 1 }
        func webSocket(_ socket: WebSocketConnection, didReceiveMessage opcode: WebSocketOpcode, bytes: UnsafeRawBufferPointer) {
            if opcode == .text && bytes.elementsEqual(expected) { messages += 1 } else { wrongMessages += 1 }
        }
        func webSocketDidClose(_ socket: WebSocketConnection, code: WebSocketCloseCode, reason: String) {
            closes[code, default: 0] += 1
        }
        func webSocketClient(_ client: WebSocketClient, didFailToConnect error: WebSocketClientError) { failures += 1 }
    }

    func testTwoThousandClientsReceiveABroadcastAndCloseWithoutLeaks() throws {
        let count = 2000
        let fdsBefore = openFileDescriptorCount()
        let payload = Array("{\"seq\": 1, \"event_id\": \"broadcast\", \"payload\": {\"message\": \"hello\"}}".utf8)
        do {
            let loop = try EventLoop()
            let serverSide = Counter(expected: payload)
            var serverSockets: [WebSocketConnection] = []
            let server = try WebSocketServer(loop: loop, host: "127.0.0.1", port: 0, reusePort: false) { socket in
                socket.delegate = serverSide
                serverSockets.append(socket)
            }
            let clientSide = Counter(expected: payload)
            let url = WebSocketURL(host: "127.0.0.1", port: server.port)
            var clients: [WebSocketClient] = []
            for _ in 0..<count {
                let client = WebSocketClient(loop: loop, url: url, delegate: clientSide)
                client.connect()
                clients.append(client)
            }
            XCTAssertTrue(loop.run(timeout: .seconds(60)) { clientSide.opened == count && serverSockets.count == count },
                          "opened \(clientSide.opened), accepted \(serverSockets.count), failures \(clientSide.failures)")
            XCTAssertEqual(openFileDescriptorCount() - fdsBefore, 2 * count + 3, "two sockets per connection, a listener, epoll and eventfd")

            // One encoding, many writes: the producer's broadcast path.
            let frame = ByteBuffer()
            payload.withUnsafeBytes { WebSocketFrameEncoder.writeFrame(into: frame, opcode: .text, payload: $0, maskKey: nil) }
            frame.withReadableBytes { bytes in
                for socket in serverSockets { XCTAssertTrue(socket.send(encodedFrames: bytes)) }
            }
            XCTAssertTrue(loop.run(timeout: .seconds(60)) { clientSide.messages == count })
            XCTAssertEqual(clientSide.wrongMessages, 0)

            for client in clients { client.close(code: .normalClosure, reason: "done") }
            XCTAssertTrue(loop.run(timeout: .seconds(60)) {
                clientSide.closes.values.reduce(0, +) == count && serverSide.closes.values.reduce(0, +) == count
            }, "client closes \(clientSide.closes), server closes \(serverSide.closes)")
            XCTAssertEqual(clientSide.closes, [.normalClosure: count])
            XCTAssertEqual(serverSide.closes, [.normalClosure: count])
            XCTAssertTrue(serverSockets.allSatisfy { $0.state == .closed })
            XCTAssertTrue(clients.allSatisfy { $0.socket == nil })
            server.close()
            // Let deferred close work run before the loop goes away.
            loop.run(timeout: .milliseconds(50)) { false }
        }
        XCTAssertEqual(openFileDescriptorCount(), fdsBefore, "descriptors leaked")
    }
}
