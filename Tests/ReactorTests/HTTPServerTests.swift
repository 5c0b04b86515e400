import Foundation
import TestSupport
import XCTest
import Reactor

/// A raw client: records every byte and whether the server closed.
final class HTTPRawClient: TCPConnectionDelegate {
    var received: [UInt8] = []
    var closed = false
    var text: String { String(decoding: received, as: UTF8.self) }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        received.append(contentsOf: bytes)
        return bytes.count
    }
    func connectionDidClose(_ connection: TCPConnection, error: SocketError?) { closed = true }

    /// Number of complete status lines received so far.
    var responseCount: Int { text.components(separatedBy: "HTTP/1.1 ").count - 1 }
}

/// Stands in for the WebSocket layer in upgrade tests: records what it is handed.
final class HTTPUpgradedDelegate: TCPConnectionDelegate {
    var received: [UInt8] = []
    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        received.append(contentsOf: bytes)
        connection.write(Array("echo:".utf8) + Array(bytes))
        return bytes.count
    }
    func connectionDidClose(_ connection: TCPConnection, error: SocketError?) {}
}

/// End to end: a real server on a loop on 127.0.0.1, driven by curl and raw sockets.
final class HTTPServerTests: XCTestCase {
    private var loop: EventLoop!
    private var server: HTTPServer!
    /// For each /slow answer: was reading paused, and how many bytes were kept meanwhile.
    private var slowAnswered: [(paused: Bool, kept: Int)] = []

    override func setUpWithError() throws {
        loop = try EventLoop()
        let router = HTTPRouter()
        let loop = self.loop!
        router.get("/hello") { _, responder in responder.respond(.text("hello")) }
        router.post("/echo") { request, responder in
            responder.respond(HTTPResponse(status: 200, contentType: "application/octet-stream", body: request.body))
        }
        // Answers later, like a handler waiting on a database.
        router.get("/slow") { [weak self] request, responder in
            let ms = Int(request.queryParameter("ms") ?? "") ?? 50
            loop.schedule(in: .milliseconds(ms)) {
                if let connection = responder.connection {
                    self?.slowAnswered.append((connection.isReadingPaused, connection.bufferedReadBytes))
                }
                responder.respond(json: #"{"slow": \#(ms)}"#)
            }
        }
        router.addPrefix("GET", "/api/events/") { request, responder in
            responder.respond(.text("event=" + request.pathRemainder))
        }
        var configuration = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
        configuration.limits.maxBodyBytes = 256 * 1024
        server = try HTTPServer(loop: loop, configuration: configuration, router: router)
    }

    override func tearDown() {
        server?.close()
        // Let closing connections finish so nothing leaks into the next test.
        loop?.run(timeout: .milliseconds(50)) { false }
        server = nil
        loop = nil
    }

    private var base: String { "http://127.0.0.1:\(server.port)" }

    /// Runs curl while pumping the loop on this thread; returns (exit status, stdout).
    private func curl(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let outputURL = FileManager.default.temporaryDirectory.appendingPathComponent("http-curl-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outputURL) }
        let output = try FileHandle(forWritingTo: outputURL)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-s", "-S", "--max-time", "20"] + arguments
        process.standardOutput = output
        try process.run()
        XCTAssertTrue(loop.run(timeout: .seconds(30)) { !process.isRunning }, "curl did not finish")
        process.waitUntilExit()
        try output.close()
        return (process.terminationStatus, try String(contentsOf: outputURL, encoding: .utf8))
    }

    /// Connects a raw client, sends `bytes` in one write and pumps until `done`.
    private func raw(_ bytes: [UInt8], until done: (HTTPRawClient) -> Bool) throws -> (HTTPRawClient, TCPConnection) {
        let client = HTTPRawClient()
        let connection = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: server.port, delegate: client)
        connection.write(bytes)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { done(client) }, "raw client got: \(client.text.debugDescription)")
        return (client, connection)
    }

    // MARK: with curl

