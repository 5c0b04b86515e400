import Foundation
import Glibc

/// A real Redis Cluster of `masters` redis-server processes (no replicas) on free ports,
/// each in its own temp dir, joined with `redis-cli --cluster create` and waited for until
/// every node says `cluster_state:ok`. Tests move slots between nodes mid-stream
/// (`beginMigration`, `moveKeys`, `finishMigration`, or `migrateSlot` for all three), and
/// kill and restart nodes (`nodes[i].stop()`, `restart(_:)`).
public final class RedisClusterTestServer: @unchecked Sendable {
    /// The nodes: the masters in the order their slots were assigned (node 0 serves slot
    /// 0), then the replicas `addReplica` started.
    public private(set) var nodes: [RedisTestServer]
    /// The password every node requires (and uses on the cluster bus), if any.
    public let password: String?
    /// More `redis-server` arguments for every node (e.g. an append-only file).
    public let extraArguments: [String]

    /// The nodes' ports.
    public var ports: [Int] { nodes.map(\.port) }

    /// A `REDIS_URL` listing every node as a seed (with the password when there is one).
    public var seedsURL: String {
        let auth = password.map { ":\($0)@" } ?? ""
        return ports.map { "redis://\(auth)127.0.0.1:\($0)" }.joined(separator: ",")
    }

    /// The shared 3-master cluster for tests that leave the layout as they found it, or
    /// do not care about it.
    public static let shared: RedisClusterTestServer = {
        do { return try RedisClusterTestServer() } catch { fatalError("\(error)") }
    }()

    public init(masters: Int = 3, password: String? = nil, extraArguments: [String] = []) throws {
        self.password = password
        self.extraArguments = extraArguments
        var ports: [Int] = []
        while ports.count < masters {
            let port = Self.freeClusterPort()
            if !ports.contains(port) { ports.append(port) }
        }
        nodes = try ports.map { try Self.startNode(port: $0, password: password, extraArguments: extraArguments) }
        let (status, out) = try TestServers.run(try Self.cliBinary(),
                                                authArguments + ["--cluster", "create"] + ports.map { "127.0.0.1:\($0)" } + ["--cluster-yes"])
        guard status == 0 else { throw TestServerError.failed("redis-cli --cluster create failed: \(out)") }
        try waitUntilHealthy()
    }

