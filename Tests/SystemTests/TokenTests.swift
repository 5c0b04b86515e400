import Foundation
import Glibc
import Reactor
import TestSupport
import XCTest

/// Who may publish, subscribe and read: bearer tokens, compared in constant time, never
/// logged; probes stay open; unset means open, said once at start-up.
final class TokenTests: XCTestCase {
    private let producerSecret = "pt-\(UInt64.random(in: 1...UInt64.max))"
    private let apiSecret = "at-\(UInt64.random(in: 1...UInt64.max))"

    func testThePublishAndSubscribeRoutesNeedTheProducersTokenAndProbesDoNot() throws {
        let system = try SystemHarness()
        try system.startProducer(["AUTH_TOKEN": producerSecret, "LOG_LEVEL": "info"])
        let body = "{\"event_id\":\"tk-1\"}"
        XCTAssertEqual(try httpPost(port: system.httpPort, path: "/publish", body: body).status, 401)
        XCTAssertEqual(try httpRequest(port: system.httpPort, method: "POST", path: "/publish", body: body,
                                       headers: [("Authorization", "Bearer wrong")]).status, 401)
        XCTAssertEqual(try httpRequest(port: system.httpPort, method: "POST", path: "/publish", body: body,
                                       headers: [("Authorization", "Bearer \(producerSecret)x")]).status, 401)
        let accepted = try httpRequest(port: system.httpPort, method: "POST", path: "/publish", body: body,
                                       headers: [("Authorization", "Bearer \(producerSecret)")])
        XCTAssertEqual(accepted.status, 202, accepted.body)
        XCTAssertEqual(try httpGet(port: system.httpPort, path: "/health").status, 200)
        XCTAssertEqual(try httpGet(port: system.httpPort, path: "/metrics").status, 200)
        XCTAssertEqual(try handshakeStatus(port: system.wsPort, authorization: nil), 401)
        XCTAssertEqual(try handshakeStatus(port: system.wsPort, authorization: "Bearer nope"), 401)
        XCTAssertEqual(try handshakeStatus(port: system.wsPort, authorization: "Bearer \(producerSecret)"), 101)
        // A listener with the token receives and stores; one without never gets in.
        try system.startListener("with-token", ["PRODUCER_TOKEN": producerSecret])
        XCTAssertTrue(waitUntil(20) { (try? system.rowCount(prefix: "tk-")) == 1 })
        let apiPort = TestServers.freePort()
        let without = try ServiceProcess(binary: productPath("listener"), log: system.dir + "/without-token.log",
                                         environment: ["INSTANCE_ID": "without-token", "PORT": "\(apiPort)", "HOST": "127.0.0.1",
                                                       "PRODUCER_URL": "ws://127.0.0.1:\(system.wsPort)/",
                                                       "REDIS_URL": system.redis.url, "DATABASE_URL": system.postgres.url],
                                         port: apiPort)
        defer { without.kill() }
        XCTAssertTrue(waitUntil(20) {
            guard let (status, body) = try? httpGet(port: apiPort, path: "/health") else { return false }
            return status == 503 && body.contains("401")
        }, without.logTail())
        XCTAssertFalse(system.producer!.logText.contains(producerSecret))
        XCTAssertFalse(system.listeners["with-token"]!.logText.contains(producerSecret))
    }

    func testTheListenersAPINeedsItsTokenAndProbesDoNot() throws {
        let system = try SystemHarness()
        try system.startProducer()
        let listener = try system.startListener("guarded", ["API_TOKEN": apiSecret, "LOG_LEVEL": "info"])
        for path in ["/api/events", "/api/events/x", "/api/dead-letters"] {
            XCTAssertEqual(try httpGet(port: listener.port, path: path).status, 401, path)
            XCTAssertEqual(try httpRequest(port: listener.port, method: "GET", path: path,
                                           headers: [("Authorization", "Bearer not-it")]).status, 401, path)
            let allowed = try httpRequest(port: listener.port, method: "GET", path: path,
                                          headers: [("Authorization", "bearer \(apiSecret)")])
            XCTAssertEqual(allowed.status, path == "/api/events/x" ? 404 : 200, path)
        }
        XCTAssertEqual(try httpGet(port: listener.port, path: "/health").status, 200)
        XCTAssertEqual(try httpGet(port: listener.port, path: "/metrics").status, 200)
        XCTAssertFalse(listener.logText.contains(apiSecret))
        XCTAssertFalse(listener.logText.contains("API_TOKEN is not set"))
    }

    func testUnsetTokensAreSaidOnceAtStartUp() throws {
        let system = try SystemHarness()
        try system.startProducer(["LOG_LEVEL": "info"])
        let listener = try system.startListener("open", ["LOG_LEVEL": "info"])
        XCTAssertTrue(waitUntil(5) { system.producer!.logText.contains("AUTH_TOKEN is not set") })
        XCTAssertEqual(listener.logText.components(separatedBy: "API_TOKEN is not set").count - 1, 1)
    }

    func testPasswordsInURLsAreNeverPrinted() throws {
        // One URL with a port out of range, and a cluster's seed list with a bad entry.
        for url in ["redis://:hunter2secret@127.0.0.1:99999", "redis://:hunter2secret@127.0.0.1:7000,127.0.0.1:nope"] {
            let (status, output) = try TestServers.run(try productPath("listener"), [], environment: ["REDIS_URL": url])
            XCTAssertNotEqual(status, 0, url)
            XCTAssertTrue(output.contains("REDIS_URL"), output)
            XCTAssertFalse(output.contains("hunter2secret"), output)
        }
        let (dbStatus, dbOutput) = try TestServers.run(try productPath("listener"), [],
                                                       environment: ["DATABASE_URL": "postgres://u:hunter3secret@[bad/x"])
        XCTAssertNotEqual(dbStatus, 0)
        XCTAssertFalse(dbOutput.contains("hunter3secret"), dbOutput)
    }

    /// The status line of a WebSocket upgrade to the producer.
    private func handshakeStatus(port: Int, authorization: String?) throws -> Int {
        let fd = try rawConnect(port: port)
        defer { close(fd) }
        var request = "GET /?from_seq=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        if let authorization { request += "Authorization: \(authorization)\r\n" }
        request += "\r\n"
        _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 12, Int32(MSG_WAITALL)) }
        guard n >= 12 else { return -1 }
        return Int(String(decoding: buffer[9..<12], as: UTF8.self)) ?? -1
    }
}
