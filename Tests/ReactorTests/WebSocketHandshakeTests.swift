import XCTest
@testable import Reactor

/// The opening handshake on both sides, URL parsing and the client's reconnect policy.
final class WebSocketHandshakeTests: XCTestCase {
    func request(_ extra: [(String, String)] = [], drop: String? = nil, method: String = "GET",
                 version: HTTPVersion = .http1_1) -> HTTPRequest {
        var pairs = [("Host", "x"), ("Upgrade", "websocket"), ("Connection", "keep-alive, Upgrade"),
                     ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]
        pairs.removeAll { $0.0 == drop }
        for (name, value) in extra {
            pairs.removeAll { $0.0 == name }
            pairs.append((name, value))
        }
        return HTTPRequest(method: method, target: "/?from_seq=42", version: version, headers: HTTPHeaders(pairs))
    }

    func testValidRequestYieldsTheRFCAcceptValue() {
        XCTAssertEqual(try WebSocketServerHandshake.validate(request()).get(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    func testEachBadRequestIsRefusedWithItsStatus() {
        let cases: [(HTTPRequest, WebSocketHandshakeError)] = [
            (request(method: "POST"), .notGet),
            (request(version: .http1_0), .notHTTP11),
            (request(drop: "Upgrade"), .missingUpgrade),
            (request([("Connection", "keep-alive")]), .missingConnectionUpgrade),
            (request([("Sec-WebSocket-Version", "8")]), .unsupportedVersion("8")),
            (request(drop: "Sec-WebSocket-Version"), .unsupportedVersion(nil)),
            (request([("Sec-WebSocket-Key", "c2hvcnQ=")]), .badKey),
            (request(drop: "Sec-WebSocket-Key"), .badKey),
        ]
        for (req, expected) in cases {
            guard case .failure(let error) = WebSocketServerHandshake.validate(req) else { XCTFail("\(expected) accepted"); continue }
            XCTAssertEqual(error, expected)
            XCTAssertEqual(error.status, expected == .unsupportedVersion("8") || expected == .unsupportedVersion(nil) ? 426 : 400)
        }
    }

    func testServerExposesTheRequestTargetAndQuery() throws {
        let h = try WebSocketHarness()
        let recorder = WebSocketRecorder()
        var url = h.url
        url.query = "from_seq=17"
        let client = WebSocketClient(loop: h.loop, url: url, delegate: recorder)
        client.connect()
        XCTAssertTrue(h.run { client.isConnected && h.serverSockets.count == 1 })
        XCTAssertEqual(h.serverSockets[0].requestTarget, "/?from_seq=17")
        XCTAssertEqual(h.serverSockets[0].request?.queryParameter("from_seq"), "17")
        XCTAssertEqual(h.server.opened.count, 1)
        XCTAssertEqual(recorder.opened.count, 1)
    }

    func rawExchange(_ h: WebSocketHarness, _ text: String) -> RawPeer {
        let peer = RawPeer()
        let connection = try! TCPConnection.connect(loop: h.loop, host: "127.0.0.1", port: h.wsServer.port, delegate: peer)
        connection.write(text)
        XCTAssertTrue(h.run { peer.closed })
        return peer
    }

    func testBadVersionOnTheWireGets426AndTheVersionWeSpeak() throws {
        let h = try WebSocketHarness()
        let peer = rawExchange(h, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
        XCTAssertTrue(peer.text.hasPrefix("HTTP/1.1 426 "), peer.text)
        XCTAssertTrue(peer.text.contains("Sec-WebSocket-Version: 13\r\n"))
        XCTAssertTrue(h.serverSockets.isEmpty)
    }

    func testPlainHTTPRequestOnTheWebSocketPortGets400() throws {
        let h = try WebSocketHarness()
        let peer = rawExchange(h, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(peer.text.hasPrefix("HTTP/1.1 400 "), peer.text)
    }

    func testGoodUpgradeOnTheWireGets101WithTheAcceptKey() throws {
        let h = try WebSocketHarness()
        let peer = RawPeer()
        let connection = try TCPConnection.connect(loop: h.loop, host: "127.0.0.1", port: h.wsServer.port, delegate: peer)
        connection.write("GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        XCTAssertTrue(h.run { peer.text.hasSuffix("\r\n\r\n") })
        XCTAssertEqual(peer.text, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
        connection.abort()
    }

    /// A fake server that answers any request with `response`.
    final class FakeServer: TCPConnectionDelegate {
        let response: String
        init(response: String) { self.response = response }
        func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
            connection.write(response)
            return bytes.count
        }
        func connectionDidClose(_ connection: TCPConnection, error: SocketError?) {}
    }

    func testClientRefusesAWrongAcceptKeyAndANon101Status() throws {
        let loop = try EventLoop()
        for (response, why) in [
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", "does not match"),
            ("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "status 404"),
        ] {
            let fake = FakeServer(response: response)
            let server = try TCPServer(loop: loop, host: "127.0.0.1", port: 0, reusePort: false) { $0.delegate = fake }
            let recorder = WebSocketRecorder()
            let client = WebSocketClient(loop: loop, url: WebSocketURL(host: "127.0.0.1", port: server.port), delegate: recorder)
            client.connect()
            XCTAssertTrue(loop.run(timeout: .seconds(5)) { !recorder.failures.isEmpty })
            guard case .badResponse(let text)? = recorder.failures.first else { XCTFail("\(recorder.failures)"); continue }
            XCTAssertTrue(text.contains(why), text)
            XCTAssertFalse(client.isConnected)
            server.close()
        }
    }

    func testURLParsing() throws {
        XCTAssertEqual(try WebSocketURL(parsing: "ws://127.0.0.1:8080/"), WebSocketURL(host: "127.0.0.1", port: 8080, path: "/"))
        XCTAssertEqual(try WebSocketURL(parsing: "ws://example.com"), WebSocketURL(host: "example.com", port: 80, path: "/"))
        let withQuery = try WebSocketURL(parsing: "ws://h:1/feed?from_seq=9#frag")
        XCTAssertEqual(withQuery.requestTarget, "/feed?from_seq=9")
        XCTAssertEqual(try WebSocketURL(parsing: "ws://h?from_seq=9").requestTarget, "/?from_seq=9")
        XCTAssertEqual(try WebSocketURL(parsing: "ws://[::1]:9000/").host, "::1")
        XCTAssertEqual(try WebSocketURL(parsing: "ws://[::1]:9000/").hostHeader, "[::1]:9000")
        XCTAssertThrowsError(try WebSocketURL(parsing: "wss://h/")) { error in
            XCTAssertEqual(error as? WebSocketURL.ParseError, .unsupportedScheme("wss"))
            XCTAssertTrue("\(error)".contains("not supported"))
        }
        XCTAssertThrowsError(try WebSocketURL(parsing: "http://h/"))
        XCTAssertThrowsError(try WebSocketURL(parsing: "ws://:80/"))
        XCTAssertThrowsError(try WebSocketURL(parsing: "ws://h:0/"))
        XCTAssertThrowsError(try WebSocketURL(parsing: "ws://h:70000/"))
        XCTAssertThrowsError(try WebSocketURL(parsing: "ws://h:x/"))
    }

    func testBackoffGrowsExponentiallyWithJitterAndIsCapped() {
        let policy = WebSocketReconnectPolicy.backoff(initial: .milliseconds(100), max: .seconds(2))
        XCTAssertEqual(policy.delay(attempt: 1, unit: 0.999_999), .nanoseconds(99_999_950))
        XCTAssertEqual(policy.delay(attempt: 1, unit: 0), .milliseconds(50))
        XCTAssertEqual(policy.delay(attempt: 3, unit: 0), .milliseconds(200))
        XCTAssertEqual(policy.delay(attempt: 5, unit: 0.5), .milliseconds(1200))
        XCTAssertEqual(policy.delay(attempt: 50, unit: 0), .seconds(1))
        XCTAssertEqual(policy.delay(attempt: 1000, unit: 1), .seconds(2))
        XCTAssertNil(WebSocketReconnectPolicy.never.delay(attempt: 1, unit: 0))
    }

    func testClientReconnectsAfterServerCloseUsingTheURLTheOwnerPicks() throws {
        let h = try WebSocketHarness()
        let recorder = WebSocketRecorder()
        var asked: [Int] = []
        recorder.nextURL = { attempt in
            asked.append(attempt)
            var next = h.url
            next.query = "from_seq=\(100 + asked.count)"
            return next
        }
        let client = WebSocketClient(loop: h.loop, url: h.url, reconnect: .backoff(initial: .milliseconds(10), max: .milliseconds(50)),
                                     delegate: recorder)
        client.connect()
        XCTAssertTrue(h.run { client.isConnected && h.serverSockets.count == 1 })
        h.serverSockets[0].close(code: .tryAgainLater)
        XCTAssertTrue(h.run { h.serverSockets.count == 2 && client.isConnected })
        XCTAssertEqual(h.serverSockets[1].request?.queryParameter("from_seq"), "101")
        XCTAssertEqual(recorder.closes.first?.code, .tryAgainLater)
        XCTAssertEqual(client.connectCount, 2)
        XCTAssertEqual(asked, [1])
        // close() stops the reconnecting for good.
        client.close()
        XCTAssertTrue(h.run { recorder.closes.count == 2 })
        h.loop.run(timeout: .milliseconds(200)) { false }
        XCTAssertEqual(h.serverSockets.count, 2)
    }

    func testClientKeepsRetryingWhileTheServerIsDown() throws {
        let loop = try EventLoop()
        // Find a port nobody listens on by binding and closing.
        let probe = try TCPServer(loop: loop, host: "127.0.0.1", port: 0, reusePort: false) { _ in }
        let port = probe.port
        probe.close()
        let recorder = WebSocketRecorder()
        let client = WebSocketClient(loop: loop, url: WebSocketURL(host: "127.0.0.1", port: port),
                                     reconnect: .backoff(initial: .milliseconds(5), max: .milliseconds(20)), delegate: recorder)
        client.connect()
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { recorder.failures.count >= 3 })
        XCTAssertGreaterThanOrEqual(client.failedAttempts, 3)
        // Now bring a server up on that port: the next attempt succeeds.
        var accepted: [WebSocketConnection] = []
        let server = try WebSocketServer(loop: loop, host: "127.0.0.1", port: port, reusePort: false) { accepted.append($0) }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.isConnected })
        XCTAssertEqual(client.failedAttempts, 0)
        XCTAssertEqual(accepted.count, 1)
        client.close()
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { recorder.closes.count == 1 })
        server.close()
    }

    func testHTTPServerUpgradeHookHandsWebSocketsOverAndClearsTheHTTPIdleTimeout() throws {
        let loop = try EventLoop()
        let router = HTTPRouter()
        let http = try HTTPServer(loop: loop, configuration: .init(host: "127.0.0.1", port: 0, reusePort: false,
                                                                    idleTimeout: .milliseconds(300)), router: router)
        defer { http.close() }
        let server = WebSocketRecorder()
        server.echo = true
        var accepted: [WebSocketConnection] = []
        http.acceptWebSockets { socket in
            socket.delegate = server
            accepted.append(socket)
        }
        let recorder = WebSocketRecorder()
        let client = WebSocketClient(loop: loop, url: WebSocketURL(host: "127.0.0.1", port: http.port, path: "/", query: "from_seq=5"),
                                     delegate: recorder)
        client.connect()
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.isConnected && accepted.count == 1 })
        XCTAssertEqual(accepted[0].request?.queryParameter("from_seq"), "5")
        XCTAssertEqual(server.opened.count, 1)
        // Quiet for longer than the HTTP idle timeout: a broadcast listener must survive that.
        loop.run(timeout: .milliseconds(600)) { false }
        XCTAssertTrue(client.isConnected)
        client.socket!.send(text: "still here")
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { recorder.messages.count == 1 })

        // A bad upgrade on the HTTP port gets the WebSocket refusal, not a route.
        let peer = RawPeer()
        let raw = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: http.port, delegate: peer)
        raw.write("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { peer.closed })
        XCTAssertTrue(peer.text.hasPrefix("HTTP/1.1 400 "), peer.text)
        client.close()
    }
}
