import Foundation
import Synchronization
import TestSupport
import XCTest
@testable import Reactor

/// The cluster client against a real 3-master Redis Cluster: routing, redirections during
/// slot migrations, multi-key rules, and the factory's choice of client.
final class RedisClusterTests: XCTestCase {
    private var cluster: RedisClusterTestServer { RedisClusterTestServer.shared }

    func testTenThousandPipelinedSetsLandOnAllThreeNodesAndReadBack() throws {
        let (loop, client) = try RedisClusterTestKit.upClient(cluster.seedsURL)
        XCTAssertEqual(client.masterAddresses.count, 3)
        let prefix = RedisTestKit.prefix()
        let n = 10_000
        let sink = RecordingSink()
        for i in 0..<n { client.set(prefix + String(i), "v\(i)", px: 60_000, nx: true, get: true, sink: sink, index: i) }
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { sink.answered.count == n }, "answered \(sink.answered.count) of \(n)")
        XCTAssertEqual(sink.written, n)
        XCTAssertEqual(sink.errors.count, 0, "\(sink.errors.first.map { "\($0)" } ?? "")")
        XCTAssertEqual(Set(sink.answered).count, n)

        var values = [String?](repeating: nil, count: n)
        var done = 0
        for i in 0..<n {
            client.command(["GET", prefix + String(i)]) { result in
                values[i] = try? result.get().string
                done += 1
            }
        }
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { done == n })
        XCTAssertEqual(values, (0..<n).map { "v\($0)" })

        // Each key really is on the node its slot belongs to, and every node got some.
        let owners = try RedisClusterTestKit.slots(of: cluster)
        var perNode = [0, 0, 0]
        for i in 0..<n { perNode[owners[RedisSlot.of(prefix + String(i))]] += 1 }
        XCTAssertTrue(perNode.allSatisfy { $0 > 2_000 }, "\(perNode)")
        for node in 0..<3 {
            let key = try RedisClusterTestKit.keys(prefix, on: node, of: cluster, count: 1)[0]
            XCTAssertEqual(try cluster.cli(node, "GET", key), "v" + key.dropFirst(prefix.count))
        }
        client.close()
    }

    func testASlotMigratedMidStreamLosesAndDuplicatesNothing() throws {
        let (loop, client) = try RedisClusterTestKit.upClient(cluster.seedsURL)
        let tag = try RedisClusterTestKit.emptySlotTag("mv", in: cluster)
        let slot = RedisSlot.of(tag)
        let source = try cluster.owner(ofSlot: slot)
        let target = (source + 1) % 3
        let sink = RecordingSink()
        var increments = 0
        var failures: [RedisError] = []
        var issued = 0
        func issueRound() {
            for _ in 0..<200 {
                client.set("\(tag):\(issued)", "v", px: 60_000, nx: true, get: true, sink: sink, index: issued)
                client.command(["INCR", "\(tag):counter"]) { result in
                    if case .failure(let error) = result { failures.append(error) } else { increments += 1 }
                }
                issued += 1
            }
        }
        for _ in 0..<5 { issueRound() }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { sink.answered.count == issued })
        let updatesBefore = client.slotMapUpdates

        // The slot moves (importing, migrating, keys, new owner) while the stream goes on:
        // commands meet ASK while the keys move and MOVED once the old map is stale.
        let migrated = Mutex<Result<Void, Error>?>(nil)
        let migrator = Thread { [cluster] in
            let result = Result { try cluster.migrateSlot(slot, to: target) }
            migrated.withLock { $0 = result }
        }
        migrator.start()
        let done = { migrated.withLock { $0 != nil } }
        while !done() && issued < 200_000 {
            issueRound()
            loop.run(timeout: .milliseconds(5)) { false }
        }
        XCTAssertTrue(done(), "migration did not finish")
        try migrated.withLock { try $0?.get() }
        for _ in 0..<5 { issueRound() }
        let total = issued
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { sink.answered.count == total && increments + failures.count == total })
        XCTAssertEqual(failures.map { "\($0)" }, [])
        XCTAssertEqual(sink.errors.count, 0, "\(sink.errors.first.map { "\($0)" } ?? "")")
        XCTAssertEqual(sink.written, total, "a SET NX answered with a holder: it ran twice")
        XCTAssertEqual(try cluster.cli(target, "GET", "\(tag):counter"), "\(total)", "INCR lost or run twice")
        XCTAssertEqual(try cluster.cli(target, "CLUSTER", "COUNTKEYSINSLOT", "\(slot)"), "\(total + 1)")
        XCTAssertEqual(client.masterAddress(forKey: tag), "127.0.0.1:\(cluster.ports[target])")
        XCTAssertGreaterThan(client.redirections, 0, "no command met the migration")
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.slotMapUpdates > updatesBefore }, "MOVED refreshed no map")
        try cluster.migrateSlot(slot, to: source)
        client.close()
    }

    func testAskDuringAMigrationInProgressReachesEveryKey() throws {
        let (loop, client) = try RedisClusterTestKit.upClient(cluster.seedsURL)
        let tag = try RedisClusterTestKit.emptySlotTag("ask", in: cluster)
        let slot = RedisSlot.of(tag)
        let source = try cluster.owner(ofSlot: slot)
        let target = (source + 2) % 3
        let n = 200
        var stored = 0
        for i in 0..<n { client.command(["SET", "\(tag):\(i)", "v\(i)"]) { if case .success = $0 { stored += 1 } } }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { stored == n })

        try cluster.beginMigration(slot, from: source, to: target)
        try cluster.moveKeys(slot, from: source, to: target, limit: n / 2)
        XCTAssertEqual(try cluster.cli(source, "CLUSTER", "COUNTKEYSINSLOT", "\(slot)"), "\(n / 2)")
        // Half the keys answer from the source, the rest through ASK from the target; a new
        // key is created on the target (the source answers ASK for keys it does not have).
        var values = [String?](repeating: nil, count: n)
        var done = 0
        for i in 0..<n { client.command(["GET", "\(tag):\(i)"]) { values[i] = try? $0.get().string; done += 1 } }
        var created: Result<RedisReply, RedisError>?
        client.command(["SET", "\(tag):new", "fresh"]) { created = $0 }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { done == n && created != nil })
        XCTAssertEqual(values, (0..<n).map { "v\($0)" })
        XCTAssertEqual(client.redirections, n / 2 + 1, "one ASK per key the source no longer had")
        XCTAssertEqual(try created?.get().isOK, true)
        XCTAssertEqual(try cluster.cli(target, "CLUSTER", "COUNTKEYSINSLOT", "\(slot)"), "\(n / 2 + 1)")
        // ASK is for one command: the map still says the source.
        XCTAssertEqual(client.masterAddress(forKey: tag), "127.0.0.1:\(cluster.ports[source])")
        // Keys split between the nodes: TRYAGAIN, retried a few times, then given to the caller.
        let split = redisWait(loop) { client.command(["MGET", "\(tag):0", "\(tag):\(n - 1)"], completion: $0) }
        guard case .server(let message)? = split.redisError() else { return XCTFail("\(String(describing: split))") }
        XCTAssertTrue(message.hasPrefix("TRYAGAIN"), message)

        try cluster.moveKeys(slot, from: source, to: target)
        try cluster.finishMigration(slot, from: source, to: target)
        try cluster.migrateSlot(slot, to: source)
        client.close()
    }

    func testMultiKeyCommandsNeedOneSlot() throws {
        let (loop, client) = try RedisClusterTestKit.upClient(cluster.seedsURL)
        let p = RedisTestKit.prefix()
        let crossed = redisWait(loop) { client.command(["MGET", p + "a", p + "b"], completion: $0) }
        guard case .server(let message)? = crossed.redisError() else { return XCTFail("\(String(describing: crossed))") }
        XCTAssertTrue(message.hasPrefix("CROSSSLOT"), message)
        let script = "return #KEYS"
        let evalCrossed = redisWait(loop) { client.command(["EVAL", script, "2", p + "a", p + "b"], completion: $0) }
        XCTAssertTrue("\(evalCrossed.redisError().map { "\($0)" } ?? "")".contains("CROSSSLOT"))

        // Hash-tagged keys share a slot: MSET, MGET and a script over several keys work.
        XCTAssertEqual(try redisWait(loop) { client.command(["MSET", "{\(p)}a", "1", "{\(p)}b", "2"], completion: $0) }?.get().isOK, true)
        XCTAssertEqual(try redisWait(loop) { client.command(["MGET", "{\(p)}a", "{\(p)}b"], completion: $0) }?.get(), .array([.bulk([49]), .bulk([50])]))
        let keys = ["{\(p)}a", "{\(p)}b", "{\(p)}c"]
        let viaWriter = redisWait(loop) { (done: @escaping (Result<RedisReply, RedisError>) -> Void) in
            client.command(routingKey: keys[0], argumentCount: 3 + keys.count, { writer in
                writer.append("EVAL")
                writer.append(script)
                writer.append(decimal: keys.count)
                for key in keys { writer.append(key) }
            }, completion: done)
        }
        XCTAssertEqual(try viaWriter?.get(), .integer(3))
        // The writer API cannot see the keys: the node refuses keys across slots itself.
        let refused = redisWait(loop) { (done: @escaping (Result<RedisReply, RedisError>) -> Void) in
            client.command(routingKey: p + "a", argumentCount: 5, { writer in
                writer.append("EVAL")
                writer.append(script)
                writer.append(decimal: 2)
                writer.append(p + "a")
                writer.append(p + "b")
            }, completion: done)
        }
        XCTAssertTrue("\(refused.redisError().map { "\($0)" } ?? "")".contains("CROSSSLOT"))
        // Keyless commands go to some node.
        XCTAssertEqual(try redisWait(loop) { client.command(["PING"], completion: $0) }?.get(), .status(Array("PONG".utf8)))
        client.close()
    }

    func testOneDeadSeedOfSeveralStillFindsTheClusterAndCommandsWaitForTheMap() throws {
        let dead = TestServers.freePort()
        let loop = try EventLoop()
        let client = RedisClusterClient(loop: loop, seeds: try RedisClients.urls("redis://127.0.0.1:\(dead),127.0.0.1:\(cluster.ports[1])"),
                                        configuration: RedisTestKit.quickConfiguration())
        // Issued before any slot map is known: held, then sent to their masters.
        let p = RedisTestKit.prefix()
        let sink = RecordingSink()
        for i in 0..<300 { client.set(p + String(i), "v", px: 60_000, nx: true, get: true, sink: sink, index: i) }
        XCTAssertFalse(client.isUp)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { sink.answered.count == 300 }, client.lastError ?? "")
        XCTAssertEqual(sink.written, 300)
        XCTAssertTrue(client.isUp)
        XCTAssertEqual(client.masterAddresses, cluster.ports.map { "127.0.0.1:\($0)" }.sorted())
        client.close()
    }

    func testTheFactoryTellsAClusterNodeFromASingleServer() throws {
        let loop = try EventLoop()
        var fromNode: (any RedisCommandClient)?
        try RedisClients.open(loop: loop, setting: "redis://127.0.0.1:\(cluster.ports[2])") { fromNode = $0 }
        var fromSingle: (any RedisCommandClient)?
        try RedisClients.open(loop: loop, setting: RedisTestServer.shared.url) { fromSingle = $0 }
        var fromList: (any RedisCommandClient)?
        try RedisClients.open(loop: loop, setting: cluster.seedsURL) { fromList = $0 }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { fromNode != nil && fromSingle != nil && fromList != nil })
        XCTAssertTrue(fromNode is RedisClusterClient)
        XCTAssertTrue(fromSingle is RedisClient)
        XCTAssertTrue(fromList is RedisClusterClient)
        XCTAssertTrue(fromSingle?.isUp == true)
        for client in [fromNode, fromList].compactMap({ $0 }) {
            XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.isUp })
            let sink = RecordingSink()
            let p = RedisTestKit.prefix()
            for i in 0..<300 { client.set(p + String(i), "v", px: 10_000, nx: true, get: false, sink: sink, index: i) }
            XCTAssertTrue(loop.run(timeout: .seconds(5)) { sink.answered.count == 300 })
            XCTAssertEqual(sink.written, 300)
            client.close()
        }
        fromSingle?.close()
    }
}
