import Foundation
import Reactor
import XCTest

/// The header deadline and the keep-alive idle limit, with short settings on one loop:
/// the deadline counts from a head's first byte and bytes trickling in do not move it.
final class HTTPDeadlineTests: XCTestCase {
    private var loop: EventLoop!
    private var server: HTTPServer!

    override func setUpWithError() throws {
        loop = try EventLoop()
        let router = HTTPRouter()
        let loop = self.loop!
        router.get("/x") { _, responder in responder.respond(.text("x")) }
        router.post("/echo") { request, responder in
            responder.respond(HTTPResponse(status: 200, contentType: "text/plain", body: request.body))
        }
        router.get("/slow") { _, responder in
            loop.schedule(in: .milliseconds(1500)) { responder.respond(.text("slow")) }
        }
        let configuration = HTTPServer.Configuration(host: "127.0.0.1", port: 0, idleTimeout: .seconds(30),
                                                     headerTimeout: .milliseconds(800))
        server = try HTTPServer(loop: loop, configuration: configuration, router: router)
    }

    override func tearDown() {
        server?.close()
        loop?.run(timeout: .milliseconds(50)) { false }
        server = nil
        loop = nil
    }

    private func connect() throws -> (HTTPRawClient, TCPConnection) {
        let client = HTTPRawClient()
        let connection = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: server.port, delegate: client)
        return (client, connection)
    }

    /// Sends `text` one byte per `interval` while running the loop; stops early once the
    /// server closed.
    private func trickle(_ text: String, every interval: Duration, to connection: TCPConnection, client: HTTPRawClient) {
        for byte in Array(text.utf8) {
            if client.closed { return }
            connection.write([byte])
            _ = loop.run(timeout: interval) { client.closed }
        }
    }

    func testAHeadTrickledByteByByteGets408AtTheDeadlineNotLater() throws {
        let (client, connection) = try connect()
        let started = Date()
        // 40 bytes at 100 ms would take 4 s; the deadline is 0.8 s from the first byte.
        trickle("GET /x HTTP/1.1\r\nHost: a\r\nX-Slow: yes\r\n\r\n", every: .milliseconds(100),
                to: connection, client: client)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.closed })
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertGreaterThan(elapsed, 0.7)
        XCTAssertLessThan(elapsed, 3.5, "the trickle moved the deadline")
        XCTAssertTrue(client.text.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), client.text)
        XCTAssertTrue(client.text.contains("Connection: close\r\n"), client.text)
        XCTAssertTrue(client.text.contains(#"{"error": "request headers not received within 0.8 s"}"#), client.text)
    }

    func testTimeBetweenKeepAliveRequestsDoesNotCountAgainstTheHead() throws {
        let (client, connection) = try connect()
        connection.write(Array("GET /x HTTP/1.1\r\n\r\n".utf8))
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.responseCount == 1 })
        // Idle for longer than the header deadline, then a whole request: served.
        _ = loop.run(timeout: .milliseconds(1200)) { client.closed }
        XCTAssertFalse(client.closed)
        connection.write(Array("GET /x HTTP/1.1\r\n\r\n".utf8))
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.responseCount == 2 })
        XCTAssertFalse(client.text.contains("408"), client.text)
        connection.close()
    }

    func testAHeadCompletedInTimeStopsTheDeadlineForItsBody() throws {
        let (client, connection) = try connect()
        connection.write(Array("POST /echo HTTP/1.1\r\nContent-Length: 6\r\n\r\n".utf8))
        // The body takes 1.2 s, longer than the header deadline: only the head was timed.
        trickle("abcdef", every: .milliseconds(200), to: connection, client: client)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.text.hasSuffix("abcdef") })
        XCTAssertTrue(client.text.hasPrefix("HTTP/1.1 200 OK\r\n"), client.text)
        XCTAssertFalse(client.closed)
        connection.close()
    }

    func testA408BehindAPipelinedRequestLeavesAfterItsAnswer() throws {
        let (client, connection) = try connect()
        // /slow answers after 1.5 s; the partial head behind it times out meanwhile.
        connection.write(Array("GET /slow HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\nHo".utf8))
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.closed })
        let text = client.text
        guard let slow = text.range(of: "slow"), let timeout = text.range(of: "HTTP/1.1 408") else {
            return XCTFail("expected the slow answer, then 408: \(text)")
        }
        XCTAssertLessThan(slow.lowerBound, timeout.lowerBound, text)
    }

    func testAConnectionThatSendsNothingIsClosedByTheIdleTimeoutWithoutAnAnswer() throws {
        let router = HTTPRouter()
        let quiet = try HTTPServer(loop: loop, configuration: .init(host: "127.0.0.1", port: 0, idleTimeout: .milliseconds(300),
                                                                    headerTimeout: .seconds(10)), router: router)
        defer { quiet.close() }
        let client = HTTPRawClient()
        _ = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: quiet.port, delegate: client)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.closed })
        XCTAssertEqual(client.received, [])
    }
}
