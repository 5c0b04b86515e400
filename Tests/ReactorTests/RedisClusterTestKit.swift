import TestSupport
import XCTest
@testable import Reactor

/// Helpers for the cluster tests: a cluster client that is up, keys on a chosen node, and
/// a sink that records every answer.
enum RedisClusterTestKit {
    /// A cluster client for `setting` on a fresh loop, up (every slot served).
    static func upClient(_ setting: String, configuration: RedisClient.Configuration = RedisTestKit.quickConfiguration(),
                         file: StaticString = #filePath, line: UInt = #line) throws -> (EventLoop, RedisClusterClient) {
        let loop = try EventLoop()
        let client = RedisClusterClient(loop: loop, seeds: try RedisClients.urls(setting), configuration: configuration)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { client.isUp },
                      "cluster client did not come up: \(client.lastError ?? "no error")", file: file, line: line)
        return (loop, client)
    }

    /// `count` keys (prefixed) that `cluster` stores on node `node`.
    static func keys(_ prefix: String, on node: Int, of cluster: RedisClusterTestServer, count: Int) throws -> [String] {
        let slots = try slots(of: cluster)
        var keys: [String] = []
        var i = 0
        while keys.count < count {
            let key = "\(prefix)\(i)"
            if slots[RedisSlot.of(key)] == node { keys.append(key) }
            i += 1
        }
        return keys
    }

    /// A hash tag (`{name...}`) whose slot holds no key yet: slot counts stay exact even
    /// when earlier tests left keys behind.
    static func emptySlotTag(_ name: String, in cluster: RedisClusterTestServer) throws -> String {
        while true {
            let tag = "{\(name)\(UInt32.random(in: 0...UInt32.max))}"
            let slot = RedisSlot.of(tag)
            if try cluster.cli(try cluster.owner(ofSlot: slot), "CLUSTER", "COUNTKEYSINSLOT", "\(slot)") == "0" { return tag }
        }
    }

    /// The node index of every slot, from node 0's CLUSTER SLOTS as redis-cli prints it.
    static func slots(of cluster: RedisClusterTestServer) throws -> [Int] {
        var owners = [Int](repeating: -1, count: RedisSlot.count)
        let lines = try cluster.cli(0, "CLUSTER", "SLOTS").split(separator: "\n").map(String.init)
        // Each range prints as: start, end, ip, port, id (then replicas, none here).
        var i = 0
        while i + 3 < lines.count {
            if let start = Int(lines[i]), let end = Int(lines[i + 1]), lines[i + 2] == "127.0.0.1",
               let port = Int(lines[i + 3]), let node = cluster.ports.firstIndex(of: port) {
                for slot in start...end { owners[slot] = node }
                i += 4
            } else {
                i += 1
            }
        }
        return owners
    }
}

/// Records every sink answer: written (status or null), the holder's value, or an error.
final class RecordingSink: RedisReplySink {
    var written = 0
    var taken = 0
    var errors: [Int: RedisError] = [:]
    var answered: [Int] = []
    func redisReply(_ index: Int, _ reply: RedisReplyView?, error: RedisError?) {
        answered.append(index)
        if let error { errors[index] = error } else if reply?.kind == .string { taken += 1 } else { written += 1 }
    }
}
