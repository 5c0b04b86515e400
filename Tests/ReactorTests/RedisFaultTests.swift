import Glibc
import TestSupport
import XCTest
@testable import Reactor

/// Faults and bad input: every command completes (error or success), nothing hangs past its
/// timeout, the client comes back by itself, and nothing crashes.
final class RedisFaultTests: XCTestCase {
    func testServerKilledMidPipelineFailsPendingThenReconnectsAndWorks() throws {
        let server = try RedisTestServer()
        defer { server.stop() }
        let loop = try EventLoop()
        let timeout = Duration.seconds(2)
        let client = try RedisClient(loop: loop, url: server.url,
                                     configuration: RedisTestKit.quickConfiguration(whileDown: .queue(limit: 10), commandTimeout: timeout))
        var states: [RedisClient.State] = []
        client.onStateChange = { state, _ in states.append(state) }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.isUp })

        let n = 200_000
        var succeeded = 0
        var failed = 0
        var otherErrors: [RedisError] = []
        for i in 0..<n {
            client.set("k\(i)", "v", px: 30_000, nx: true, get: true) { result in
                switch result {
                case .success: succeeded += 1
                case .failure(.connectionLost): failed += 1
                case .failure(let error): failed += 1; if otherErrors.count < 3 { otherErrors.append(error) }
                }
            }
        }
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { succeeded > 0 })
        server.stop()
        let killedAt = monotonicNanos()
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { succeeded + failed == n }, "\(succeeded + failed) of \(n) completed")
        let waitedMs = (monotonicNanos() - killedAt) / 1_000_000
        XCTAssertLessThan(waitedMs, 2_000 + 500, "pending commands outlived their timeout")
        XCTAssertGreaterThan(failed, 0, "the kill came after the whole pipeline")
        XCTAssertEqual(otherErrors, [])
        XCTAssertTrue(loop.run(timeout: .seconds(2)) { client.state != .up })
        XCTAssertNotNil(client.lastError)

        // Issued while down: queued (policy .queue(limit: 10)) and sent after the reconnect.
        var queued: Result<RedisSetResult, RedisError>?
        client.set("after-restart", "yes") { queued = $0 }
        XCTAssertEqual(client.queuedCount, 1)

        try server.start()
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.isUp }, "no reconnect: \(client.lastError ?? "")")
        XCTAssertTrue(loop.run(timeout: .seconds(2)) { queued != nil })
        XCTAssertEqual(queued.redisOK(), .written)
        XCTAssertEqual(redisWait(loop) { client.get("after-restart", completion: $0) }.redisOK(), Array("yes".utf8))
        XCTAssertEqual(client.connectCount, 2)
        XCTAssertTrue(loop.run(timeout: .seconds(1)) { states == [.up, .down, .up] }, "states \(states)")
        client.close()
    }

    func testQueueWhileDownIsBoundedAndQueuedCommandsTimeOut() throws {
        let loop = try EventLoop()
        let port = TestServers.freePort()
        let client = RedisClient(loop: loop, url: RedisURL(host: "127.0.0.1", port: port),
                                 configuration: RedisTestKit.quickConfiguration(whileDown: .queue(limit: 3),
                                                                               commandTimeout: .milliseconds(300)))
        var results: [Int: Result<[UInt8]?, RedisError>] = [:]
        let start = monotonicNanos()
        for i in 0..<5 { client.get("k") { results[i] = $0 } }
        XCTAssertTrue(loop.run(timeout: .seconds(3)) { results.count == 5 })
        XCTAssertLessThan((monotonicNanos() - start) / 1_000_000, 1_500)
        for i in 0..<3 { XCTAssertEqual(results[i].redisError(), .timedOut(milliseconds: 300)) }
        for i in 3..<5 { XCTAssertEqual(results[i].redisError(), .queueFull(limit: 3)) }
        client.close()
    }

    func testFailFastWhileDownFailsAtOnceWithTheConnectError() throws {
        let loop = try EventLoop()
        let port = TestServers.freePort()
        let client = try RedisClient(loop: loop, url: "redis://127.0.0.1:\(port)",
                                     configuration: RedisTestKit.quickConfiguration(whileDown: .failFast))
        XCTAssertTrue(loop.run(timeout: .seconds(2)) { client.state == .down })
        let error = redisWait(loop, timeout: .milliseconds(200)) { client.get("k", completion: $0) }.redisError()
        guard case .notConnected(let reason)? = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertTrue(reason.contains("Connection refused"), reason)
        XCTAssertTrue(client.lastError?.contains("Connection refused") == true, client.lastError ?? "nil")
        client.close()
    }

    func testUnreachableHostTimesOutTheConnectWithAClearError() throws {
        let loop = try EventLoop()
        // TEST-NET-1 (RFC 5737): never routed, so the SYN goes nowhere or fails at once.
        let client = try RedisClient(loop: loop, url: "redis://192.0.2.1:6379",
                                     configuration: RedisTestKit.quickConfiguration(whileDown: .failFast,
                                                                                   connectTimeout: .milliseconds(300)))
        XCTAssertTrue(loop.run(timeout: .seconds(3)) { client.lastError != nil })
        let message = client.lastError ?? ""
        // Depending on the network the SYN is dropped (our timer), rejected or unroutable.
        XCTAssertTrue(message.contains("192.0.2.1:6379") && (message.contains("timed out") || message.contains("unreachable")
                      || message.contains("refused")), message)
        XCTAssertNotEqual(client.state, .up)
        client.close()
    }

    func testSilentServerHitsTheConnectTimeout() throws {
        // Accepts TCP but never answers the handshake: only our timer can end the wait.
        let loop = try EventLoop()
        let silent = try TCPServer(loop: loop, host: "127.0.0.1", port: 0) { connection in
            connection.delegate = JunkServer(answer: "")
        }
        defer { silent.close() }
        let start = monotonicNanos()
        let client = try RedisClient(loop: loop, url: "redis://127.0.0.1:\(silent.port)",
                                     configuration: RedisTestKit.quickConfiguration(whileDown: .failFast,
                                                                                   connectTimeout: .milliseconds(300)))
        XCTAssertTrue(loop.run(timeout: .seconds(3)) { client.lastError != nil })
        let elapsed = (monotonicNanos() - start) / 1_000_000
        XCTAssertTrue((250...1_500).contains(elapsed), "gave up after \(elapsed) ms")
        XCTAssertTrue(client.lastError!.contains("timed out after 300 ms"), client.lastError!)
        XCTAssertEqual(client.state == .down || client.state == .connecting, true)
        client.close()
    }

    func testUnresolvableHostIsAClearError() throws {
        let loop = try EventLoop()
        let client = try RedisClient(loop: loop, url: "redis://no-such-host.invalid:6379",
                                     configuration: RedisTestKit.quickConfiguration(whileDown: .failFast))
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.lastError != nil })
        XCTAssertTrue(client.lastError?.contains("resolve no-such-host.invalid") == true, client.lastError ?? "nil")
        client.close()
    }

    func testCommandTimeoutResetsTheConnectionAndTheClientRecovers() throws {
        let (loop, client) = try RedisTestKit.connectedClient(
            configuration: RedisTestKit.quickConfiguration(commandTimeout: .milliseconds(300)))
        // BLPOP parks our connection on the server for 2 s: the GET behind it cannot be answered.
        var blocked: Result<RedisReply, RedisError>?
        var behind: Result<[UInt8]?, RedisError>?
        let start = monotonicNanos()
        client.command("BLPOP", RedisTestKit.prefix() + "empty", "2") { blocked = $0 }
        client.get("k") { behind = $0 }
        XCTAssertTrue(loop.run(timeout: .seconds(2)) { blocked != nil && behind != nil })
        let elapsed = (monotonicNanos() - start) / 1_000_000
        XCTAssertTrue((250...1_000).contains(elapsed), "timed out after \(elapsed) ms")
        XCTAssertEqual(blocked.redisError(), .timedOut(milliseconds: 300))
        XCTAssertEqual(behind.redisError(), .timedOut(milliseconds: 300))
        XCTAssertTrue(loop.run(timeout: .seconds(3)) { client.isUp && client.connectCount == 2 })
        XCTAssertEqual(redisWait(loop) { client.command("PING", completion: $0) }.redisOK()?.string, "PONG")
        client.close()
    }

    func testWrongPasswordMissingPasswordAndRightPassword() throws {
        let server = try RedisTestServer(extraArguments: ["--requirepass", "s3cret"])
        defer { server.stop() }
        let loop = try EventLoop()
        let config = RedisTestKit.quickConfiguration(whileDown: .failFast)

        let wrong = try RedisClient(loop: loop, url: "redis://:nope@127.0.0.1:\(server.port)", configuration: config)
        let missing = try RedisClient(loop: loop, url: server.url, configuration: config)
        XCTAssertTrue(loop.run(timeout: .seconds(3)) { wrong.lastError != nil && missing.lastError != nil })
        XCTAssertTrue(wrong.lastError!.contains("AUTH failed") && wrong.lastError!.contains("WRONGPASS"), wrong.lastError!)
        XCTAssertTrue(missing.lastError!.contains("NOAUTH"), missing.lastError!)
        XCTAssertNotEqual(wrong.state, .up)
        XCTAssertNotNil(redisWait(loop) { wrong.get("k", completion: $0) }.redisError())
        wrong.close()
        missing.close()

        for url in ["redis://:s3cret@127.0.0.1:\(server.port)", "redis://default:s3cret@127.0.0.1:\(server.port)/2"] {
            let right = try RedisClient(loop: loop, url: url, configuration: config)
            XCTAssertTrue(loop.run(timeout: .seconds(3)) { right.isUp }, "\(url): \(right.lastError ?? "")")
            XCTAssertEqual(redisWait(loop) { right.set("pw-key", "ok", completion: $0) }.redisOK(), .written)
            right.close()
        }
        XCTAssertEqual(try server.cli("-a", "s3cret", "--no-auth-warning", "-n", "2", "GET", "pw-key"), "ok")
    }

    func testBadURLsAreRefusedWithTheReason() throws {
        let loop = try EventLoop()
        let cases: [(String, String)] = [
            ("http://127.0.0.1:6379", "must start with redis://"),
            ("rediss://127.0.0.1:6379", "TLS"),
            ("redis://", "missing host"),
            ("redis://127.0.0.1:0", "port"),
            ("redis://127.0.0.1:99999", "port"),
            ("redis://127.0.0.1:abc", "port"),
            ("redis://127.0.0.1:6379/x", "database"),
            ("redis://127.0.0.1:6379/-1", "database"),
            ("redis://127.0.0.1:6379?timeout=1", "query"),
            ("redis://ho st:6379", "invalid character"),
            ("redis://:%zz@127.0.0.1", "percent-escape"),
        ]
        for (text, reason) in cases {
            do {
                _ = try RedisClient(loop: loop, url: text)
                XCTFail("\(text) accepted")
            } catch {
                XCTAssertTrue(error.reason.contains(reason), "\(text): \(error)")
                XCTAssertTrue(error.description.hasPrefix("bad Redis URL"), error.description)
            }
        }
        // The password never shows up in the error.
        do {
            _ = try RedisURL(parsing: "redis://user:hunter2@host:0")
            XCTFail("accepted")
        } catch {
            XCTAssertFalse(error.description.contains("hunter2"), error.description)
        }
    }

    func testGoodURLsParseEveryPart() throws {
        XCTAssertEqual(try RedisURL(parsing: "redis://127.0.0.1:6380"), RedisURL(host: "127.0.0.1", port: 6380))
        XCTAssertEqual(try RedisURL(parsing: "redis://localhost"), RedisURL(host: "localhost", port: 6379))
        XCTAssertEqual(try RedisURL(parsing: "REDIS://:p%40ss@h:1/3"), RedisURL(host: "h", port: 1, password: "p@ss", database: 3))
        XCTAssertEqual(try RedisURL(parsing: "redis://u:p@[::1]:7000/"), RedisURL(host: "::1", port: 7000, username: "u", password: "p"))
        XCTAssertEqual(try RedisURL(parsing: "redis://u:p@h:1").description, "redis://u:***@h:1")
    }

    func testServerAnsweringGarbageIsAProtocolErrorNotACrash() throws {
        let loop = try EventLoop()
        let junk = try TCPServer(loop: loop, host: "127.0.0.1", port: 0) { connection in
            connection.delegate = JunkServer(answer: "HTTP/1.1 400 Bad Request\r\n\r\n")
        }
        defer { junk.close() }
        let client = try RedisClient(loop: loop, url: "redis://127.0.0.1:\(junk.port)",
                                     configuration: RedisTestKit.quickConfiguration(whileDown: .failFast))
        XCTAssertTrue(loop.run(timeout: .seconds(3)) { client.lastError != nil })
        XCTAssertTrue(client.lastError!.contains("Protocol error"), client.lastError!)
        XCTAssertNotEqual(client.state, .up)
        XCTAssertNotNil(redisWait(loop) { client.get("k", completion: $0) }.redisError())
        client.close()
    }

    func testServerSendingMoreRepliesThanCommandsIsRejectedNotACrash() throws {
        // hiredis 0.14 asserts on a reply without a callback; the client must stop it first.
        let loop = try EventLoop()
        let junk = try TCPServer(loop: loop, host: "127.0.0.1", port: 0) { connection in
            connection.delegate = JunkServer(answer: String(repeating: "+OK\r\n", count: 50))
        }
        defer { junk.close() }
        let client = try RedisClient(loop: loop, url: "redis://127.0.0.1:\(junk.port)",
                                     configuration: RedisTestKit.quickConfiguration(whileDown: .failFast))
        XCTAssertTrue(loop.run(timeout: .seconds(3)) { client.lastError != nil })
        XCTAssertTrue(client.lastError!.contains("PING failed"), client.lastError!)
        loop.run(timeout: .milliseconds(300)) { false }  // the 48 extra replies arrive: no abort
        XCTAssertNotEqual(client.state, .up)
        client.close()
    }

    func testUnsolicitedDataOnAnIdleConnectionIsRejectedNotACrash() throws {
        // A fake that passes the handshake, then pushes a reply nobody asked for.
        let loop = try EventLoop()
        let handshake = "+PONG\r\n"
        let fake = try TCPServer(loop: loop, host: "127.0.0.1", port: 0) { connection in
            connection.delegate = JunkServer(answer: handshake, later: "+SURPRISE\r\n")
        }
        defer { fake.close() }
        let client = try RedisClient(loop: loop, url: "redis://127.0.0.1:\(fake.port)",
                                     configuration: RedisTestKit.quickConfiguration(whileDown: .failFast))
        var states: [RedisClient.State] = []
        client.onStateChange = { state, _ in states.append(state) }
        XCTAssertTrue(loop.run(timeout: .seconds(3)) { states.contains(.down) }, "states \(states)")
        XCTAssertEqual(states.first, .up)
        XCTAssertTrue(client.lastError!.contains("unsolicited"), client.lastError!)
        client.close()
    }
}

/// A TCP peer that is not Redis: answers the first bytes it gets with `answer`, and sends
/// `later` 100 ms after that.
private final class JunkServer: TCPConnectionDelegate {
    let answer: String
    let later: String?
    var answered = false

    init(answer: String, later: String? = nil) {
        self.answer = answer
        self.later = later
    }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        if !answered {
            answered = true
            connection.write(answer)
            if let later {
                connection.loop.schedule(in: .milliseconds(100)) { [weak connection] in connection?.write(later) }
            }
        }
        return bytes.count
    }

    func connectionDidClose(_ connection: TCPConnection, error: SocketError?) {}
}
