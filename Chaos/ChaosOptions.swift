import Foundation
import TestSupport

/// The command line of `Chaos`.
struct ChaosOptions: Sendable {
    /// Picks the fault schedule and the published stream; printed at the start.
    var seed: UInt64 = UInt64.random(in: 1...999_999)
    /// Seconds of the fault phase (publishing goes on throughout).
    var seconds = 60.0
    var listeners = 3
    /// The fault kinds to draw from; nil: every kind the binaries support.
    var faults: [FaultKind]?
    /// Events published per second.
    var rate = 1_000
    /// Largest batch per request.
    var maxBatch = 40
    var lockTTLMillis = 1_500
    /// The listeners' PROCESS_DELAY_MS: claims held that long per batch, so a kill or a
    /// pause finds claimed, unstored events to take over.
    var processDelayMillis = 100
    /// Seconds between one fault's start and the next's, drawn uniformly from this range.
    var gap: ClosedRange<Double> = 1.0...4.0
    /// Seconds to wait, after healing, for everything accepted to be stored.
    var drainSeconds = 90.0
    var output = ".build/chaos"
    var binDir: String?
    var logLevel = "info"
    /// Bounds on resident memory, in MiB.
    var maxListenerRSSMiB = 512
    var maxProducerRSSMiB = 2_048
    /// Print the schedule and exit.
    var dryRun = false
    /// Redis as a Redis Cluster (3 masters, a replica each) instead of one server.
    var redisCluster = false
    /// A negative control: the listeners' PostgreSQL sessions at `synchronous_commit=off`,
    /// so a PostgreSQL crash loses rows it confirmed, and the checker must report them lost.
    var postgresAsyncCommit = false
    /// Masters of the cluster `--redis-cluster` starts.
    static let clusterMasters = 3
    /// The masters the schedule draws from: 0 without a cluster.
    var redisNodes: Int { redisCluster ? Self.clusterMasters : 0 }

    static let usage = """
        usage: Chaos [options]
          Starts Redis, PostgreSQL, the producer and N listeners (each listener link through a
          TCP fault proxy), publishes a seeded stream with duplicates, republished ids and
          poison events, injects a seeded fault schedule, heals, drains and checks that every
          acknowledged event is stored exactly once. Exits 1 on any violation.

          --seed N             schedule and stream seed (default: random, printed at the start)
          --seconds S          length of the fault phase (default 60)
          --listeners N        listener processes (default 3)
          --faults K,K,...     fault kinds to draw from, or "all" or "none" (default: all the
                               binaries support; producer-kill needs a producer with --data-dir)
          --rate R             events published per second (default 1000)
          --max-batch N        largest batch per publish request (default 40)
          --lock-ttl-ms MS     the listeners' LOCK_TTL_MS (default 1500)
          --process-delay-ms MS  the listeners' PROCESS_DELAY_MS: claims held that long per batch,
                               so kills and pauses leave claimed events to take over (default 100)
          --gap MIN,MAX        seconds between fault starts, drawn uniformly (default 1,4)
          --drain-seconds S    after healing, how long everything may take to be stored (default 90)
          --output DIR         JSON report, SVG timeline and logs (default .build/chaos)
          --bin-dir DIR        use DIR/producer and DIR/listener as they are (default: build
                               the release ones; env DEDUP_CHAOS_BIN_DIR)
          --log-level L        the listeners' LOG_LEVEL (default info)
          --max-listener-rss-mib N   memory bound per listener (default 512)
          --max-producer-rss-mib N   memory bound of the producer (default 2048)
          --redis-cluster      Redis as a Redis Cluster of 3 masters with a replica each
                               (append-only files): redis faults hit one master, masters
                               fail over, slots move mid-stream, and the listeners reach
                               the nodes directly (no Redis link faults)
          --postgres-async-commit  a negative control: the listeners' PostgreSQL sessions at
                               synchronous_commit=off, so a postgres-restart loses rows already
                               confirmed and marked done; the run must FAIL with lost ids
          --dry-run            print the schedule for the seed and exit
          --help               this text

        fault kinds:
        """ + "\n" + FaultKind.allCases.map { "  " + $0.rawValue.padding(toLength: 23, withPad: " ", startingAt: 0) + $0.summary }
        .joined(separator: "\n")

