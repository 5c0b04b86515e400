import TestSupport
import XCTest
@testable import Reactor

/// Every typed operation against the real server, checked both through our client and
/// through redis-cli where the server's own view matters (TTLs, values).
final class RedisCommandTests: XCTestCase {
    func testSetAndGetRoundTripBinaryValues() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        let key = RedisTestKit.prefix() + "bin"
        let value: [UInt8] = [0, 13, 10, 255, 36, 42, 0x7F]
        XCTAssertEqual(redisWait(loop) { client.set(key, value, completion: $0) }.redisOK(), .written)
        XCTAssertEqual(redisWait(loop) { client.get(key, completion: $0) }.redisOK(), value)
        client.close()
    }

    func testGetOfMissingKeyIsNil() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        let result = redisWait(loop) { client.get(RedisTestKit.prefix() + "missing", completion: $0) }
        XCTAssertEqual(result.redisOK(), .some(nil))
        client.close()
    }

    func testSetNXGetClaimsAFreeKeyAndReportsTheHolderOtherwise() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        let key = RedisTestKit.prefix() + "claim"
        XCTAssertEqual(redisWait(loop) { client.set(key, "owner-a", px: 30_000, nx: true, get: true, completion: $0) }.redisOK(),
                       .written)
        XCTAssertEqual(redisWait(loop) { client.set(key, "owner-b", px: 30_000, nx: true, get: true, completion: $0) }.redisOK(),
                       .taken(Array("owner-a".utf8)))
        // NX without GET: taken, holder unknown; the value is untouched either way.
        XCTAssertEqual(redisWait(loop) { client.set(key, "owner-c", px: 30_000, nx: true, completion: $0) }.redisOK(), .taken(nil))
        XCTAssertEqual(try RedisTestServer.shared.cli("GET", key), "owner-a")
        client.close()
    }

    func testSetWithPXAppliesTheTTL() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        let key = RedisTestKit.prefix() + "ttl"
        XCTAssertEqual(redisWait(loop) { client.set(key, "v", px: 20_000, nx: true, get: true, completion: $0) }.redisOK(), .written)
        let ttl = try XCTUnwrap(redisWait(loop) { client.pttl(key, completion: $0) }.redisOK())
        XCTAssertTrue((18_000...20_000).contains(ttl), "PTTL \(ttl)")
        let serverTTL = try XCTUnwrap(Int(try RedisTestServer.shared.cli("PTTL", key)))
        XCTAssertTrue((18_000...20_000).contains(serverTTL), "server PTTL \(serverTTL)")
        client.close()
    }

    func testPTTLReportsMissingAndPersistentKeys() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        let key = RedisTestKit.prefix() + "p"
        XCTAssertEqual(redisWait(loop) { client.pttl(key, completion: $0) }.redisOK(), -2)
        _ = redisWait(loop) { client.set(key, "v", completion: $0) }
        XCTAssertEqual(redisWait(loop) { client.pttl(key, completion: $0) }.redisOK(), -1)
        client.close()
    }

    func testPExpireSetsTheTTLOnlyOnExistingKeys() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        let key = RedisTestKit.prefix() + "e"
        XCTAssertEqual(redisWait(loop) { client.pexpire(key, milliseconds: 5000, completion: $0) }.redisOK(), false)
        _ = redisWait(loop) { client.set(key, "v", completion: $0) }
        XCTAssertEqual(redisWait(loop) { client.pexpire(key, milliseconds: 5000, completion: $0) }.redisOK(), true)
        let ttl = try XCTUnwrap(redisWait(loop) { client.pttl(key, completion: $0) }.redisOK())
        XCTAssertTrue((4000...5000).contains(ttl), "PTTL \(ttl)")
        client.close()
    }

    func testDelCountsRemovedKeys() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        let key = RedisTestKit.prefix() + "d"
        _ = redisWait(loop) { client.set(key, "v", completion: $0) }
        XCTAssertEqual(redisWait(loop) { client.del(key, completion: $0) }.redisOK(), 1)
        XCTAssertEqual(redisWait(loop) { client.del(key, completion: $0) }.redisOK(), 0)
        XCTAssertEqual(try RedisTestServer.shared.cli("EXISTS", key), "0")
        client.close()
    }

    func testGenericCommandDecodesEveryReplyType() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        let p = RedisTestKit.prefix()
        XCTAssertEqual(redisWait(loop) { client.command("PING", completion: $0) }.redisOK(), .status(Array("PONG".utf8)))
        XCTAssertEqual(redisWait(loop) { client.command("INCRBY", p + "n", "5", completion: $0) }.redisOK(), .integer(5))
        XCTAssertEqual(redisWait(loop) { client.command("GET", p + "none", completion: $0) }.redisOK(), .null)
        let ok = try XCTUnwrap(redisWait(loop) { client.command("SET", p + "s", "x", completion: $0) }.redisOK())
        XCTAssertTrue(ok.isOK)
        _ = redisWait(loop) { client.command("RPUSH", p + "l", "a", "b", completion: $0) }
        XCTAssertEqual(redisWait(loop) { client.command(["LRANGE", p + "l", "0", "-1"], completion: $0) }.redisOK(),
                       .array([.bulk(Array("a".utf8)), .bulk(Array("b".utf8))]))
        XCTAssertEqual(redisWait(loop) { client.command([Array("GET".utf8), Array((p + "s").utf8)], completion: $0) }.redisOK()?.string, "x")
        client.close()
    }

    func testErrorReplyCompletesWithTheServerMessage() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        let key = RedisTestKit.prefix() + "list"
        _ = redisWait(loop) { client.command("RPUSH", key, "a", completion: $0) }
        let error = redisWait(loop) { client.get(key, completion: $0) }.redisError()
        guard case .server(let message)? = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertTrue(message.hasPrefix("WRONGTYPE"), message)
        // The connection is still fine afterwards.
        XCTAssertEqual(redisWait(loop) { client.command("PING", completion: $0) }.redisOK()?.string, "PONG")
        client.close()
    }

    func testDatabaseFromTheURLIsSelected() throws {
        let (loop, client) = try RedisTestKit.connectedClient(url: RedisTestServer.shared.url + "/5")
        let key = RedisTestKit.prefix() + "db"
        _ = redisWait(loop) { client.set(key, "in-five", completion: $0) }
        XCTAssertEqual(try RedisTestServer.shared.cli("-n", "5", "GET", key), "in-five")
        XCTAssertEqual(try RedisTestServer.shared.cli("-n", "0", "EXISTS", key), "0")
        client.close()
    }

    func testStateChangeCallbackHearsUpAndClosed() throws {
        let loop = try EventLoop()
        let client = try RedisClient(loop: loop, url: RedisTestServer.shared.url)
        var states: [RedisClient.State] = []
        client.onStateChange = { state, _ in states.append(state) }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { states == [.up] })
        XCTAssertEqual(client.connectCount, 1)
        client.close()
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { states == [.up, .closed] })
    }

    func testDroppingAClientWithCommandsInFlightFreesItsConnection() throws {
        let loop = try EventLoop()
        weak var dropped: RedisClient?
        do {
            let client = try RedisClient(loop: loop, url: RedisTestServer.shared.url)
            XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.isUp })
            for _ in 0..<100 { client.command("PING") { _ in } }
            dropped = client
        }
        // No close(): the client goes away with replies outstanding; nothing may call into it.
        loop.run(timeout: .milliseconds(200)) { false }
        XCTAssertNil(dropped)
    }

    func testCloseCompletesPendingCommandsWithClosed() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        var results: [Result<RedisReply, RedisError>] = []
        for _ in 0..<10 { client.command("PING") { results.append($0) } }
        client.close()
        XCTAssertTrue(loop.run(timeout: .seconds(2)) { results.count == 10 })
        XCTAssertTrue(results.allSatisfy { if case .failure(.closed) = $0 { return true } else { return false } })
        // Issued after close: fails too, never hangs.
        XCTAssertEqual(redisWait(loop) { client.get("k", completion: $0) }.redisError(), .closed)
    }
}