    /// Waits until every node reports `cluster_state:ok` and agrees on who serves every slot.
    public func waitUntilHealthy(timeout: TimeInterval = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let ok = nodes.indices.allSatisfy { (try? cli($0, "CLUSTER", "INFO"))?.contains("cluster_state:ok") == true }
            if ok, let maps = try? nodes.indices.map({ try slotOwners(askingNode: $0) }), Set(maps.map { "\($0)" }).count == 1 {
                return
            }
            usleep(50_000)
        }
        throw TestServerError.failed("redis cluster on \(ports) not healthy within \(timeout) s")
    }

    /// Runs redis-cli against node `index` (with the password) and returns its output, trimmed.
    @discardableResult
    public func cli(_ index: Int, _ arguments: String...) throws -> String {
        try cli(index, arguments)
    }

    /// Runs redis-cli against node `index` with an argument array.
    @discardableResult
    public func cli(_ index: Int, _ arguments: [String]) throws -> String {
        let (_, out) = try TestServers.run(try Self.cliBinary(), authArguments + ["-p", "\(ports[index])"] + arguments)
        return out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The node index that serves `slot`, as node `askingNode` sees the cluster.
    public func owner(ofSlot slot: Int, askingNode: Int = 0) throws -> Int {
        let owners = try slotOwners(askingNode: askingNode)
        guard let owner = owners.first(where: { $0.slots.contains { $0.contains(slot) } }) else {
            throw TestServerError.failed("no node serves slot \(slot)")
        }
        return owner.node
    }

    /// Node `index`'s cluster node id.
    public func nodeID(_ index: Int) throws -> String {
        try cli(index, "CLUSTER", "MYID")
    }

    /// The slot of `key`, as the server computes it.
    public func keySlot(_ key: String) throws -> Int {
        guard let slot = Int(try cli(0, "CLUSTER", "KEYSLOT", key)) else { throw TestServerError.failed("CLUSTER KEYSLOT \(key)") }
        return slot
    }

    // MARK: slot migration

    /// Moves `slot` and its keys from its owner to node `target`, in the order the cluster
    /// specification gives (importing, migrating, keys, then the new owner everywhere).
    public func migrateSlot(_ slot: Int, to target: Int) throws {
        let source = try owner(ofSlot: slot)
        guard source != target else { return }
        try beginMigration(slot, from: source, to: target)
        try moveKeys(slot, from: source, to: target)
        try finishMigration(slot, from: source, to: target)
    }

    /// Marks `slot` importing on `target` and migrating on `source`: from now on `source`
    /// answers ASK for the keys it no longer holds.
    public func beginMigration(_ slot: Int, from source: Int, to target: Int) throws {
        try expectOK(target, "CLUSTER", "SETSLOT", "\(slot)", "IMPORTING", try nodeID(source))
        try expectOK(source, "CLUSTER", "SETSLOT", "\(slot)", "MIGRATING", try nodeID(target))
    }

    /// MIGRATEs the keys of `slot` from `source` to `target` (all of them, or up to `limit`).
    public func moveKeys(_ slot: Int, from source: Int, to target: Int, limit: Int = .max) throws {
        var moved = 0
        while moved < limit {
            let keys = try cli(source, "CLUSTER", "GETKEYSINSLOT", "\(slot)", "\(min(1000, limit - moved))")
                .split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            if keys.isEmpty { return }
            let auth = password.map { ["AUTH", $0] } ?? []
            let out = try cli(source, ["MIGRATE", "127.0.0.1", "\(ports[target])", "", "0", "5000"] + auth + ["KEYS"] + keys)
            guard out == "OK" else { throw TestServerError.failed("MIGRATE: \(out)") }
            moved += keys.count
        }
    }

    /// Gives `slot` to `target` on every master (the target first, as the specification
    /// asks; replicas refuse SETSLOT and learn it from their masters).
    public func finishMigration(_ slot: Int, from source: Int, to target: Int) throws {
        let id = try nodeID(target)
        let others = nodes.indices.filter { $0 != target && $0 != source && (try? cli($0, "ROLE"))?.hasPrefix("master") == true }
        for index in [target, source] + others {
            try expectOK(index, "CLUSTER", "SETSLOT", "\(slot)", "NODE", id)
        }
        try waitUntilHealthy()
    }

    // MARK: replicas and faults

    /// Starts one more node as a replica of node `master` and waits until it replicates.
    @discardableResult
    public func addReplica(of master: Int) throws -> Int {
        var port = Self.freeClusterPort()
        while ports.contains(port) { port = Self.freeClusterPort() }
        nodes.append(try Self.startNode(port: port, password: password, extraArguments: extraArguments))
        let index = nodes.count - 1
        let (status, out) = try TestServers.run(try Self.cliBinary(), authArguments + [
            "--cluster", "add-node", "127.0.0.1:\(port)", "127.0.0.1:\(ports[master])",
            "--cluster-slave", "--cluster-master-id", try nodeID(master)])
        guard status == 0 else { throw TestServerError.failed("redis-cli --cluster add-node failed: \(out)") }
        // Synced with its master, and known to every other node: only the master met it, and
        // if the master dies before gossiping it to the others, they never accept it as the
        // master of those slots after a failover (seen as a flaky failover test).
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if (try? cli(index, "INFO", "replication"))?.contains("master_link_status:up") == true,
               (0..<index).allSatisfy({ knows($0, port: port) }) { return index }
            usleep(50_000)
        }
        throw TestServerError.failed("replica on \(port) never synced with node \(master), or not every node knows it")
    }

    /// Whether node `index` lists the node on `port` as a member past its handshake.
    private func knows(_ index: Int, port: Int) -> Bool {
        guard let nodes = try? cli(index, "CLUSTER", "NODES") else { return false }
        return nodes.split(separator: "\n").contains { $0.contains("127.0.0.1:\(port)@") && !$0.contains("handshake") }
    }

    /// Promotes replica `index` at once (`CLUSTER FAILOVER TAKEOVER`: what the cluster does
    /// by itself once its master has failed for the node timeout, without the wait) and
    /// waits until it serves its slots.
    public func promote(_ index: Int, timeout: TimeInterval = 20) throws {
        try expectOK(index, "CLUSTER", "FAILOVER", "TAKEOVER")
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? cli(index, "ROLE"))?.hasPrefix("master") == true, (try? cli(index, "CLUSTER", "INFO"))?.contains("cluster_state:ok") == true {
                return
            }
            usleep(50_000)
        }
        throw TestServerError.failed("replica \(index) was not promoted within \(timeout) s")
    }

    /// The nodes serving slots now, by index, as the first running node sees the cluster
    /// (failovers and restarts change which nodes those are).
    public func masterNodes() throws -> [Int] {
        let asking = try runningNode()
        return try slotOwners(askingNode: asking).filter { !$0.slots.isEmpty }.map(\.node).sorted()
    }

    /// The node replicating node `master` now, if any.
    public func replica(of master: Int) throws -> Int? {
        let id = try nodeID(master)
        for line in try cli(try runningNode(), "CLUSTER", "NODES").split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 4, fields[2].contains("slave"), !fields[2].contains("fail"), fields[3] == id,
                  let colon = fields[1].firstIndex(of: ":"), let at = fields[1].firstIndex(of: "@"),
                  let port = Int(fields[1][fields[1].index(after: colon)..<at]) else { continue }
            return ports.firstIndex(of: port)
        }
        return nil
    }

    private func runningNode() throws -> Int {
        guard let index = nodes.indices.first(where: { nodes[$0].isRunning }) else {
            throw TestServerError.failed("no node of the cluster on \(ports) is running")
        }
        return index
    }

    /// Starts node `index` again on its port (its nodes.conf keeps its identity and slots)
    /// and waits until the cluster is healthy.
    public func restart(_ index: Int) throws {
        try nodes[index].start()
        try waitUntilHealthy()
    }

    /// Kills every node.
    public func stop() {
        for node in nodes { node.stop() }
    }

    // MARK: helpers

    private var authArguments: [String] {
        password.map { ["-a", $0, "--no-auth-warning"] } ?? []
    }

    private func expectOK(_ index: Int, _ arguments: String...) throws {
        let out = try cli(index, arguments)
        guard out == "OK" else { throw TestServerError.failed("\(arguments.joined(separator: " ")) on node \(index): \(out)") }
    }

    /// Who serves which slots according to node `askingNode`'s `CLUSTER NODES`.
    private func slotOwners(askingNode: Int) throws -> [(node: Int, slots: [ClosedRange<Int>])] {
        var owners: [(node: Int, slots: [ClosedRange<Int>])] = []
        for line in try cli(askingNode, "CLUSTER", "NODES").split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 8, fields[2].contains("master"),
                  let colon = fields[1].firstIndex(of: ":"), let at = fields[1].firstIndex(of: "@"),
                  let port = Int(fields[1][fields[1].index(after: colon)..<at]), let node = ports.firstIndex(of: port) else { continue }
            var slots: [ClosedRange<Int>] = []
            for range in fields.dropFirst(8) where !range.hasPrefix("[") {
                let ends = range.split(separator: "-").compactMap { Int($0) }
                if let low = ends.first, let high = ends.last { slots.append(low...high) }
            }
            owners.append((node, slots))
        }
        return owners.sorted { $0.node < $1.node }
    }

    private static func startNode(port: Int, password: String?, extraArguments: [String]) throws -> RedisTestServer {
        let auth = password.map { ["--requirepass", $0, "--masterauth", $0] } ?? []
        return try RedisTestServer(port: port, extraArguments: ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                                                "--cluster-node-timeout", "2000",
                                                                // A replica syncs at once, not after the 5 s default wait.
                                                                "--repl-diskless-sync-delay", "0"] + auth + extraArguments)
    }

    private static func cliBinary() throws -> String {
        guard let binary = TestServers.findExecutable("redis-cli", in: ["/usr/bin"]) else {
            throw TestServerError.missing("redis-cli not found (apt-get install redis-tools)")
        }
        return binary
    }

    /// A free port whose cluster bus port (+10000) is free too, both below Linux's
    /// ephemeral range (32768 and up): an outgoing connection of any test could otherwise
    /// take the bus port between this check and the node's bind, and the node never listens.
    private static func freeClusterPort() -> Int {
        while true {
            let port = Int.random(in: 20_000..<22_768)
            if canBind(port) && canBind(port + 10_000) { return port }
        }
    }

    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = loopbackAddress(port: port)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}
