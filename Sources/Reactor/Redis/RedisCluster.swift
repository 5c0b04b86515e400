/// A pipelining Redis Cluster client on one event loop: one `RedisClient` per master, every
/// command sent to the master that serves its key's slot.
///
/// It starts from one or more seed nodes and reads the slot map with `CLUSTER SLOTS` from
/// the first that answers (a dead seed costs one refused connect). Each master gets its
/// own `RedisClient`, with its pipelining, reconnects, command timeout and while-down
/// policy; the nodes it finds use the seeds' credentials (the first seed's user name and
/// password) and database 0, the only one a cluster has.
///
/// Redirections are followed without the caller seeing them: `MOVED` updates the map for
/// that slot, sends the command again to the named node and refreshes the whole map in the
/// background; `ASK` sends `ASKING` and the command to the named node once (the slot is
/// being migrated), without touching the map; `TRYAGAIN` (a multi-key command whose keys a
/// migration has split) sends it again shortly. After `maxRedirects` redirections a
/// command fails with the last one. The map is also refreshed when a master's connection
/// is lost, and every so often (with the clients' backoff) while not every slot is served;
/// when a failover gives a dead master's slots to its replica, the commands that were
/// waiting for the dead master (never sent) go to the new one.
///
/// Completions keep `RedisClient`'s contract: each command completes exactly once, on the
/// loop; a command whose connection is lost fails with that error (it may have run, so the
/// caller decides whether to retry), exactly as with a single node. Commands to the same
/// slot keep their order unless a migration moves them.
///
/// Multi-key commands (MGET, DEL with several keys, EVAL with several KEYS) must have all
/// their keys in one slot: give them a common hash tag (`{user1}:a`, `{user1}:b`). The
/// argument-array `command` checks this for the commands whose keys it knows and fails
/// with a `CROSSSLOT` server error at once; any other cross-slot command is refused by the
/// node with the same error.
///
/// `isUp` is true when every one of the 16,384 slots has a master whose connection is up;
/// `onStateChange` reports up, down (once per outage) and closed, like `RedisClient`'s.
///
/// Not Sendable: create and use it on its loop's thread.
public final class RedisClusterClient {
    /// Redirections one command may follow before it fails with the last one.
    public static let maxRedirects = 5

    /// The loop everything runs on.
    public let loop: EventLoop
    /// Where the slot map is read first.
    public let seeds: [RedisURL]
    /// Timeouts and policies, for every node's client.
    public let configuration: RedisClient.Configuration
    /// Current state: up when every slot is served by an up connection.
    public internal(set) var state: RedisClient.State = .connecting
    /// The last node, slot map or connection error, kept after recovery for `/health`.
    public internal(set) var lastError: String?
    /// Called on the loop when the cluster goes up, goes down (once per outage) or is closed.
    public var onStateChange: ((RedisClient.State, String?) -> Void)?
    /// Slot maps applied so far.
    public internal(set) var slotMapUpdates = 0
    /// `MOVED` and `ASK` redirections followed so far (a migration or a stale map at work).
    public internal(set) var redirections = 0

    /// True when every slot has a master whose connection is up.
    public var isUp: Bool {
        guard state != .closed, coveredSlots == RedisSlot.count else { return false }
        for lane in masters where !lane.client.isUp { return false }
        return true
    }

    /// The masters of the current map, as "host:port", sorted.
    public var masterAddresses: [String] { masters.map(\.address).sorted() }

    /// The master `key`'s commands go to now ("host:port"), nil while its slot has none.
    public func masterAddress<K: RedisArgument>(forKey key: K) -> String? {
        owners[RedisSlot.of(key)]?.address
    }

    /// Master lanes by address; a lane leaves when the map no longer names it.
    var lanes: [String: RedisClusterLane] = [:]
    /// Lanes out of the map that still wait for replies.
    var retiring: [ObjectIdentifier: RedisClusterLane] = [:]
    /// The lane of every slot.
    var owners: [RedisClusterLane?]
    var masters: [RedisClusterLane] = []
    var coveredSlots = 0
    var nextKeyless = 0
    let failFast: Bool
    let laneConfiguration: RedisClient.Configuration
    let commandTimeoutNanos: UInt64

