import Reactor

/// Membership and the events shared out by rendezvous hashing: our heartbeat (our
/// `MemberState`), reading the other members', and the sweep of the events we hold for
/// them. With every member claiming only its share, a distinct event costs one claim and
/// one done marker in Redis however many listeners run.
extension DedupEngine {
    /// Every event we received in (`receivedFrom`, this] and classified as ours (or took
    /// into any claim) is finished. Deferred events are left out on purpose: counting
    /// them would make each member's proof wait for the others', a chase between members.
    var ownThrough: UInt64 {
        var lowest = tracker.highest + 1
        for seq in incoming.seqs { lowest = min(lowest, seq) }
        for round in claimRounds { lowest = min(lowest, round.minSeq) }
        for round in pendingRounds { lowest = min(lowest, round.minSeq) }
        for batch in work where !batch.stage.isFinished { lowest = min(lowest, batch.minSeq) }
        for seq in watch.events.seqs { lowest = min(lowest, seq) }
        return lowest - 1
    }

    /// Publishes our state (when it changed, and at least every quarter of a claim's
    /// lifetime so it never expires while we live), then reads the members' states.
    /// Busy, every poll tick; idle, every 200 ms, or more often when a quarter of a claim's
    /// lifetime is shorter (our state must be renewed before it expires). While intake is
    /// paused on events held for others, polls follow each other every 2 ms or so instead
    /// (see `membersRead`): the others' proofs are what lets intake go on.
    func pollMembers() {
        guard redisUp, !stopping, !membersPollInFlight else { return }
        let now = loop.nowNanos
        let idleEvery = UInt64(min(200, max(settings.lockTTLMillis / 4, 20))) * 1_000_000
        guard inFlightCount > 0 || now &- lastMembersPoll >= idleEvery else { return }
        lastMembersPoll = now
        heartbeat(now: now)
        membersPollInFlight = true
        redis.command([Array("SMEMBERS".utf8), Membership.setKey]) { [weak self] result in
            guard let self else { return }
            guard case .success(.array(let items)) = result else {
                self.membersPollInFlight = false
                return
            }
            let names = items.compactMap(\.bytes).filter { $0 != self.membership.me }
            guard !names.isEmpty else { return self.membersRead([:], gone: []) }
            self.redis.command([Array("MGET".utf8)] + names.map(Membership.key)) { [weak self] result in
                guard let self else { return }
                guard case .success(.array(let values)) = result else {
                    self.membersPollInFlight = false
                    return
                }
                var states: [[UInt8]: MemberState] = [:]
                var gone: [[UInt8]] = []
                for (name, value) in zip(names, values) {
                    if let bytes = value.bytes {
                        if let state = MemberState(parsing: bytes) { states[name] = state }
                    } else {
                        gone.append(name)
                    }
                }
                self.membersRead(states, gone: gone)
            }
        }
    }

    /// Publishes our state when it changed, and at least every quarter of a claim's
    /// lifetime. Called on the poll tick and as soon as a batch of ours is stored, so the
    /// members holding our events see them finished without waiting for our next tick.
    func heartbeat(now: UInt64) {
        guard redisUp, !stopping else { return }
        let state = membership.state(from: receivedFrom, through: ownThrough, highest: tracker.highest).encoded
        let every = UInt64(max(settings.lockTTLMillis / 4, 20)) * 1_000_000
        guard state != publishedState || now &- lastHeartbeat >= every else { return }
        publishedState = state
        lastHeartbeat = now
        redis.command([Array("SET".utf8), Membership.key(membership.me), state, Array("PX".utf8),
                       Array(String(settings.lockTTLMillis).utf8)]) { _ in }
        // The set needs us back only after our state expired and was pruned, or after Redis
        // lost it: a fifth of a second is soon enough, and every heartbeat would be 2 in 3
        // of our commands while our state changes with every stored batch.
        guard now &- lastJoined >= min(every, 200_000_000) || lastJoined == 0 else { return }
        lastJoined = now
        redis.command([Array("SADD".utf8), Membership.setKey, membership.me]) { _ in }
    }

    private func membersRead(_ states: [[UInt8]: MemberState], gone: [[UInt8]]) {
        membersPollInFlight = false
        // Names whose state expired: their members stopped (or were cut off for a claim's
        // lifetime; they add themselves back with their next heartbeat).
        if !gone.isEmpty { redis.command([Array("SREM".utf8), Membership.setKey] + gone) { _ in } }
        let before = membership.view.hash
        let wasActive = membership.active
        membership.observe(states, nextSeq: nextUnclassifiedSeq, highest: tracker.highest)
        if membership.view.hash != before || membership.active != wasActive {
            let names = membership.view.names.map { String(decoding: $0, as: UTF8.self) }
            let role = membership.active ? "sharing claims" : "taking no share (producer link down, or catching up)"
            logger.info("\(role) among \(names.count) listener(s) on stream \(membership.stream.isEmpty ? "(unknown)" : membership.stream): \(names.joined(separator: ", "))")
        }
        sweepDeferred()
        updateFlow()
        // Paused with events held for others: read their states again shortly rather than
        // on the next tick, since only their proofs let intake go on.
        if !flowOpen && !deferred.isEmpty && !membersPollQueued && !stopping {
            membersPollQueued = true
            loop.schedule(in: .milliseconds(2)) { [weak self] in
                guard let self else { return }
                self.membersPollQueued = false
                self.pollMembers()
            }
        }
    }