    func testKeepAliveReusesOneConnectionForTwoURLs() throws {
        let result = try curl(["-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n",
                               base + "/hello", base + "/api/events/x"])
        XCTAssertEqual(result.status, 0)
        XCTAssertEqual(result.output, "200 1\n200 0\n")
        XCTAssertEqual(server.acceptedConnections, 1)
    }

    func testChunkedUploadIsReassembled() throws {
        var rng = SplitMix64(seed: 7)
        let payload = (0..<100_000).map { _ in UInt8.random(in: 32...126, using: &rng) }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("http-upload-\(UUID().uuidString)")
        try Data(payload).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try curl(["-H", "Transfer-Encoding: chunked", "--data-binary", "@" + file.path, base + "/echo"])
        XCTAssertEqual(result.status, 0)
        XCTAssertEqual(Array(result.output.utf8), payload)
    }

    func testBodyOverTheLimitIs413() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("http-big-\(UUID().uuidString)")
        try Data(repeating: 65, count: 300 * 1024).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try curl(["-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@" + file.path, base + "/echo"])
        XCTAssertEqual(result.output, "413")
    }

    func testBodyOverTheLimitSentWithoutWaitingIs413() throws {
        // No Expect: the body is already on its way; the answer must still reach curl, not a reset.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("http-big-\(UUID().uuidString)")
        try Data(repeating: 65, count: 2 * 1024 * 1024).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try curl(["-H", "Expect:", "-w", "\n%{http_code}", "--data-binary", "@" + file.path, base + "/echo"])
        XCTAssertEqual(result.output, "{\"error\": \"request body exceeds 262144 bytes\"}\n413")
    }

    func testHugeHeaderIs431() throws {
        let result = try curl(["-H", "X-Huge: " + String(repeating: "h", count: 20_000), "-w", "\n%{http_code}", base + "/hello"])
        XCTAssertEqual(result.output.split(separator: "\n").last, "431")
        XCTAssertTrue(result.output.hasPrefix(#"{"error": "request head exceeds 16384 bytes"}"#), result.output)
    }

    func testUnknownPathIs404WithJSONError() throws {
        let result = try curl(["-w", "\n%{http_code} %{content_type}", base + "/nope"])
        XCTAssertEqual(result.output, "{\"error\": \"no such path: /nope\"}\n404 application/json")
    }

    func testWrongMethodIs405WithAllow() throws {
        let result = try curl(["-D", "-", "-o", "/dev/null", "-X", "POST", base + "/hello"])
        XCTAssertTrue(result.output.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n"), result.output)
        XCTAssertTrue(result.output.contains("Allow: GET, HEAD\r\n"), result.output)
    }

    func testPrefixRouteGetsTheDecodedRemainder() throws {
        let result = try curl([base + "/api/events/order%2042"])
        XCTAssertEqual(result.output, "event=order 42")
    }

    // MARK: with raw sockets

    func testPipelinedRequestsAreAnsweredInOrderEvenWhenTheFirstIsSlow() throws {
        let requests = "GET /slow?ms=80 HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n"
            + "POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody"
        let (client, connection) = try raw(Array(requests.utf8)) { $0.responseCount >= 3 && $0.text.hasSuffix("body") }
        let text = client.text
        let slow = try XCTUnwrap(text.range(of: #"{"slow": 80}"#))
        let hello = try XCTUnwrap(text.range(of: "\r\n\r\nhello"))
        let body = try XCTUnwrap(text.range(of: "\r\n\r\nbody"))
        XCTAssertLessThan(slow.lowerBound, hello.lowerBound)
        XCTAssertLessThan(hello.lowerBound, body.lowerBound)
        XCTAssertFalse(client.closed)
        connection.close()
    }

    func testGarbageIs400AndTheConnectionCloses() throws {
        let (client, _) = try raw([0x16, 0x03, 0x01, 0x00, 0xA5] + Array("\r\n\r\n".utf8)) { $0.closed }
        XCTAssertTrue(client.text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), client.text)
        XCTAssertTrue(client.text.contains("Connection: close\r\n"))
        XCTAssertTrue(client.text.hasSuffix(#"{"error": "invalid method"}"#))
    }

    func testMalformedRequestAfterAGoodOneGetsBothAnswers() throws {
        let (client, _) = try raw(Array("GET /hello HTTP/1.1\r\n\r\nGET / HTTP/9.9\r\n\r\n".utf8)) { $0.closed }
        XCTAssertEqual(client.responseCount, 2)
        XCTAssertTrue(client.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        XCTAssertTrue(client.text.contains("HTTP/1.1 400 Bad Request\r\n"))
    }

    func testConnectionCloseIsHonouredAfterTheResponse() throws {
        let (client, _) = try raw(Array("GET /hello HTTP/1.1\r\nConnection: close\r\n\r\nGET /hello HTTP/1.1\r\n\r\n".utf8)) { $0.closed }
        XCTAssertEqual(client.responseCount, 1)
        XCTAssertTrue(client.text.contains("Connection: close\r\n"))
    }

    func testHTTP10KeepAliveIsAcknowledged() throws {
        let (client, connection) = try raw(Array("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".utf8)) { $0.text.hasSuffix("hello") }
        XCTAssertTrue(client.text.contains("Connection: keep-alive\r\n"))
        XCTAssertFalse(client.closed)
        connection.close()
    }

    func testHeadAnswersWithoutBody() throws {
        let (client, connection) = try raw(Array("HEAD /hello HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n".utf8)) { $0.responseCount >= 2 && $0.text.hasSuffix("hello") }
        XCTAssertEqual(client.text.components(separatedBy: "hello").count - 1, 1, client.text)
        XCTAssertTrue(client.text.hasPrefix("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200"))
        connection.close()
    }

    func testExpectContinueGetsInterimResponseBeforeTheBody() throws {
        let (client, connection) = try raw(Array("POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n".utf8)) {
            $0.text.contains("100 Continue")
        }
        XCTAssertEqual(client.text, "HTTP/1.1 100 Continue\r\n\r\n")
        connection.write(Array("abc".utf8))
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.text.hasSuffix("abc") })
        connection.close()
    }

    func testIdleKeepAliveConnectionIsClosed() throws {
        let router = HTTPRouter()
        router.get("/x") { _, r in r.respond(.text("x")) }
        let idle = try HTTPServer(loop: loop, configuration: .init(host: "127.0.0.1", port: 0, idleTimeout: .milliseconds(200)), router: router)
        defer { idle.close() }
        let client = HTTPRawClient()
        let connection = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: idle.port, delegate: client)
        connection.write(Array("GET /x HTTP/1.1\r\n\r\n".utf8))
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.text.hasSuffix("x") })
        let answered = Date()
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.closed })
        XCTAssertGreaterThan(Date().timeIntervalSince(answered), 0.15)
        XCTAssertEqual(idle.openConnections, 0)
    }

    func testPipelinedRequestsReachTheRouterTogetherAndAnswersKeepTheirOrder() throws {
        // Request a answers after 200 ms, b after 10 ms: b is produced first (it reached
        // the router while a was pending), yet a's answer leaves first; the error for the
        // garbage behind them comes last.
        var produced: [String] = []
        server.router.get("/later") { [loop] request, responder in
            let id = request.queryParameter("id") ?? "?"
            loop!.schedule(in: .milliseconds(id == "a" ? 200 : 10)) {
                produced.append(id)
                responder.respond(.text("later-\(id);"))
            }
        }
        let stream = "GET /later?id=a HTTP/1.1\r\n\r\nGET /later?id=b HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\nNOT HTTP\r\n\r\n"
        let (client, connection) = try raw(Array(stream.utf8)) { $0.closed }
        XCTAssertEqual(produced, ["b", "a"])
        let text = client.text
        let order = ["later-a;", "later-b;", "hello", "HTTP/1.1 400"].map { text.range(of: $0)?.lowerBound }
        XCTAssertFalse(order.contains(nil), text)
        XCTAssertEqual(order.compactMap { $0 }, order.compactMap { $0 }.sorted(), "answers out of order: \(text)")
        connection.close()
    }

    func testUpgradeHookTakesTheConnectionWithTheBytesThatFollowed() throws {
        let upgraded = HTTPUpgradedDelegate()
        var seen: HTTPRequest?
        server.onUpgrade = { request, connection in
            seen = request
            connection.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            connection.delegate = upgraded
            return true
        }
        let handshake = "GET /?from_seq=5 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\n\r\nFRAME"
        let (client, connection) = try raw(Array(handshake.utf8)) { $0.text.hasSuffix("echo:FRAME") }
        XCTAssertTrue(client.text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        XCTAssertEqual(upgraded.received, Array("FRAME".utf8))
        XCTAssertEqual(seen?.queryParameter("from_seq"), "5")
        XCTAssertEqual(seen?.headers["sec-websocket-key"], "k")
        XCTAssertEqual(server.openConnections, 0, "an upgraded connection is no longer an HTTP one")
        connection.close()
    }

    func testDeclinedUpgradeIsRoutedAsPlainHTTP() throws {
        server.onUpgrade = { _, _ in false }
        let (client, connection) = try raw(Array("GET /hello HTTP/1.1\r\nUpgrade: websocket\r\n\r\n".utf8)) { $0.text.hasSuffix("hello") }
        XCTAssertTrue(client.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        connection.close()
    }

    func testResponderHandleAnswersFromAnotherThread() throws {
        let router = HTTPRouter()
        router.get("/thread") { _, responder in
            let handle = responder.handle
            Thread.detachNewThread { handle.respond(.text("from a thread")) }
        }
        let threaded = try HTTPServer(loop: loop, configuration: .init(host: "127.0.0.1", port: 0), router: router)
        defer { threaded.close() }
        let client = HTTPRawClient()
        let connection = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: threaded.port, delegate: client)
        connection.write(Array("GET /thread HTTP/1.1\r\n\r\n".utf8))
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.text.hasSuffix("from a thread") })
        connection.close()
    }

    func testPipelineFloodPausesReadingInsteadOfBuffering() throws {
        // 20000 pipelined requests (440 KB) behind a slow one: the server parses only a few
        // of them early, pauses reading past 64 KiB kept, then answers them all in order.
        let one = "GET /hello HTTP/1.1\r\n\r\n"
        let flood = "GET /slow?ms=100 HTTP/1.1\r\n\r\n" + String(repeating: one, count: 20_000)
        let (client, connection) = try raw(Array(flood.utf8)) { $0.responseCount >= 20_001 }
        XCTAssertTrue(client.text.hasPrefix("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"))
        XCTAssertEqual(slowAnswered.count, 1)
        XCTAssertEqual(slowAnswered.first?.paused, true)
        XCTAssertLessThanOrEqual(slowAnswered.first?.kept ?? .max, 64 * 1024 + 256 * 1024, "kept more than the limit plus one read")
        XCTAssertGreaterThan(slowAnswered.first?.kept ?? 0, 64 * 1024)
        connection.close()
    }
}

