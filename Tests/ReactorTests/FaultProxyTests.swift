import Glibc
import TestSupport
import XCTest
@testable import Reactor

/// The fault proxy against real servers: it forwards faithfully, and each fault does
/// exactly what it promises, seen from the client and checked at the server directly.
/// Waits are bounded by deadlines; nothing asserts an upper bound on time that load could
/// break.
final class FaultProxyTests: XCTestCase {
    private var redis: RedisTestServer { RedisTestServer.shared }

    private func makeRedisProxy() throws -> FaultProxy {
        try FaultProxy(upstreamPort: redis.port)
    }

    private func key(_ name: String = #function) -> String {
        "fp:\(name.prefix { $0 != "(" }):\(UInt32.random(in: 0...UInt32.max))"
    }

    // MARK: forwarding

    func testForwardsBothWaysAndPassesACloseOn() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let client = try RawTestClient(port: proxy.port)
        let k = key()
        client.send(resp("SET", k, "v1") + resp("GET", k))
        XCTAssertNotNil(client.readUntil("+OK\r\n$2\r\nv1\r\n"))
        XCTAssertEqual(try redis.cli("GET", k), "v1")
        XCTAssertTrue(proxy.waitUntil { $0.connectionsOpen == 1 && $0.bytesToClient >= 13 }, "\(proxy.stats)")
        XCTAssertEqual(proxy.stats.connectionsAccepted, 1)
        XCTAssertEqual(proxy.stats.bytesToServer, (resp("SET", k, "v1") + resp("GET", k)).utf8.count)

        // QUIT: Redis answers and closes; the FIN comes through as a clean close.
        client.send(resp("QUIT"))
        let (data, end) = client.readToEnd()
        XCTAssertEqual(String(decoding: data, as: UTF8.self), "+OK\r\n")
        XCTAssertEqual(end, .closed)
        // Half-closed: the pair lives until the client closes its side too.
        XCTAssertEqual(proxy.stats.connectionsOpen, 1)
        shutdown(client.fd, Int32(SHUT_WR))
        XCTAssertTrue(proxy.waitUntil { $0.connectionsOpen == 0 }, "\(proxy.stats)")
    }

