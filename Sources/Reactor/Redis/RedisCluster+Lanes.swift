/// The lanes, one per master, and what they report: redirections, lost connections, and
/// commands to send again.
extension RedisClusterClient {
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

    func lane(host: String, port: Int) -> RedisClusterLane {
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

    func laneStateChanged(_ lane: RedisClusterLane, _ state: RedisClient.State, _ error: String?) {
        guard lanes[lane.address] === lane else { return }
        if state == .down {
            lastError = "\(lane.address): \(error ?? "connection lost")"
            refreshSlots()
        }
        updateState()
    }
}
