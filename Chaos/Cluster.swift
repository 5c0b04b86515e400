import Foundation
import Glibc
import TestSupport

/// One run of one listener process: counters scraped while it lived, and how it ended.
final class ListenerLife: @unchecked Sendable {
    let slot: Int
    let instanceID: String
    let process: ServiceProcess
    let startedAt: Double
    /// When and how it ended: "sigkill", "sigterm", "final sigterm", "died by itself".
    var endedAt: Double?
    var endedBy: String?
    var exitStatus: Int32?
    /// The nemesis means it to be down or paused: its absence is no failure.
    var expectedDown = false
    /// SIGSTOPped right now (no scraping: it would wait for the timeout).
    var stopped = false
    /// The latest `/metrics` it answered; from a life ended by a signal these are a lower
    /// bound (it may have worked a little between the last scrape and the signal).
    var metrics: [String: Double] = [:]
    var maxRSS = 0

    init(slot: Int, instanceID: String, process: ServiceProcess, startedAt: Double) {
        self.slot = slot
        self.instanceID = instanceID
        self.process = process
        self.startedAt = startedAt
    }
}

/// A listener position: its API port and its three fault proxies stay for the whole run;
/// the process behind them is restarted by the nemesis.
final class ListenerSlot: @unchecked Sendable {
    let index: Int
    let port: Int
    let proxies: [LinkName: FaultProxy]
    var lives: [ListenerLife] = []
    var current: ListenerLife? { lives.last }
    /// INSTANCE_IDs handed out so far, for "restart with a new INSTANCE_ID".
    var generation = 0

    init(index: Int, port: Int, proxies: [LinkName: FaultProxy]) {
        self.index = index
        self.port = port
        self.proxies = proxies
    }

    var baseID: String { "L\(index)" }
}

/// The system under test as real processes: Redis (append-only file, fsync always; one
/// server, or with `--redis-cluster` a Redis Cluster of 3 masters with a replica each), PostgreSQL, the producer and
/// N listeners, each listener reaching the producer, PostgreSQL and a single Redis through
/// its own fault proxies (a cluster's nodes it reaches directly). Every change goes through
/// `lock`, so the nemesis and the monitor agree on which process is meant to be up.
final class Cluster: @unchecked Sendable {
    let options: ChaosOptions
    let binaries: ChaosBinaries
    let clock: RunClock
    let logDir: String
    let lock = NSRecursiveLock()
    /// The Redis servers: the one server, or the cluster's masters (node i is `redisCluster.nodes[i]`).
    let redisServers: [RedisTestServer]
    let redisCluster: RedisClusterTestServer?
    let postgres: PostgresTestServer
    let httpPort = TestServers.freePort()
    let wsPort = TestServers.freePort()
    let dataDir: String
    private(set) var producer: ServiceProcess?
    private(set) var producerLives = 0
    var producerExpectedDown = false
    /// A producer-stop is in progress.
    private(set) var producerPaused = false
    /// Makes the producer's flushes fail, for producer-disk-fail (nil: that kind is off).
    let producerDisk: FailingDisk?
    var producerMaxRSS = 0
    /// Indexes in `redisServers` the nemesis has down.
    var redisDown: Set<Int> = []
    /// The server each Redis fault in progress stopped, by the master (`shard`) it aimed at.
    private var downForShard: [Int: Int] = [:]
    /// The server each redis-pause in progress SIGSTOPped, by the master it aimed at.
    private var pausedForShard: [Int: Int] = [:]
    /// The slot migration in progress, if any.
    private var migration: SlotMigration?
    var postgresExpectedDown = false
    /// A postgres-pause is in progress.
    private(set) var postgresPaused = false
    private(set) var slots: [ListenerSlot] = []
    /// Processes that exited without the nemesis asking, and other things no fault explains.
    private(set) var incidents: [(time: Double, text: String)] = []

    init(options: ChaosOptions, binaries: ChaosBinaries, clock: RunClock, logDir: String, failingDisk: Bool = false) throws {
        self.options = options
        self.binaries = binaries
        self.clock = clock
        self.logDir = logDir
        let durable = ["--appendonly", "yes", "--appendfsync", "always"]
        if options.redisCluster {
            let cluster = try RedisClusterTestServer(masters: ChaosOptions.clusterMasters, extraArguments: durable)
            for master in 0..<ChaosOptions.clusterMasters { try cluster.addReplica(of: master) }
            redisCluster = cluster
            redisServers = cluster.nodes
        } else {
            redisCluster = nil
            redisServers = [try RedisTestServer(extraArguments: durable)]
        }
        postgres = try PostgresTestServer()
        dataDir = TestServers.makeTempDir("chaos-producer")
        producerDisk = failingDisk ? try FailingDisk.build(in: TestServers.makeTempDir("chaos-disk")) : nil
    }

