/// One fault of a schedule: what, on whom, when and for how long.
struct FaultEpisode: Sendable, Codable, Equatable {
    /// Position in the schedule, for reports.
    var index: Int
    var kind: FaultKind
    /// Seconds after the fault phase began.
    var start: Double
    /// How long the fault lasts (a pause, a down time); zero for instant faults.
    var duration: Double
    /// The listener slot a process or link fault hits.
    var listener: Int?
    /// The link a link fault hits.
    var link: LinkName?
    /// link-latency: the added delay in milliseconds.
    var latencyMillis: Int?
    /// listener-kill/term: restart with a fresh INSTANCE_ID instead of the same one.
    var newInstanceID: Bool?
    /// link-cut: how many requests lose their reply.
    var cuts: Int?
    /// With a Redis Cluster: which master (by its place among the masters as they are when
    /// the fault begins) a redis-restart, redis-wipe, redis-failover or redis-pause hits, or the one a
    /// redis-slot-migrate moves slots to.
    var node: Int?
    /// redis-slot-migrate: the first slot of the run moved, and how many.
    var firstSlot: Int?
    var slotCount: Int?

    /// The thing this fault holds, so two faults on it never overlap.
    var resource: String {
        switch kind {
        case .listenerKill, .listenerStop, .listenerTerm: return "listener-\(listener ?? 0)"
        case .producerKill, .producerStop, .producerDiskFail: return "producer"
        case .redisRestart, .redisWipe, .redisSlotMigrate, .redisFailover, .redisPause: return "redis"
        case .postgresRestart, .postgresFastRestart, .postgresPause: return "postgres"
        case .linkReset, .linkBlackhole, .linkLatency, .linkCut: return "link-\(listener ?? 0)-\(link?.rawValue ?? "")"
        }
    }

    /// "listener-stop L1 2.1s", for the live line and reports.
    var label: String {
        var text = kind.rawValue
        if let listener { text += " L\(listener)" }
        if let link { text += "/\(link.rawValue)" }
        if let node { text += " node \(node)" }
        if let firstSlot, let slotCount { text += " slots \(firstSlot)-\(firstSlot + slotCount - 1)" }
        if let latencyMillis { text += " +\(latencyMillis)ms" }
        if newInstanceID == true { text += " new-id" }
        if duration > 0 { text += " " + formatSeconds(duration) }
        return text
    }
}

/// A reproducible fault schedule: a pure function of the seed and the settings, drawn
/// before anything runs (as Jepsen's generators are), so a failing seed replays the same
/// faults at the same offsets.
struct FaultSchedule: Sendable, Codable {
    var episodes: [FaultEpisode]

    /// Draws a schedule for a fault phase of `seconds`, with every fault ending `quiet`
    /// seconds before the phase ends, the gaps between fault starts uniform in `gap`.
    /// `redisNodes` is the number of masters of a Redis Cluster, 0 for one Redis; a run
    /// without a cluster draws what it drew before clusters existed, so old seeds replay.
    static func generate(seed: UInt64, seconds: Double, kinds: [FaultKind], listeners: Int,
                         lockTTLMillis: Int, gap: ClosedRange<Double> = 1.0...4.0, quiet: Double = 2,
                         redisNodes: Int = 0) -> FaultSchedule {
        var rng = SeededRandom(seed: seed, stream: 1)
        var episodes: [FaultEpisode] = []
        guard !kinds.isEmpty, listeners > 0 else { return FaultSchedule(episodes: []) }
        var busyUntil: [String: Double] = [:]
        let lockTTL = Double(lockTTLMillis) / 1000
        var t = uniform(&rng, 0.5...gap.upperBound)
        while t < seconds - quiet {
            var episode = FaultEpisode(index: episodes.count, kind: rng.pick(kinds), start: t, duration: 0)
            switch episode.kind {
            case .listenerKill, .listenerTerm:
                episode.listener = rng.int(0...(listeners - 1))
                episode.duration = uniform(&rng, 0...3)
                episode.newInstanceID = rng.chance(0.3)
            case .listenerStop:
                episode.listener = rng.int(0...(listeners - 1))
                episode.duration = lockTTL + uniform(&rng, 0.3...3)
            case .producerKill:
                episode.duration = uniform(&rng, 0...2)
            case .redisRestart, .redisWipe:
                episode.duration = uniform(&rng, 0.2...3)
                if redisNodes > 0 { episode.node = rng.int(0...(redisNodes - 1)) }
            case .redisPause:
                episode.duration = uniform(&rng, 2.5...6)
                if redisNodes > 0 { episode.node = rng.int(0...(redisNodes - 1)) }
            case .redisFailover:
                episode.duration = uniform(&rng, 0.5...3)
                episode.node = rng.int(0...max(redisNodes - 1, 0))
            case .redisSlotMigrate:
                episode.duration = uniform(&rng, 1...4)
                episode.node = rng.int(0...max(redisNodes - 1, 0))
                episode.slotCount = rng.int(1...6)
                episode.firstSlot = rng.int(0...(16_384 - episode.slotCount!))
            case .postgresRestart:
                episode.duration = uniform(&rng, 0.2...3)
            case .producerStop, .postgresPause, .producerDiskFail:
                episode.duration = uniform(&rng, 0.5...6)
            case .postgresFastRestart, .linkReset:
                break
            case .linkBlackhole:
                episode.duration = uniform(&rng, 0.5...5)
            case .linkLatency:
                episode.duration = uniform(&rng, 1...5)
                episode.latencyMillis = rng.int(20...400)
            case .linkCut:
                episode.duration = uniform(&rng, 1...4)
                episode.cuts = rng.int(1...2)
            }
            if episode.kind.rawValue.hasPrefix("link-") {
                episode.listener = rng.int(0...(listeners - 1))
                episode.link = rng.pick(LinkName.proxied(redisCluster: redisNodes > 0))
            }
            episode.duration = (episode.duration * 10).rounded() / 10
            episode.start = (t * 10).rounded() / 10
            // A fault whose resource is still held, or that would outlast the phase, is
            // dropped rather than moved: the draws stay the same either way.
            let end = episode.start + episode.duration
            if busyUntil[episode.resource, default: -1] < episode.start, end <= seconds - quiet {
                busyUntil[episode.resource] = end + 0.5
                episodes.append(episode)
            }
            t += uniform(&rng, gap)
        }
        return FaultSchedule(episodes: episodes)
    }

    private static func uniform(_ rng: inout SeededRandom, _ range: ClosedRange<Double>) -> Double {
        range.lowerBound + (range.upperBound - range.lowerBound) * Double(rng.next() >> 11) / Double(1 << 53)
    }
}

/// "2.5s".
func formatSeconds(_ seconds: Double) -> String {
    let tenths = Int((seconds * 10).rounded())
    return "\(tenths / 10).\(tenths % 10)s"
}