    /// Encodes commands that no lane can take yet.
    let encoder = RESPEncoder()
    /// Commands waiting for a slot map (or for their slot to get a master), in order.
    var waiting: [HeldCommand] = []
    var waitingTimer: TimerHandle?
    /// Commands answered TRYAGAIN, sent again when `retryTimer` fires.
    var delayed: [HeldCommand] = []
    var retryTimer: TimerHandle?

    var refreshing = false
    var refreshAgain = false
    var refreshTimer: TimerHandle?
    var backoff: Backoff
    /// A connection opened to a seed only to read the map (when no master is up).
    var probe: RedisClient?
    var nextCandidate = 0
    var reportedState: RedisClient.State?

    /// Creates the client and starts reading the slot map at once. Call on the loop's thread.
    public init(loop: EventLoop, seeds: [RedisURL], configuration: RedisClient.Configuration = RedisClient.Configuration()) {
        precondition(!seeds.isEmpty, "RedisClusterClient needs at least one seed")
        self.loop = loop
        self.seeds = seeds
        self.configuration = configuration
        owners = Array(repeating: nil, count: RedisSlot.count)
        failFast = configuration.whileDown == .failFast
        var lane = configuration
        // A command redirected to a node still connecting waits for it even under failFast:
        // failing fast applies to where the caller sends, checked before a lane is chosen.
        if failFast { lane.whileDown = .queue(limit: 100_000) }
        laneConfiguration = lane
        commandTimeoutNanos = max(configuration.commandTimeout.nanoseconds, 1_000_000)
        backoff = Backoff(initial: configuration.reconnectDelay, maximum: configuration.maxReconnectDelay)
        refreshSlots()
    }

    deinit {
        for timer in [waitingTimer, retryTimer, refreshTimer] { if let timer { loop.cancel(timer) } }
        if let probe {
            probe.onStateChange = nil
            probe.close()
        }
        // Dropped without close(): the lanes' connections must still go (a lane and its
        // client hold each other while commands are pending).
        for lane in Array(lanes.values) + Array(retiring.values) {
            lane.cluster = nil
            lane.client.onStateChange = nil
            lane.client.close()
        }
    }

    /// Stops for good: waiting and pending commands complete with `RedisError.closed` and
    /// every connection is closed.
    public func close() {
        guard state != .closed else { return }
        setState(.closed)
        for timer in [waitingTimer, retryTimer, refreshTimer] { if let timer { loop.cancel(timer) } }
        waitingTimer = nil
        retryTimer = nil
        refreshTimer = nil
        if let probe {
            self.probe = nil
            probe.onStateChange = nil
            probe.close()
        }
        let held = waiting + delayed
        waiting = []
        delayed = []
        for command in held { RedisClient.fail(command.completion, .closed) }
        let all = Array(lanes.values) + Array(retiring.values)
        lanes = [:]
        retiring = [:]
        owners = Array(repeating: nil, count: RedisSlot.count)
        masters = []
        coveredSlots = 0
        for lane in all {
            // Replies already read in this batch still arrive; a redirection among them
            // completes with `closed` instead of reaching a client that may be gone.
            lane.cluster = nil
            lane.client.onStateChange = nil
            lane.client.close()
        }
    }

    // MARK: routing

    /// The lane that takes a command for `slot` (-1: keyless) now, or nil when it must wait
    /// (no master known, or failFast and the master is down).
    @inline(__always)
    func route(_ slot: Int) -> RedisClusterLane? {
        let lane = slot >= 0 ? owners[slot] : keylessLane()
        guard let lane, !failFast || lane.client.isUp else { return nil }
        return lane
    }

