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
/// is lost, and every so often (with the clients' backoff) while not every slot is served.
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
    public private(set) var state: RedisClient.State = .connecting
    /// The last node, slot map or connection error, kept after recovery for `/health`.
    public private(set) var lastError: String?
    /// Called on the loop when the cluster goes up, goes down (once per outage) or is closed.
    public var onStateChange: ((RedisClient.State, String?) -> Void)?
    /// Slot maps applied so far.
    public private(set) var slotMapUpdates = 0
    /// `MOVED` and `ASK` redirections followed so far (a migration or a stale map at work).
    public private(set) var redirections = 0

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
    private var lanes: [String: RedisClusterLane] = [:]
    /// Lanes out of the map that still wait for replies.
    private var retiring: [ObjectIdentifier: RedisClusterLane] = [:]
    /// The lane of every slot.
    private var owners: [RedisClusterLane?]
    private var masters: [RedisClusterLane] = []
    private var coveredSlots = 0
    private var nextKeyless = 0
    private let failFast: Bool
    private let laneConfiguration: RedisClient.Configuration
    private let commandTimeoutNanos: UInt64

    /// Encodes commands that no lane can take yet.
    private let encoder = RESPEncoder()
    /// Commands waiting for a slot map (or for their slot to get a master), in order.
    private var waiting: [HeldCommand] = []
    private var waitingTimer: TimerHandle?
    /// Commands answered TRYAGAIN, sent again when `retryTimer` fires.
    private var delayed: [HeldCommand] = []
    private var retryTimer: TimerHandle?

    private var refreshing = false
    private var refreshAgain = false
    private var refreshTimer: TimerHandle?
    private var backoff: Backoff
    /// A connection opened to a seed only to read the map (when no master is up).
    private var probe: RedisClient?
    private var nextCandidate = 0
    private var reportedState: RedisClient.State?

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
    private func keylessLane() -> RedisClusterLane? {
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
    private func resubmit(_ command: HeldCommand) {
        if let lane = route(command.slot) {
            command.bytes.withUnsafeBytes { lane.client.encoder.appendEncoded($0) }
            lane.submit(command.completion, slot: command.slot, redirects: command.redirects)
        } else {
            command.bytes.withUnsafeBytes { hold($0, command.completion, slot: command.slot, redirects: command.redirects, deadline: command.deadline) }
        }
    }

    /// Keeps a command no lane can take until the map names its master, by the while-down
    /// policy; errors are reported after the current batch, like `RedisClient`'s.
    private func hold(_ bytes: UnsafeRawBufferPointer, _ completion: RedisCompletion, slot: Int, redirects: Int, deadline: UInt64) {
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

    private func failSoon(_ completion: RedisCompletion, _ error: RedisError) {
        loop.executeSoon { RedisClient.fail(completion, error) }
    }

    // MARK: redirections (called by lanes)

    /// The lane a `MOVED` or `ASK` names; `MOVED` also moves the slot there in the map and
    /// asks for the whole map again.
    func redirected(_ redirect: RedisRedirect, from source: RedisClusterLane) -> RedisClusterLane {
        redirections += 1
        let target = lane(host: redirect.host.isEmpty ? source.client.url.host : redirect.host, port: redirect.port)
        if redirect.kind == .moved {
            if owners[redirect.slot] == nil { coveredSlots += 1 }
            owners[redirect.slot] = target
            if !masters.contains(where: { $0 === target }) { masters.append(target) }
            refreshSlots()
        }
        return target
    }

    /// A command answered TRYAGAIN: its keys are split by a migration that will finish soon.
    func retryLater(_ bytes: [UInt8], _ completion: RedisCompletion, slot: Int, redirects: Int) {
        delayed.append(HeldCommand(bytes: bytes, completion: completion, slot: slot, redirects: redirects,
                                   deadline: monotonicNanos() &+ commandTimeoutNanos))
        guard retryTimer == nil else { return }
        retryTimer = loop.schedule(in: .milliseconds(20)) { [weak self] in
            guard let self else { return }
            self.retryTimer = nil
            let due = self.delayed
            self.delayed = []
            for command in due { self.resubmit(command) }
        }
    }

    /// A command a retired lane never sent: to the slot's master in the new map.
    func reroute(_ bytes: [UInt8], _ completion: RedisCompletion, slot: Int, redirects: Int) {
        resubmit(HeldCommand(bytes: bytes, completion: completion, slot: slot, redirects: redirects,
                             deadline: monotonicNanos() &+ commandTimeoutNanos))
    }

    /// A retired lane closed.
    func laneClosed(_ lane: RedisClusterLane) {
        retiring[ObjectIdentifier(lane)] = nil
    }

    // MARK: lanes

    private func lane(host: String, port: Int) -> RedisClusterLane {
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        if let lane = lanes[address] { return lane }
        let seed = seeds[0]
        let url = RedisURL(host: host, port: port, username: seed.username, password: seed.password)
        let lane = RedisClusterLane(address: address, client: RedisClient(loop: loop, url: url, configuration: laneConfiguration), cluster: self)
        lane.client.onStateChange = { [weak self, unowned lane] state, error in
            self?.laneStateChanged(lane, state, error)
        }
        lanes[address] = lane
        return lane
    }

    private func laneStateChanged(_ lane: RedisClusterLane, _ state: RedisClient.State, _ error: String?) {
        guard lanes[lane.address] === lane else { return }
        if state == .down {
            lastError = "\(lane.address): \(error ?? "connection lost")"
            refreshSlots()
        }
        updateState()
    }

    // MARK: slot map

    /// Asks a master that is up (or, when none is, a seed) for the slot map; one request at
    /// a time, and one more after it when asked again meanwhile.
    func refreshSlots() {
        guard state != .closed else { return }
        if refreshing {
            refreshAgain = true
            return
        }
        refreshing = true
        if let timer = refreshTimer {
            loop.cancel(timer)
            refreshTimer = nil
        }
        let up = masters.filter { $0.client.isUp }
        if !up.isEmpty {
            nextCandidate &+= 1
            let lane = up[nextCandidate % up.count]
            let host = lane.client.url.host, address = lane.address
            lane.client.command(["CLUSTER", "SLOTS"]) { [weak self] result in
                self?.slotsAnswered(result, host: host, address: address)
            }
            return
        }
        probeNextCandidate()
    }

    /// Opens a connection to the next seed (or known master) only to read the map.
    private func probeNextCandidate() {
        var candidates = seeds
        for lane in masters where !candidates.contains(where: { $0.host == lane.client.url.host && $0.port == lane.client.url.port }) {
            candidates.append(lane.client.url)
        }
        let url = candidates[nextCandidate % candidates.count]
        nextCandidate &+= 1
        var probeConfiguration = configuration
        probeConfiguration.whileDown = .queue(limit: 1)
        let probe = RedisClient(loop: loop, url: url, configuration: probeConfiguration)
        self.probe = probe
        let id = ObjectIdentifier(probe), address = "\(url.host):\(url.port)"
        probe.onStateChange = { [weak self] state, error in
            guard let self, state == .down, self.probe.map(ObjectIdentifier.init) == id else { return }
            self.slotsAnswered(.failure(.notConnected(error ?? "connection lost")), host: url.host, address: address)
        }
        probe.command(["CLUSTER", "SLOTS"]) { [weak self] result in
            guard let self, self.probe.map(ObjectIdentifier.init) == id else { return }
            self.slotsAnswered(result, host: url.host, address: address)
        }
    }

    private func slotsAnswered(_ result: Result<RedisReply, RedisError>, host: String, address: String) {
        guard state != .closed else { return }
        if let probe {
            self.probe = nil
            probe.onStateChange = nil
            probe.close()
        }
        refreshing = false
        let map: RedisSlotMap
        do {
            map = try RedisSlotMap(clusterSlots: result.get())
        } catch {
            // Try the next candidate after a pause: a node that cannot answer now is no
            // reason to ask the others in a tight loop.
            lastError = "slot map from \(address): \(error)"
            refreshAgain = false
            if state == .connecting { setState(.down) }
            updateState()
            return
        }
        apply(map, askedHost: host)
        if refreshAgain {
            refreshAgain = false
            refreshSlots()
        }
    }

    private func apply(_ map: RedisSlotMap, askedHost: String) {
        var newOwners = [RedisClusterLane?](repeating: nil, count: RedisSlot.count)
        var newMasters: [RedisClusterLane] = []
        var covered = 0
        for range in map.ranges {
            let lane = self.lane(host: range.host.isEmpty ? askedHost : range.host, port: range.port)
            if !newMasters.contains(where: { $0 === lane }) { newMasters.append(lane) }
            for slot in range.slots {
                if newOwners[slot] == nil { covered += 1 }
                newOwners[slot] = lane
            }
        }
        owners = newOwners
        masters = newMasters
        coveredSlots = covered
        slotMapUpdates += 1
        for (address, lane) in lanes where !newMasters.contains(where: { $0 === lane }) {
            lanes[address] = nil
            retiring[ObjectIdentifier(lane)] = lane
            lane.retire()
        }
        if !waiting.isEmpty {
            let held = waiting
            waiting = []
            for command in held { resubmit(command) }
        }
        updateState()
    }

    // MARK: state

    private func updateState() {
        guard state != .closed else { return }
        if isUp {
            backoff.reset()
            setState(.up)
        } else {
            if state == .up { setState(.down) }
            scheduleRefresh()
        }
    }

    /// While some slot is not served, the map is read again with the clients' backoff: a
    /// failover or a restarted node shows up there.
    private func scheduleRefresh() {
        guard refreshTimer == nil, !refreshing, state != .closed else { return }
        refreshTimer = loop.schedule(in: backoff.nextDelay()) { [weak self] in
            guard let self else { return }
            self.refreshTimer = nil
            self.refreshSlots()
        }
    }

    private func setState(_ new: RedisClient.State) {
        guard new != state else { return }
        state = new
        guard state != .connecting, state != reportedState, onStateChange != nil else { return }
        reportedState = state
        let snapshot = state, error = lastError
        loop.executeSoon { [weak self] in self?.onStateChange?(snapshot, error) }
    }

    // MARK: timeouts of held commands

    private func armWaitingTimer() {
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
private struct HeldCommand {
    var bytes: [UInt8]
    var completion: RedisCompletion
    var slot: Int
    var redirects: Int
    var deadline: UInt64
}
