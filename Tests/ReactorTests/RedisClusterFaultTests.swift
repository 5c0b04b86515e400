import TestSupport
import XCTest
@testable import Reactor

/// The cluster client when nodes die and when the cluster wants a password: each test has a
/// cluster of its own.
final class RedisClusterFaultTests: XCTestCase {
    func testAKilledNodeFailsItsCommandsThenServesThemOnceRestarted() throws {
        let cluster = try RedisClusterTestServer()
        defer { cluster.stop() }
        let (loop, client) = try RedisClusterTestKit.upClient(cluster.seedsURL,
                                                              configuration: RedisTestKit.quickConfiguration(whileDown: .failFast))
        var states: [RedisClient.State] = []
        client.onStateChange = { state, _ in states.append(state) }
        let p = RedisTestKit.prefix()
        let keys = try RedisClusterTestKit.keys(p, on: 1, of: cluster, count: 1_000)
        let other = try RedisClusterTestKit.keys(p, on: 0, of: cluster, count: 1)[0]

        // In flight when the node dies: every command gets exactly one answer.
        let sink = RecordingSink()
        for (i, key) in keys.enumerated() { client.set(key, "v", px: 60_000, nx: true, get: true, sink: sink, index: i) }
        cluster.nodes[1].stop()
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { sink.answered.count == keys.count })
        XCTAssertEqual(Set(sink.answered).count, keys.count)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { !client.isUp && states.last == .down })
        XCTAssertTrue(client.lastError?.contains("\(cluster.ports[1])") == true, client.lastError ?? "")

        // While it is down its keys fail at once (failFast).
        let down = redisWait(loop) { client.command(["GET", keys[0]], completion: $0) }
        guard case .notConnected? = down.redisError() else { return XCTFail("\(String(describing: down))") }

        try cluster.restart(1)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { client.isUp }, client.lastError ?? "")
        XCTAssertEqual(states.last, .up)
        let again = RecordingSink()
        for (i, key) in keys.enumerated() { client.set(key, "w", px: 60_000, nx: false, get: false, sink: again, index: i) }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { again.answered.count == keys.count })
        XCTAssertEqual(again.written, keys.count)
        XCTAssertEqual(try redisWait(loop) { client.command(["SET", other, "x"], completion: $0) }?.get().isOK, true)
        XCTAssertEqual(try cluster.cli(1, "GET", keys[0]), "w")
        client.close()
        XCTAssertTrue(loop.run(timeout: .seconds(1)) { states.last == .closed })
    }

    func testAFailoverSendsTheCommandsWaitingForTheDeadMasterToItsReplica() throws {
        let cluster = try RedisClusterTestServer()
        defer { cluster.stop() }
        let replica = try cluster.addReplica(of: 1)
        let (loop, client) = try RedisClusterTestKit.upClient(cluster.seedsURL,
                                                              configuration: RedisTestKit.quickConfiguration(commandTimeout: .seconds(20)))
        let keys = try RedisClusterTestKit.keys(RedisTestKit.prefix(), on: 1, of: cluster, count: 500)
        cluster.nodes[1].stop()
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { !client.isUp })

        // Issued while the master is dead: they wait for its lane, and once the replica is
        // promoted and the map says so, they are sent there (never to the dead node).
        let sink = RecordingSink()
        for (i, key) in keys.enumerated() { client.set(key, "v", px: 60_000, nx: true, get: true, sink: sink, index: i) }
        try cluster.promote(replica)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { sink.answered.count == keys.count }, client.lastError ?? "")
        XCTAssertEqual(sink.errors.count, 0, "\(sink.errors.first.map { "\($0)" } ?? "")")
        XCTAssertEqual(sink.written, keys.count)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.isUp }, client.lastError ?? "")
        XCTAssertTrue(client.masterAddresses.contains("127.0.0.1:\(cluster.ports[replica])"), "\(client.masterAddresses)")
        XCTAssertEqual(try cluster.cli(replica, "GET", keys[0]), "v")
        client.close()
    }

    func testAPasswordProtectedClusterUsesTheSeedsCredentialsAndNeverPrintsThem() throws {
        let password = "pw-\(UInt32.random(in: 0...UInt32.max))"
        let cluster = try RedisClusterTestServer(password: password)
        defer { cluster.stop() }
        // Only the first seed carries the password; the nodes found from it use it too.
        let setting = "redis://:\(password)@127.0.0.1:\(cluster.ports[0]),127.0.0.1:\(cluster.ports[1])"
        let (loop, client) = try RedisClusterTestKit.upClient(setting)
        let p = RedisTestKit.prefix()
        let sink = RecordingSink()
        for i in 0..<900 { client.set(p + String(i), "v", px: 60_000, nx: true, get: true, sink: sink, index: i) }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { sink.answered.count == 900 })
        XCTAssertEqual(sink.written, 900)
        XCTAssertEqual(client.masterAddresses.count, 3)
        XCTAssertFalse(client.seeds.map(\.description).joined().contains(password))
        client.close()

        let wrong = RedisClusterClient(loop: loop, seeds: try RedisClients.urls("redis://:nope-\(password.dropFirst(3))x@127.0.0.1:\(cluster.ports[2])"),
                                       configuration: RedisTestKit.quickConfiguration())
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { wrong.lastError != nil })
        let error = wrong.lastError ?? ""
        XCTAssertFalse(wrong.isUp)
        XCTAssertTrue(error.contains("AUTH") || error.contains("WRONGPASS"), error)
        XCTAssertFalse(error.contains(password), error)
        wrong.close()
    }
}