/// One server per loop of a group, on one port, answering curl while the loops run on their threads.
final class HTTPServerGroupTests: XCTestCase {
    func testEveryLoopServesTheSamePort() throws {
        let group = try EventLoopGroup(threads: 2, name: "http-test")
        defer { group.shutdown() }
        let servers = try HTTPServerGroup(group: group, configuration: .init(host: "127.0.0.1", port: 0)) { server in
            server.router.get("/who") { _, responder in responder.respond(.text("ok")) }
        }
        XCTAssertGreaterThan(servers.port, 0)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        let url = "http://127.0.0.1:\(servers.port)/who"
        process.arguments = ["-s", "--max-time", "10"] + Array(repeating: url, count: 3)
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(String(decoding: output, as: UTF8.self), "okokok")
        servers.close()
    }

    func testAFailingSetupClosesWhatWasBound() throws {
        struct SetupFailed: Error {}
        let group = try EventLoopGroup(threads: 2, name: "http-test")
        defer { group.shutdown() }
        let port = TestServers.freePort()
        XCTAssertThrowsError(try HTTPServerGroup(group: group, configuration: .init(host: "127.0.0.1", port: port)) { _ in
            throw SetupFailed()
        })
        // Nothing was left listening: a socket without SO_REUSEPORT can take the port.
        let loop = try EventLoop()
        let probe = try TCPServer(loop: loop, host: "127.0.0.1", port: port, reusePort: false) { _ in }
        XCTAssertEqual(probe.port, port)
        probe.close()
    }
}