    /// Starts the producer and every listener and waits until each listener is healthy.
    func start() throws {
        try startProducer()
        for index in 0..<options.listeners {
            var proxies: [LinkName: FaultProxy] = [:]
            for link in LinkName.proxied(redisCluster: redisCluster != nil) {
                let upstream: Int
                switch link {
                case .producer: upstream = wsPort
                case .redis: upstream = redisServers[0].port
                case .postgres: upstream = postgres.port
                }
                proxies[link] = try FaultProxy(upstreamPort: upstream)
            }
            slots.append(ListenerSlot(index: index, port: TestServers.freePort(), proxies: proxies))
        }
        for slot in slots { try startListener(slot.index, newInstanceID: false) }
        for slot in slots {
            guard waitFor(30, { self.health(port: slot.port) == 200 }) else {
                throw TestServerError.failed("listener \(slot.baseID) not healthy after 30 s:\n    \(slot.current?.process.logTail() ?? "")")
            }
        }
    }

    // MARK: producer

    /// Starts (or restarts) the producer on the same ports and DATA_DIR.
    func startProducer() throws {
        lock.lock()
        defer { lock.unlock() }
        producerLives += 1
        var env = ["HTTP_PORT": "\(httpPort)", "WS_PORT": "\(wsPort)", "HOST": "127.0.0.1", "LOG_LEVEL": "warning",
                   "DATA_DIR": dataDir]
        if let producerDisk { env.merge(producerDisk.environment) { $1 } }
        // A producer without the durable log ignores DATA_DIR and keeps events in memory
        // only, so producer faults stay off for it (see ChaosBinaries).
        // A log per life, as the listeners have: a restart must not wipe the last life's.
        let log = logDir + (producerLives == 1 ? "/producer.log" : "/producer.\(producerLives).log")
        producer = try ServiceProcess(name: "producer", binary: binaries.producer, log: log,
                                      environment: env, port: httpPort)
        producerExpectedDown = false
        guard TestServers.waitForPort(httpPort, timeout: 30), TestServers.waitForPort(wsPort, timeout: 10) else {
            throw TestServerError.failed("producer did not listen: \(producer?.logTail() ?? "")")
        }
    }

    /// SIGSTOPs (true) or SIGCONTs (false) the producer.
    func pauseProducer(_ pause: Bool) {
        lock.lock()
        defer { lock.unlock() }
        guard let producer, producer.isRunning else { return }
        producerPaused = pause
        kill(producer.pid, pause ? SIGSTOP : SIGCONT)
    }

    /// Makes every flush of the producer fail (true) or work again (false).
    func failProducerDisk(_ failing: Bool) {
        producerDisk?.failing = failing
    }

    /// SIGKILLs the producer.
    func killProducer() {
        lock.lock()
        defer { lock.unlock() }
        producerExpectedDown = true
        producer?.kill()
    }

    // MARK: listeners

    /// Starts a new life in `slot`: the same INSTANCE_ID as the last life, or a fresh one.
    /// Waits only for its API port (its links may be down on purpose).
    func startListener(_ index: Int, newInstanceID: Bool) throws {
        lock.lock()
        defer { lock.unlock() }
        let slot = slots[index]
        if slot.lives.isEmpty || newInstanceID { slot.generation += 1 }
        let id = slot.generation == 1 ? slot.baseID : "\(slot.baseID).\(slot.generation)"
        let proxies = slot.proxies
        let env = ["INSTANCE_ID": id, "PORT": "\(slot.port)", "HOST": "127.0.0.1",
                   "PRODUCER_URL": "ws://127.0.0.1:\(proxies[.producer]!.port)/",
                   "REDIS_URL": redisCluster?.seedsURL ?? "redis://127.0.0.1:\(proxies[.redis]!.port)",
                   "DATABASE_URL": "postgres://postgres@127.0.0.1:\(proxies[.postgres]!.port)/postgres"
                       + (options.postgresAsyncCommit ? "?options=-c%20synchronous_commit%3Doff" : ""),
                   "LOCK_TTL_MS": "\(options.lockTTLMillis)", "SHUTDOWN_TIMEOUT_MS": "3000",
                   "PROCESS_DELAY_MS": "\(options.processDelayMillis)",
                   "LOG_LEVEL": options.logLevel]
        let process = try ServiceProcess(name: "listener \(id)", binary: binaries.listener,
                                         log: logDir + "/listener-\(id).log", environment: env, port: slot.port)
        slot.lives.append(ListenerLife(slot: index, instanceID: id, process: process, startedAt: clock.now))
        guard TestServers.waitForPort(slot.port, timeout: 20) else {
            throw TestServerError.failed("listener \(id) did not open its port:\n    \(process.logTail())")
        }
    }

