import Foundation
import Glibc
import TestSupport

/// A fault as it happened: the planned episode and when it really began and ended (a
/// restart takes time, so ends drift a little from the plan).
struct FaultRecord: Sendable, Codable {
    var episode: FaultEpisode
    /// Seconds since the run began.
    var began: Double?
    var ended: Double?
    /// What the fault did beyond its plan, e.g. the new INSTANCE_ID, or an error.
    var note: String = ""
}

/// Plays a fault schedule against the cluster from its own thread: each episode begins
/// at its offset from the start of the fault phase and ends `duration` later.
final class Nemesis: @unchecked Sendable {
    private let cluster: Cluster
    private let clock: RunClock
    private let lock = NSLock()
    private var records: [FaultRecord]
    private var thread: Thread?
    private var done = false
    private var cancelled = false

    init(cluster: Cluster, schedule: FaultSchedule, clock: RunClock) {
        self.cluster = cluster
        self.clock = clock
        records = schedule.episodes.map { FaultRecord(episode: $0) }
    }

    /// The faults so far (and the planned ones, not begun).
    var snapshot: [FaultRecord] {
        lock.lock()
        defer { lock.unlock() }
        return records
    }

    /// Begins the schedule with its offsets counted from now.
    func start() {
        let origin = clock.now
        // One list of steps, begins and ends, in time order; a begin sorts before an end at
        // the same time only when it belongs to an earlier episode.
        var plan: [(time: Double, index: Int, begin: Bool)] = []
        for (index, record) in records.enumerated() {
            plan.append((origin + record.episode.start, index, true))
            plan.append((origin + record.episode.start + record.episode.duration, index, false))
        }
        plan.sort { ($0.time, $0.begin ? 0 : 1, $0.index) < ($1.time, $1.begin ? 0 : 1, $1.index) }
        let steps = plan
        let thread = Thread { [self] in
            for step in steps {
                while clock.now < step.time {
                    if isCancelled { break }
                    usleep(UInt32(min(0.05, max(0.001, step.time - clock.now)) * 1e6))
                }
                if isCancelled { break }
                apply(index: step.index, begin: step.begin)
            }
            lock.lock()
            done = true
            lock.unlock()
        }
        thread.name = "chaos-nemesis"
        self.thread = thread
        thread.start()
    }

    /// Stops beginning faults and waits for the step in progress (the caller heals).
    func cancelAndWait() {
        lock.lock()
        cancelled = true
        lock.unlock()
        while !isDone { usleep(10_000) }
    }

    /// Waits until every step has run.
    func waitUntilDone() {
        while !isDone { usleep(50_000) }
    }

    private var isDone: Bool {
        lock.lock()
        defer { lock.unlock() }
        return done || thread == nil
    }

    private var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return cancelled
    }

    private func apply(index: Int, begin: Bool) {
        let episode = records[index].episode
        let at = clock.now
        var note = ""
        do {
            if begin { note = try self.begin(episode) } else { note = try end(episode) }
        } catch {
            note = "failed: \(error)"
            cluster.incident("nemesis: \(episode.label) \(begin ? "begin" : "end") failed: \(error)")
        }
        lock.lock()
        if begin { records[index].began = at } else { records[index].ended = clock.now }
        if !note.isEmpty { records[index].note += (records[index].note.isEmpty ? "" : "; ") + note }
        lock.unlock()
    }

    private func proxy(_ episode: FaultEpisode) -> FaultProxy {
        cluster.slots[episode.listener ?? 0].proxies[episode.link ?? .redis]!
    }

    private func begin(_ episode: FaultEpisode) throws -> String {
        let slot = episode.listener ?? 0
        switch episode.kind {
        case .listenerKill:
            let id = cluster.slots[slot].current?.instanceID ?? "?"
            cluster.endListener(slot, signal: SIGKILL, reason: "sigkill")
            return "killed \(id)"
        case .listenerTerm:
            let id = cluster.slots[slot].current?.instanceID ?? "?"
            let status = cluster.endListener(slot, signal: SIGTERM, reason: "sigterm")
            return "terminated \(id), status \(status.map(String.init) ?? "?")"
        case .listenerStop:
            cluster.pauseListener(slot, true)
        case .producerKill:
            cluster.killProducer()
        case .producerStop:
            cluster.pauseProducer(true)
        case .producerDiskFail:
            cluster.failProducerDisk(true)
        case .redisRestart, .redisWipe:
            return try cluster.stopRedis(wipe: episode.kind == .redisWipe, shard: episode.node ?? 0)
        case .redisFailover:
            return try cluster.failOver(shard: episode.node ?? 0)
        case .redisPause:
            return try cluster.pauseRedis(shard: episode.node ?? 0)
        case .redisSlotMigrate:
            try cluster.beginSlotMigration(first: episode.firstSlot ?? 0, count: episode.slotCount ?? 1, toShard: episode.node ?? 0)
        case .postgresRestart:
            cluster.stopPostgres()
        case .postgresFastRestart:
            cluster.stopPostgres()
            try cluster.startPostgres()
        case .postgresPause:
            return cluster.pausePostgres(true)
        case .linkReset:
            proxy(episode).resetAll()
        case .linkBlackhole:
            proxy(episode).blackhole(true)
        case .linkLatency:
            proxy(episode).latency(.milliseconds(episode.latencyMillis ?? 100))
        case .linkCut:
            proxy(episode).armCutBeforeNextReply(times: episode.cuts ?? 1)
            // A listener sends the producer nothing once subscribed: reset the link so its
            // reconnect is the request whose answer (the 101) is lost.
            if episode.link == .producer { proxy(episode).resetAll() }
        }
        return ""
    }

    private func end(_ episode: FaultEpisode) throws -> String {
        let slot = episode.listener ?? 0
        switch episode.kind {
        case .listenerKill, .listenerTerm:
            try cluster.startListener(slot, newInstanceID: episode.newInstanceID ?? false)
            return "restarted as \(cluster.slots[slot].current?.instanceID ?? "?")"
        case .listenerStop:
            cluster.pauseListener(slot, false)
        case .producerKill:
            try cluster.startProducer()
        case .producerStop:
            cluster.pauseProducer(false)
        case .producerDiskFail:
            cluster.failProducerDisk(false)
        case .postgresPause:
            return cluster.pausePostgres(false)
        case .redisRestart, .redisWipe, .redisFailover:
            try cluster.startRedis(shard: episode.node ?? 0)
        case .redisPause:
            return try cluster.resumeRedis(shard: episode.node ?? 0)
        case .redisSlotMigrate:
            return try cluster.finishSlotMigration()
        case .postgresRestart:
            try cluster.startPostgres()
        case .postgresFastRestart, .linkReset:
            break
        case .linkBlackhole:
            proxy(episode).blackhole(false)
        case .linkLatency:
            proxy(episode).latency(.zero)
        case .linkCut:
            let fired = proxy(episode).stats.cutsFired
            proxy(episode).disarmCut()
            return "cuts fired on this proxy so far: \(fired)"
        }
        return ""
    }
}