/// Many clients at once, each pipelining a mix of sync and async, Content-Length and
/// chunked requests, written in random fragments over time: every answer arrives, in order.
final class HTTPServerStressTests: XCTestCase {
    func testManyConnectionsWithFragmentedPipelinesAreAllAnsweredInOrder() throws {
        let loop = try EventLoop()
        let router = HTTPRouter()
        router.post("/sync") { request, responder in
            responder.respond(.text("n=\(request.headers["X-Id"] ?? "?") len=\(request.body.count);"))
        }
        router.get("/async") { request, responder in
            let id = request.headers["X-Id"] ?? "?"
            loop.schedule(in: .microseconds(Int.random(in: 0...3000))) { responder.respond(.text("n=\(id) len=0;")) }
        }
        let server = try HTTPServer(loop: loop, configuration: .init(host: "127.0.0.1", port: 0), router: router)
        defer { server.close() }

        var rng = SplitMix64(seed: 42)
        var clients: [(HTTPRawClient, TCPConnection, expected: String)] = []
        for _ in 0..<40 {
            var stream: [UInt8] = []
            var expected = ""
            for id in 0..<100 {
                let length = Int.random(in: 0...3000, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0:
                    stream += Array("GET /async HTTP/1.1\r\nX-Id: \(id)\r\n\r\n".utf8)
                    expected += "n=\(id) len=0;"
                case 1:
                    stream += Array("POST /sync HTTP/1.1\r\nX-Id: \(id)\r\nContent-Length: \(length)\r\n\r\n".utf8)
                    stream += [UInt8](repeating: UInt8(ascii: "b"), count: length)
                    expected += "n=\(id) len=\(length);"
                default:
                    stream += Array("POST /sync HTTP/1.1\r\nX-Id: \(id)\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
                    var left = length
                    while left > 0 {
                        let size = min(left, Int.random(in: 1...1000, using: &rng))
                        stream += Array("\(String(size, radix: 16))\r\n".utf8) + [UInt8](repeating: 99, count: size) + Array("\r\n".utf8)
                        left -= size
                    }
                    stream += Array("0\r\n\r\n".utf8)
                    expected += "n=\(id) len=\(length);"
                }
            }
            let client = HTTPRawClient()
            let connection = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: server.port, delegate: client)
            // Fragments leave on different loop turns, so the server sees arbitrary splits.
            var offset = 0
            var delay = 0
            while offset < stream.count {
                let piece = Array(stream[offset..<min(stream.count, offset + Int.random(in: 1...9000, using: &rng))])
                offset += piece.count
                delay += Int.random(in: 0...2, using: &rng)
                loop.schedule(in: .milliseconds(delay)) { connection.write(piece) }
            }
            clients.append((client, connection, expected))
        }
        func answers(_ client: HTTPRawClient) -> String {
            client.text.split(separator: "\r\n\r\n").map { part in part.prefix { $0 != "H" } }.joined()
        }
        let allDone = loop.run(timeout: .seconds(30)) {
            clients.allSatisfy { $0.0.responseCount >= 100 && $0.0.text.hasSuffix(";") && answers($0.0).count >= $0.expected.count }
        }
        XCTAssertTrue(allDone, "not every client got its 100 answers")
        for (client, connection, expected) in clients {
            XCTAssertEqual(answers(client), expected)
            XCTAssertFalse(client.closed)
            connection.close()
        }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { server.openConnections == 0 })
    }
}