    /// Ends the current life of `slot` with `signal` (SIGKILL or SIGTERM), after one last
    /// scrape of its counters. Returns the exit status.
    @discardableResult
    func endListener(_ index: Int, signal: Int32, reason: String) -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        guard let life = slots[index].current, life.endedAt == nil else { return nil }
        if life.stopped { kill(life.process.pid, SIGCONT); life.stopped = false }
        scrape(life)
        life.expectedDown = true
        let status: Int32
        if signal == SIGKILL {
            life.process.kill()
            status = life.process.process.terminationStatus
        } else {
            status = life.process.terminate(grace: 20)
            if life.process.process.terminationReason == .uncaughtSignal {
                incident("listener \(life.instanceID) did not exit within 20 s of SIGTERM (killed)")
            } else if status != 0 {
                incident("listener \(life.instanceID) exited with status \(status) after SIGTERM:\n    \(life.process.logTail())")
            }
        }
        life.endedAt = clock.now
        life.endedBy = reason
        life.exitStatus = status
        return status
    }

    /// SIGSTOP (true) or SIGCONT (false) for the current life of `slot`.
    func pauseListener(_ index: Int, _ pause: Bool) {
        lock.lock()
        defer { lock.unlock() }
        guard let life = slots[index].current, life.endedAt == nil else { return }
        if pause { scrape(life) }
        life.stopped = pause
        life.expectedDown = pause
        kill(life.process.pid, pause ? SIGSTOP : SIGCONT)
    }

    /// Reads a life's `/metrics` into `life.metrics` (kept when it does not answer).
    func scrape(_ life: ListenerLife) {
        guard !life.stopped, life.endedAt == nil,
              let (status, text) = try? httpRequest(port: slots[life.slot].port, method: "GET", path: "/metrics", timeoutSeconds: 2),
              status == 200 else { return }
        let parsed = parseMetrics(text)
        if !parsed.isEmpty { life.metrics = parsed }
    }

    /// The `/health` status of a listener port, or nil when it does not answer.
    func health(port: Int) -> Int? {
        (try? httpRequest(port: port, method: "GET", path: "/health", timeoutSeconds: 2))?.status
    }

    // MARK: servers

    /// The server a fault on master `shard` hits: the one server, or the `shard`-th of the
    /// cluster's masters as they are now (failovers change which nodes those are).
    private func master(ofShard shard: Int) throws -> Int {
        guard let redisCluster else { return 0 }
        let masters = try redisCluster.masterNodes()
        guard !masters.isEmpty else { throw TestServerError.failed("the cluster lists no master") }
        return masters[shard % masters.count]
    }

    /// SIGKILLs Redis (master `shard` of a cluster); with `wipe`, deletes its append-only
    /// file so it restarts empty (a cluster node keeps its nodes.conf: its identity and
    /// slots). Returns which node it was.
    func stopRedis(wipe: Bool, shard: Int = 0) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        let node = try master(ofShard: shard)
        let server = redisServers[node]
        downForShard[shard] = node
        redisDown.insert(node)
        server.stop()
        if wipe {
            for name in ["appendonlydir", "appendonly.aof", "dump.rdb"] {
                try? FileManager.default.removeItem(atPath: server.dir + "/" + name)
            }
        }
        return redisCluster == nil ? "" : "node \(node)"
    }

    /// Starts the Redis server a fault on master `shard` stopped.
    func startRedis(shard: Int = 0) throws {
        lock.lock()
        defer { lock.unlock() }
        guard let node = downForShard.removeValue(forKey: shard) else { return }
        try startRedisNode(node)
    }

    /// Starts server `node` again; a cluster node is waited for until the whole cluster is
    /// healthy.
    private func startRedisNode(_ node: Int) throws {
        if let redisCluster { try redisCluster.restart(node) } else { try redisServers[node].start() }
        redisDown.remove(node)
    }

    /// SIGSTOPs master `shard` of the cluster; `resumeRedis(shard:)` continues it.
    func pauseRedis(shard: Int) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        let node = try master(ofShard: shard)
        pausedForShard[shard] = node
        redisServers[node].pause(true)
        return "paused node \(node)"
    }

    /// SIGCONTs the master a redis-pause stopped and waits until the cluster is healthy
    /// again (by then the node has learnt whether its replica replaced it).
    func resumeRedis(shard: Int) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        guard let node = pausedForShard.removeValue(forKey: shard) else { return "" }
        redisServers[node].pause(false)
        try redisCluster?.waitUntilHealthy()
        let masters = (try? redisCluster?.masterNodes()) ?? nil
        return masters.map { $0.contains(node) ? "node \(node) is still a master" : "node \(node) came back as a replica" } ?? ""
    }

    /// SIGKILLs master `shard` of the cluster and promotes its replica at once (what the
    /// cluster does by itself after the node timeout), so the writes the master had
    /// acknowledged and not replicated yet are lost. `startRedis(shard:)` brings the old
    /// master back, as the new one's replica.
    func failOver(shard: Int) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        guard let redisCluster else { throw TestServerError.failed("a failover needs --redis-cluster") }
        let node = try master(ofShard: shard)
        guard let replica = try redisCluster.replica(of: node) else { throw TestServerError.failed("master node \(node) has no replica") }
        downForShard[shard] = node
        redisDown.insert(node)
        redisServers[node].stop()
        try redisCluster.promote(replica)
        return "killed master node \(node), promoted node \(replica)"
    }

    /// Begins moving slots `first..<first + count` and their keys to master `shard` (or,
    /// for a slot it already serves, to the next master), one slot at a time on a thread
    /// of its own, while the listeners and the other faults go on.
    func beginSlotMigration(first: Int, count: Int, toShard shard: Int) throws {
        guard let redisCluster else { throw TestServerError.failed("slot migration needs --redis-cluster") }
        let job = SlotMigration()
        lock.lock()
        defer { lock.unlock() }
        let masters = try redisCluster.masterNodes()
        guard masters.count > 1 else { throw TestServerError.failed("slot migration needs two masters, the cluster lists \(masters)") }
        // Only a job whose thread starts is waited for: one that never ran would never end.
        migration = job
        let target = masters[shard % masters.count]
        let next = masters[(shard + 1) % masters.count]
        let thread = Thread {
            var movedTo: [Int: Int] = [:]
            var failure: Error?
            do {
                for slot in first..<(first + count) {
                    let owner = try redisCluster.owner(ofSlot: slot)
                    let destination = owner == target ? next : target
                    try redisCluster.migrateSlot(slot, to: destination)
                    movedTo[destination, default: 0] += 1
                }
            } catch {
                failure = error
            }
            let moved = movedTo.sorted { $0.key < $1.key }.map { "\($0.value) to node \($0.key)" }.joined(separator: ", ")
            job.finish(note: "moved " + (moved.isEmpty ? "nothing" : moved), failure: failure)
        }
        thread.name = "chaos-slot-migration"
        thread.start()
    }

    /// Waits for the slot migration begun last, if any, and returns what it moved.
    func finishSlotMigration() throws -> String {
        lock.lock()
        let job = migration
        migration = nil
        lock.unlock()
        guard let job else { return "" }
        let (note, failure) = job.wait()
        if let failure { throw TestServerError.failed("\(note), then: \(failure)") }
        return note
    }

    /// The servers' data dirs, for the report of what was kept.
    var redisDirs: [String] { redisServers.map(\.dir) }

    func stopPostgres() {
        lock.lock()
        defer { lock.unlock() }
        postgresExpectedDown = true
        postgres.stop()
    }

    /// SIGSTOPs (true) or SIGCONTs (false) PostgreSQL's postmaster and every backend.
    /// Returns how many processes it signalled.
    func pausePostgres(_ pause: Bool) -> String {
        lock.lock()
        defer { lock.unlock() }
        postgresPaused = pause
        return "\(postgres.pause(pause)) processes"
    }

    func startPostgres() throws {
        lock.lock()
        defer { lock.unlock() }
        try postgres.start()
        postgresExpectedDown = false
    }

    // MARK: watching

    /// Notes a process that is down without the nemesis having asked, and brings it back
    /// so the run goes on; samples memory. Called by the monitor about once a second.
    func checkProcesses() {
        lock.lock()
        defer { lock.unlock() }
        for (node, server) in redisServers.enumerated() where !redisDown.contains(node) && !server.isRunning {
            incident(redisCluster == nil ? "redis-server died by itself" : "redis cluster node \(node) died by itself")
            try? startRedisNode(node)
        }
        if !postgresExpectedDown && !postgres.isRunning {
            incident("postgres died by itself")
            try? postgres.start()
        }
        if let producer, !producerExpectedDown {
            if producer.isRunning {
                producerMaxRSS = max(producerMaxRSS, residentBytes(pid: producer.pid))
            } else {
                incident("producer died by itself (status \(producer.process.terminationStatus)):\n    \(producer.logTail())")
                try? startProducer()
            }
        }
        for slot in slots {
            guard let life = slot.current, life.endedAt == nil else { continue }
            if life.process.isRunning {
                life.maxRSS = max(life.maxRSS, residentBytes(pid: life.process.pid))
            } else if !life.expectedDown {
                life.endedAt = clock.now
                life.endedBy = "died by itself"
                life.exitStatus = life.process.process.terminationStatus
                TestServers.untrack(life.process.pid)
                incident("listener \(life.instanceID) died by itself (status \(life.exitStatus ?? -1)):\n    \(life.process.logTail())")
                try? startListener(slot.index, newInstanceID: false)
            }
        }
    }

    func incident(_ text: String) {
        lock.lock()
        incidents.append((clock.now, text))
        lock.unlock()
    }

    /// Ends every fault: proxies healed, paused listeners continued, servers and processes
    /// that are down started again.
    func healAll() {
        lock.lock()
        defer { lock.unlock() }
        for slot in slots { for proxy in slot.proxies.values { proxy.heal() } }
        if let note = try? finishSlotMigration(), !note.isEmpty { incident("a slot migration was still running at the heal (\(note))") }
        for shard in pausedForShard.keys.sorted() { _ = try? resumeRedis(shard: shard) }
        for node in redisDown.sorted() { try? startRedisNode(node) }
        downForShard.removeAll()
        if postgresPaused { _ = pausePostgres(false) }
        if postgresExpectedDown { try? startPostgres() }
        if producerPaused { pauseProducer(false) }
        if producerExpectedDown { try? startProducer() }
        for slot in slots {
            if let life = slot.current, life.stopped { pauseListener(slot.index, false) }
            if slot.current?.endedAt != nil { try? startListener(slot.index, newInstanceID: false) }
        }
    }

    /// Scrapes every live listener one last time, then stops everything.
    func shutdown() {
        lock.lock()
        defer { lock.unlock() }
        for slot in slots {
            if let life = slot.current, life.endedAt == nil {
                endListener(slot.index, signal: SIGTERM, reason: "final sigterm")
            }
            for proxy in slot.proxies.values { proxy.stop() }
        }
        producerExpectedDown = true
        producer?.terminate(grace: 10)
        redisDown = Set(redisServers.indices)
        postgresExpectedDown = true
        for (node, server) in redisServers.enumerated() {
            let name = redisCluster == nil ? "redis.log" : "redis-node-\(node).log"
            try? FileManager.default.copyItem(atPath: server.dir + "/redis.log", toPath: logDir + "/" + name)
            server.stop()
        }
        postgres.stop()
    }

    /// Removes the servers' temp dirs (their logs are copied into the log dir first).
    func removeTempDirs() {
        for dir in redisDirs + [postgres.dir, dataDir] + [producerDisk?.directory].compactMap({ $0 }) {
            try? FileManager.default.removeItem(atPath: dir)
        }
    }
}

/// A slot migration running on its own thread, and its outcome once it ends.
final class SlotMigration: @unchecked Sendable {
    private let condition = NSCondition()
    private var outcome: (note: String, failure: Error?)?

    func finish(note: String, failure: Error?) {
        condition.lock()
        outcome = (note, failure)
        condition.broadcast()
        condition.unlock()
    }

    func wait() -> (note: String, failure: Error?) {
        condition.lock()
        defer { condition.unlock() }
        while outcome == nil { condition.wait() }
        return outcome!
    }
}

/// Prometheus text to `name -> value`, labels dropped (each listener has one instance).
func parseMetrics(_ text: String) -> [String: Double] {
    var out: [String: Double] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        let name = line.prefix { $0 != "{" && $0 != " " }
        guard let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
        out[String(name)] = value
    }
    return out
}

/// Polls `condition` every 100 ms for up to `seconds`.
func waitFor(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(100_000)
    }
    return condition()
}