    func testLargeValuesCrossIntactInBothDirections() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let client = try RawTestClient(port: proxy.port)
        let k = key()
        // Several MiB: more than the proxy holds per lane, so backpressure is exercised too.
        let value = Self.bigValue(3 << 20)
        client.send(resp("SET", k, value) + resp("STRLEN", k) + resp("GET", k))
        let expected = Array("+OK\r\n:\(value.utf8.count)\r\n$\(value.utf8.count)\r\n\(value)\r\n".utf8)
        let received = client.readBytes(expected.count)
        XCTAssertTrue(received == expected, "reply differs: \(received?.count ?? -1) of \(expected.count) bytes")
    }

    /// A value of `count` printable bytes that is not all the same byte.
    private static func bigValue(_ count: Int) -> String {
        String(decoding: (0..<count).map { UInt8(97 + $0 % 26) }, as: UTF8.self)
    }

    func testManyClientsAtOnce() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let clients = try (0..<20).map { _ in try RawTestClient(port: proxy.port) }
        let k = key()
        for (i, client) in clients.enumerated() { client.send(resp("INCR", k) + resp("ECHO", "c\(i)")) }
        for (i, client) in clients.enumerated() { XCTAssertNotNil(client.readUntil("$\("c\(i)".utf8.count)\r\nc\(i)\r\n")) }
        XCTAssertEqual(try redis.cli("GET", k), "20")
        XCTAssertEqual(proxy.stats.connectionsOpen, 20)
    }

    // MARK: cut before reply

    func testCutBeforeReplyRunsTheCommandAndLosesItsReply() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let client = try RawTestClient(port: proxy.port)
        let k = key()
        client.send(resp("PING"))
        XCTAssertNotNil(client.readUntil("+PONG\r\n"))

        proxy.armCutBeforeReply(matching: "SET")
        XCTAssertEqual(proxy.stats.cutsArmed, 1)
        client.send(resp("SET", k, "ran"))
        let (data, end) = client.readToEnd()
        XCTAssertEqual(data, [], "the reply must not reach the client")
        XCTAssertEqual(end, .reset)
        // The cut happens only after the server answered, so the write is there already.
        XCTAssertEqual(try redis.cli("GET", k), "ran")
        XCTAssertTrue(proxy.waitUntil { $0.cutsFired == 1 && $0.connectionsOpen == 0 }, "\(proxy.stats)")
        XCTAssertEqual(proxy.stats.cutsArmed, 0)
        XCTAssertEqual(proxy.stats.bytesSwallowed, 5, "+OK\\r\\n")

        // Once per arming: the next SET goes through.
        let again = try RawTestClient(port: proxy.port)
        again.send(resp("SET", k, "second"))
        XCTAssertNotNil(again.readUntil("+OK\r\n"))
        XCTAssertEqual(try redis.cli("GET", k), "second")
        XCTAssertEqual(proxy.stats.cutsFired, 1)
    }

    func testCutPatternSplitAcrossTwoReadsStillMatches() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let client = try RawTestClient(port: proxy.port)
        let k = key()
        proxy.armCutBeforeReply(matching: "SET")
        let command = resp("SET", k, "split")
        let bytes = Array(command.utf8)
        let head = String(decoding: bytes[..<10], as: UTF8.self)  // "*3\r\n$3\r\nSE"
        client.send(head)
        // Wait until the first part is forwarded on its own, so the pattern really straddles.
        XCTAssertTrue(proxy.waitUntil { $0.bytesToServer == 10 }, "\(proxy.stats)")
        XCTAssertEqual(proxy.stats.cutsArmed, 1)
        client.send(String(decoding: bytes[10...], as: UTF8.self))
        XCTAssertEqual(client.readToEnd().end, .reset)
        XCTAssertEqual(try redis.cli("GET", k), "split")
        XCTAssertEqual(proxy.stats.cutsFired, 1)
    }

    func testCutLetsARequestSpreadOverManyReadsRunWhole() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let client = try RawTestClient(port: proxy.port)
        let k = key()
        proxy.armCutBeforeReply(matching: "SET")
        // 2 MiB: the pattern is in the first read, the rest follows in many more.
        let value = Self.bigValue(2 << 20)
        client.send(resp("SET", k, value))
        XCTAssertEqual(client.readToEnd(timeout: .seconds(30)).end, .reset)
        XCTAssertEqual(try redis.cli("STRLEN", k), "\(value.utf8.count)")
        XCTAssertEqual(proxy.stats.cutsFired, 1)
        XCTAssertEqual(proxy.stats.bytesToServer, resp("SET", k, value).utf8.count)
    }

    func testCutSwallowsThePipelinedAnswersThatShareTheReply() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let client = try RawTestClient(port: proxy.port)
        let k = key()
        proxy.armCutBeforeReply(matching: "INCR")
        // One write, three commands: all run, no answer arrives.
        client.send(resp("INCR", k) + resp("INCR", k) + resp("INCR", k))
        let (data, end) = client.readToEnd()
        XCTAssertEqual(data, [])
        XCTAssertEqual(end, .reset)
        XCTAssertEqual(try redis.cli("GET", k), "3")
        XCTAssertEqual(proxy.stats.cutsFired, 1)
    }

    func testCutBeforeNextReplyMatchesAnyRequest() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let client = try RawTestClient(port: proxy.port)
        let k = key()
        proxy.armCutBeforeNextReply()
        client.send(resp("RPUSH", k, "a"))
        XCTAssertEqual(client.readToEnd().end, .reset)
        XCTAssertEqual(try redis.cli("LLEN", k), "1")
        XCTAssertEqual(proxy.stats.cutsFired, 1)
        XCTAssertEqual(proxy.stats.cutsArmed, 0)
    }

    func testCutLeavesOtherConnectionsAndOtherCommandsAlone() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let bystander = try RawTestClient(port: proxy.port)
        let victim = try RawTestClient(port: proxy.port)
        proxy.armCutBeforeReply(matching: "SETNX", times: 2)
        bystander.send(resp("PING"))
        XCTAssertNotNil(bystander.readUntil("+PONG\r\n"))
        let k = key()
        victim.send(resp("SETNX", k, "1"))
        XCTAssertEqual(victim.readToEnd().end, .reset)
        XCTAssertTrue(proxy.waitUntil { $0.cutsFired == 1 })
        XCTAssertEqual(proxy.stats.cutsArmed, 1)
        bystander.send(resp("GET", k))
        XCTAssertNotNil(bystander.readUntil("$1\r\n1\r\n"))
        proxy.disarmCut()
        bystander.send(resp("SETNX", k, "2"))
        XCTAssertNotNil(bystander.readUntil(":0\r\n"))
    }

    func testCutWithTheProjectsRedisClientLosesTheReplyAndTheClientRecovers() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let (loop, client) = try RedisTestKit.connectedClient(url: "redis://\(proxy.address)")
        defer { client.close() }
        let k = key()
        proxy.armCutBeforeReply(matching: "SET")
        let result = redisWait(loop) { client.set(k, "claimed-by-me", px: 30_000, nx: true, get: true, completion: $0) }
        guard case .failure(.connectionLost)? = result else {
            return XCTFail("expected connectionLost, got \(String(describing: result))")
        }
        XCTAssertEqual(try redis.cli("GET", k), "claimed-by-me", "the command ran although its reply was lost")
        XCTAssertEqual(proxy.stats.cutsFired, 1)
        // The retry finds our own value: exactly the ambiguity issue 11 is about.
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { client.isUp }, "no reconnect: \(client.lastError ?? "")")
        let retry = redisWait(loop) { client.set(k, "claimed-by-me", px: 30_000, nx: true, get: true, completion: $0) }
        XCTAssertNotNil(retry.redisOK())
        XCTAssertEqual(client.connectCount, 2)
    }

    // MARK: reset, black hole, latency, refuse

    func testResetAllAbortsBothSides() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let client = try RawTestClient(port: proxy.port)
        let name = "fp-reset-\(UInt32.random(in: 0...UInt32.max))"
        client.send(resp("CLIENT", "SETNAME", name))
        XCTAssertNotNil(client.readUntil("+OK\r\n"))
        XCTAssertTrue(try redis.cli("CLIENT", "LIST").contains(name))

        proxy.resetAll()
        XCTAssertEqual(proxy.stats.connectionsReset, 1)
        XCTAssertEqual(proxy.stats.connectionsOpen, 0)
        XCTAssertEqual(client.readToEnd().end, .reset)
        // Redis dropped its side too.
        XCTAssertTrue(waitFor { (try? self.redis.cli("CLIENT", "LIST").contains(name)) == false }, "redis still lists \(name)")

        // New connections are served as before.
        let next = try RawTestClient(port: proxy.port)
        next.send(resp("PING"))
        XCTAssertNotNil(next.readUntil("+PONG\r\n"))
    }

    func testBlackholeHoldsBytesWithoutClosingAndDeliversThemWhenHealed() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let client = try RawTestClient(port: proxy.port)
        client.send(resp("PING"))
        XCTAssertNotNil(client.readUntil("+PONG\r\n"))
        let k = key()

        proxy.blackhole(true)
        XCTAssertTrue(client.send(resp("SET", k, "late")), "writes into a black hole succeed")
        XCTAssertEqual(client.read(timeout: .milliseconds(500)), .silent)
        XCTAssertEqual(try redis.cli("EXISTS", k), "0", "nothing reached the server")
        XCTAssertEqual(proxy.stats.connectionsOpen, 1)

        proxy.blackhole(false)
        XCTAssertNotNil(client.readUntil("+OK\r\n"), "held bytes are delivered, in order")
        XCTAssertEqual(try redis.cli("GET", k), "late")
    }

    func testBlackholeOfRepliesOnlyLetsCommandsRun() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let client = try RawTestClient(port: proxy.port)
        let k = key()
        proxy.blackhole(true, directions: [.toClient])
        client.send(resp("SET", k, "ran"))
        XCTAssertTrue(waitFor { (try? self.redis.cli("GET", k)) == "ran" }, "the command reached the server")
        XCTAssertEqual(client.read(timeout: .milliseconds(300)), .silent)
        proxy.heal()
        XCTAssertNotNil(client.readUntil("+OK\r\n"))
    }

    func testBlackholeHoldsACloseToo() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let client = try RawTestClient(port: proxy.port)
        client.send(resp("PING"))
        XCTAssertNotNil(client.readUntil("+PONG\r\n"))
        proxy.blackhole(true)
        // QUIT never arrives, so Redis never closes: the connection stays half-open.
        client.send(resp("QUIT"))
        XCTAssertEqual(client.read(timeout: .milliseconds(300)), .silent)
        XCTAssertEqual(proxy.stats.connectionsOpen, 1)
        proxy.blackhole(false)
        let (data, end) = client.readToEnd()
        XCTAssertEqual(String(decoding: data, as: UTF8.self), "+OK\r\n")
        XCTAssertEqual(end, .closed)
    }

    func testLatencyDelaysEachChunk() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let client = try RawTestClient(port: proxy.port)
        proxy.latency(.milliseconds(150), directions: [.toServer])
        proxy.latency(.milliseconds(150), directions: [.toClient])
        let start = ContinuousClock.now
        client.send(resp("PING"))
        XCTAssertNotNil(client.readUntil("+PONG\r\n"))
        // A lower bound only: the two delays cannot be skipped; load can only add to them.
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - start, .milliseconds(300))

        proxy.latency(.zero)
        client.send(resp("PING"))
        XCTAssertNotNil(client.readUntil("+PONG\r\n"))
    }

    func testLatencyKeepsOrderAcrossManyChunks() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let client = try RawTestClient(port: proxy.port)
        proxy.latency(.milliseconds(20))
        var expected = ""
        for i in 0..<500 {
            client.send(resp("ECHO", "m\(i)"))
            expected += "$\("m\(i)".utf8.count)\r\nm\(i)\r\n"
        }
        let received = client.readBytes(expected.utf8.count)
        XCTAssertEqual(received.map { String(decoding: $0, as: UTF8.self) }, expected)
    }

    func testRefuseResetsNewClientsOnlyAndCanBeLifted() throws {
        let proxy = try makeRedisProxy()
        defer { proxy.stop() }
        let old = try RawTestClient(port: proxy.port)
        old.send(resp("PING"))
        XCTAssertNotNil(old.readUntil("+PONG\r\n"))

        proxy.refuse(true)
        let refused = try RawTestClient(port: proxy.port)
        XCTAssertEqual(refused.readToEnd().end, .reset)
        XCTAssertEqual(proxy.stats.connectionsRefused, 1)
        old.send(resp("PING"))
        XCTAssertNotNil(old.readUntil("+PONG\r\n"), "open connections are untouched")

        proxy.refuse(false)
        let fresh = try RawTestClient(port: proxy.port)
        fresh.send(resp("PING"))
        XCTAssertNotNil(fresh.readUntil("+PONG\r\n"))
    }

    func testUpstreamDownResetsTheClient() throws {
        let proxy = try FaultProxy(upstream: "127.0.0.1:\(TestServers.freePort())")
        defer { proxy.stop() }
        let client = try RawTestClient(port: proxy.port)
        XCTAssertEqual(client.readToEnd().end, .reset)
        XCTAssertEqual(proxy.stats.upstreamConnectFailures, 1)
    }

    func testStopClosesConnectionsAndTheListener() throws {
        let proxy = try makeRedisProxy()
        let client = try RawTestClient(port: proxy.port)
        client.send(resp("PING"))
        XCTAssertNotNil(client.readUntil("+PONG\r\n"))
        proxy.stop()
        XCTAssertEqual(client.readToEnd().end, .closed)
        XCTAssertFalse(TestServers.accepts(proxy.port))
        proxy.resetAll()  // after stop: returns at once, does nothing
    }

    // MARK: PostgreSQL

    func testPostgresThroughTheProxyAndAnInsertWhoseReplyIsLost() throws {
        let postgres = PostgresTestServer.shared
        let proxy = try FaultProxy(upstreamPort: postgres.port)
        defer { proxy.stop() }
        let table = "fault_proxy_cut"
        _ = try postgres.psql("DROP TABLE IF EXISTS \(table); CREATE TABLE \(table) (id int)")
        XCTAssertEqual(try psql(port: proxy.port, "SELECT 40 + 2").1, "42")

        proxy.armCutBeforeReply(matching: "INSERT INTO \(table)")
        let (status, output) = try psql(port: proxy.port, "INSERT INTO \(table) VALUES (7)")
        XCTAssertNotEqual(status, 0, "psql must see the connection die: \(output)")
        XCTAssertEqual(proxy.stats.cutsFired, 1)
        // Autocommit: the server committed before it answered.
        XCTAssertEqual(try postgres.psql("SELECT count(*) FROM \(table) WHERE id = 7"), "1")
        XCTAssertEqual(try psql(port: proxy.port, "SELECT count(*) FROM \(table)").1, "1")
    }

    // MARK: helpers

    private func psql(port: Int, _ sql: String) throws -> (Int32, String) {
        let binary = TestServers.findExecutable("psql", in: [PostgresTestServer.shared.binDir, "/usr/bin"]) ?? "/usr/bin/psql"
        let (status, out) = try TestServers.run(binary, ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-d", "postgres",
                                                         "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                                                environment: ["PGCONNECT_TIMEOUT": "10", "PGSSLMODE": "disable"])
        return (status, out.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    private func waitFor(timeout: Duration = .seconds(10), _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }
}