    /// Parses the arguments, or returns an error line naming the bad one.
    static func parse(_ arguments: [String]) -> Result<ChaosOptions, ChaosUsageError> {
        var options = ChaosOptions()
        var allFaults = false
        var i = 0
        func value(_ name: String) throws(ChaosUsageError) -> String {
            i += 1
            guard i < arguments.count else { throw ChaosUsageError("\(name) needs a value (see --help)") }
            return arguments[i]
        }
        func number<T: LosslessStringConvertible & Comparable>(_ name: String, _ range: ClosedRange<T>) throws(ChaosUsageError) -> T {
            let text = try value(name)
            guard let n = T(text), range.contains(n) else { throw ChaosUsageError("\(name) must be in \(range.lowerBound)...\(range.upperBound), got '\(text)'") }
            return n
        }
        do throws(ChaosUsageError) {
            while i < arguments.count {
                let arg = arguments[i]
                switch arg {
                case "--seed": options.seed = try number(arg, 0...UInt64.max)
                case "--seconds": options.seconds = try number(arg, 5.0...86_400)
                case "--listeners": options.listeners = try number(arg, 1...20)
                case "--rate": options.rate = try number(arg, 1...100_000)
                case "--max-batch": options.maxBatch = try number(arg, 1...1_000)
                case "--lock-ttl-ms": options.lockTTLMillis = try number(arg, 100...60_000)
                case "--gap":
                    let text = try value(arg)
                    let parts = text.split(separator: ",").compactMap { Double($0) }
                    guard parts.count == 2, parts[0] >= 0.1, parts[1] >= parts[0] else {
                        throw ChaosUsageError("--gap must be MIN,MAX seconds with 0.1 <= MIN <= MAX, got '\(text)'")
                    }
                    options.gap = parts[0]...parts[1]
                case "--process-delay-ms": options.processDelayMillis = try number(arg, 0...60_000)
                case "--drain-seconds": options.drainSeconds = try number(arg, 5.0...3_600)
                case "--output": options.output = try value(arg)
                case "--bin-dir": options.binDir = try value(arg)
                case "--log-level": options.logLevel = try value(arg)
                case "--max-listener-rss-mib": options.maxListenerRSSMiB = try number(arg, 16...65_536)
                case "--max-producer-rss-mib": options.maxProducerRSSMiB = try number(arg, 16...65_536)
                case "--dry-run": options.dryRun = true
                case "--redis-cluster": options.redisCluster = true
                case "--postgres-async-commit": options.postgresAsyncCommit = true
                case "--faults":
                    let text = try value(arg)
                    if text == "all" { allFaults = true } else if text == "none" { options.faults = [] } else {
                        var kinds: [FaultKind] = []
                        for name in text.split(separator: ",") {
                            guard let kind = FaultKind(rawValue: String(name)) else {
                                throw ChaosUsageError("unknown fault kind '\(name)'; kinds: \(FaultKind.allCases.map(\.rawValue).joined(separator: ", "))")
                            }
                            kinds.append(kind)
                        }
                        options.faults = kinds
                    }
                case "--help", "-h": throw ChaosUsageError.help
                default: throw ChaosUsageError("unknown argument '\(arg)' (see --help)")
                }
                i += 1
            }
            if allFaults { options.faults = FaultKind.allCases.filter { !$0.needsRedisCluster || options.redisCluster } }
            if !options.redisCluster, let needing = options.faults?.first(where: \.needsRedisCluster) {
                throw ChaosUsageError("\(needing.rawValue) needs --redis-cluster")
            }
        } catch {
            return .failure(error)
        }
        return .success(options)
    }

    /// The fault kinds this run draws from, given what the producer supports.
    func kinds(producerHasDataDir: Bool, canCompile: Bool = FailingDisk.canBuild) -> [FaultKind] {
        if let faults { return faults }
        return FaultKind.allCases.filter {
            (!$0.needsDurableProducer || producerHasDataDir) && (!$0.needsRedisCluster || redisCluster)
                && (!$0.needsCompiler || canCompile)
        }
    }
}

/// A bad command line (or `--help`).
struct ChaosUsageError: Error {
    let message: String
    init(_ message: String) { self.message = message }
    static let help = ChaosUsageError("")
    var isHelp: Bool { message.isEmpty }
}
