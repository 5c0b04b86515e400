/// Reading the slot map: from a master that is up, or from a seed through a connection
/// opened for the purpose; applied whole, with lanes for new masters and retirement for
/// the ones it no longer names.
extension RedisClusterClient {
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
    func probeNextCandidate() {
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

    func slotsAnswered(_ result: Result<RedisReply, RedisError>, host: String, address: String) {
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

    func apply(_ map: RedisSlotMap, askedHost: String) {
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

    /// While some slot is not served, the map is read again with the clients' backoff: a
    /// failover or a restarted node shows up there.
    func scheduleRefresh() {
        guard refreshTimer == nil, !refreshing, state != .closed else { return }
        refreshTimer = loop.schedule(in: backoff.nextDelay()) { [weak self] in
            guard let self else { return }
            self.refreshTimer = nil
            self.refreshSlots()
        }
    }
}