    /// Keyless commands take turns over the masters that are up.
    func keylessLane() -> RedisClusterLane? {
        guard !masters.isEmpty else { return nil }
        for _ in 0..<masters.count {
            nextKeyless &+= 1
            let lane = masters[nextKeyless % masters.count]
            if lane.client.isUp { return lane }
        }
        return masters[nextKeyless % masters.count]
    }

    /// The encoder to write a command for `lane` into.
    @inline(__always)
    func commandEncoder(for lane: RedisClusterLane?) -> RESPEncoder {
        lane?.client.encoder ?? encoder
    }

    /// Sends the command just encoded into `commandEncoder(for: lane)`.
    @inline(__always)
    func send(_ completion: RedisCompletion, slot: Int, via lane: RedisClusterLane?) {
        if let lane {
            lane.submit(completion, slot: slot)
        } else {
            hold(encoder.bytes, completion, slot: slot, redirects: 0, deadline: monotonicNanos() &+ commandTimeoutNanos)
            encoder.reset()
        }
    }

    /// Sends already-encoded bytes for `slot`, or holds them.
    func resubmit(_ command: HeldCommand) {
        if let lane = route(command.slot) {
            command.bytes.withUnsafeBytes { lane.client.encoder.appendEncoded($0) }
            lane.submit(command.completion, slot: command.slot, redirects: command.redirects)
        } else {
            command.bytes.withUnsafeBytes { hold($0, command.completion, slot: command.slot, redirects: command.redirects, deadline: command.deadline) }
        }
    }

    /// Keeps a command no lane can take until the map names its master, by the while-down
    /// policy; errors are reported after the current batch, like `RedisClient`'s.
    func hold(_ bytes: UnsafeRawBufferPointer, _ completion: RedisCompletion, slot: Int, redirects: Int, deadline: UInt64) {
        if state == .closed { return failSoon(completion, .closed) }
        switch configuration.whileDown {
        case .failFast:
            let why = slot >= 0 ? "no master up for slot \(slot)" : "no cluster node up"
            failSoon(completion, .notConnected(lastError.map { "\(why): \($0)" } ?? why))
        case .queue(let limit):
            guard waiting.count < limit else { return failSoon(completion, .queueFull(limit: limit)) }
            waiting.append(HeldCommand(bytes: Array(bytes), completion: completion, slot: slot, redirects: redirects, deadline: deadline))
            armWaitingTimer()
            refreshSlots()
        }
    }

    func failSoon(_ completion: RedisCompletion, _ error: RedisError) {
        loop.executeSoon { RedisClient.fail(completion, error) }
    }

    // MARK: state

    func updateState() {
        guard state != .closed else { return }
        if isUp {
            backoff.reset()
            setState(.up)
        } else {
            if state == .up { setState(.down) }
            scheduleRefresh()
        }
    }

    func setState(_ new: RedisClient.State) {
        guard new != state else { return }
        state = new
        guard state != .connecting, state != reportedState, onStateChange != nil else { return }
        reportedState = state
        let snapshot = state, error = lastError
        loop.executeSoon { [weak self] in self?.onStateChange?(snapshot, error) }
    }

    // MARK: timeouts of held commands

    func armWaitingTimer() {
        guard waitingTimer == nil, let next = waiting.lazy.map(\.deadline).min() else { return }
        waitingTimer = loop.schedule(atNanos: next) { [weak self] in
            guard let self else { return }
            self.waitingTimer = nil
            let now = monotonicNanos()
            let ms = Int(self.commandTimeoutNanos / 1_000_000)
            let expired = self.waiting.filter { $0.deadline <= now }
            self.waiting.removeAll { $0.deadline <= now }
            for command in expired { RedisClient.fail(command.completion, .timedOut(milliseconds: ms)) }
            self.armWaitingTimer()
        }
    }
}

/// A command the cluster client keeps itself: waiting for a map, or for a TRYAGAIN retry.
struct HeldCommand {
    var bytes: [UInt8]
    var completion: RedisCompletion
    var slot: Int
    var redirects: Int
    var deadline: UInt64
}