    /// Drops the deferred events their member shows finished, and claims those it cannot
    /// vouch for: it left, reads another stream, classified them under another view,
    /// never received them, or has not finished them within a claim's lifetime.
    func sweepDeferred() {
        guard !deferred.isEmpty, !stopping else { return }
        let now = loop.nowNanos
        let patience = UInt64(settings.lockTTLMillis) * 1_000_000
        let stream = membership.stream
        // Looked up once per member, not per event.
        let states = deferred.names.map { name in membership.peers[name].flatMap { $0.stream == stream ? $0 : nil } }
        var claimNow = EventSet()
        var takeOver = EventSet()
        var finished = 0
        let logEach = eventLog.logs(.info)
        defer { metrics.duplicate.add(finished) }
        deferred.sweep({ seq, member, view, since in
            // Asked in place: a copy of the state per event would retain its strings and arrays.
            guard let proof = states[member]?.proof(seq: seq, view: view) else { return .takeOver }
            switch proof {
            case .finished: return .finished
            case .pending: return now &- since < patience ? .hold : .takeOver
            case .unknown: return .claim
            }
        }, whole: { member, view, since, seqs in
            guard let state = states[member] else { return nil }
            // Finished events are logged one by one when each event is logged.
            if !logEach && state.provesFinished(seqs, view: view) { return .finished }
            if now &- since < patience && state.provesPending(seqs, view: view) { return .hold }
            return nil
        }, finished: { events in
            finished += events.count
            tracker.finished(all: events)
        }, removed: { events, i, verdict in
            switch verdict {
            case .finished:
                // The common case, settled in place: nothing copied.
                finished += 1
                tracker.finished(events.seqs[i], generation: events.generations[i])
                if logEach {
                    eventLog.event("duplicate", now: now, "duplicate seq=\(events.seqs[i]) event_id=\(events.idString(i)) (handled by the listener it belongs to)")
                }
            case .claim: takeBack(events, i, into: &claimNow)
            case .takeOver, .hold: takeBack(events, i, into: &takeOver)
            }
        })
        if !claimNow.isEmpty {
            eventLog.event("unpreferred", now: now, "claiming \(claimNow.count) events their preferred listener cannot vouch for (it classified them under another view of the members)")
            claimApart(claimNow, kind: .unpreferred)
        }
        if !takeOver.isEmpty {
            eventLog.event("member-gone", level: .warning, now: now, "taking over \(takeOver.count) events whose preferred listener left or did not finish them within a claim's lifetime")
            claimApart(takeOver, kind: .takeover)
        }
    }

    /// Moves deferred event `index` of `events` into `target`, to claim it here. A line
    /// held unparsed is parsed now; one that turns out malformed is counted and finished
    /// (as a malformed line is when it arrives).
    private func takeBack(_ events: EventSet, _ index: Int, into target: inout EventSet) {
        guard events.isLine(index) else { return target.append(events, index) }
        let seq = events.seqs[index]
        let generation = events.generations[index]
        let before = target.count
        target.generation = generation
        events.withID(index) { id in
            events.withPayload(index) { rest in
                StreamLineParser.restoreLine(seq: seq, acceptedAt: events.acceptedAt[index], id: id, rest: rest, into: scratchLine)
            }
        }
        if let notice = scratchLine.withReadableBytes({ StreamLineParser.parseLine($0, number: 0, into: &target, scratch: &scratchID) }) {
            noted(notice)
        }
        if target.count > before && target.seqs[before] != seq {
            target.removeLast()
            noted(.malformed(line: 0, reason: "seq appears twice"))
        }
        if target.count == before { tracker.finished(seq, generation: generation) }
    }

    /// Our producer link went up or down: while it is down we take no share (the others
    /// claim what they held for us that we never received).
    package func producerLinkChanged(up: Bool) {
        membership.linkUp = up
    }

    /// Stops taking a share: others claim what they held for us at their next poll.
    func leaveMembership() {
        guard redisUp else { return }
        redis.command([Array("DEL".utf8), Membership.key(membership.me)]) { _ in }
        redis.command([Array("SREM".utf8), Membership.setKey, membership.me]) { _ in }
    }
}
