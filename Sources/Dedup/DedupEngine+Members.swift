import Reactor

/// Membership and the seqs held for the claimer: our heartbeat (our `MemberState`),
/// reading the other members', the sweep of what we hold, and rewinds. With one member
/// claiming, a distinct event costs one claim and one done marker in Redis however many
/// listeners run.
extension DedupEngine {
    /// Every event we received in (`receivedFrom`, this] and classified as ours (or took
    /// into any claim) is finished. Deferred events are left out on purpose: counting
    /// them would make each member's proof wait for the others', a chase between members.
    var ownThrough: UInt64 {
        var lowest = tracker.highest + 1
        for seq in incoming.seqs { lowest = min(lowest, seq) }
        for seq in rewound.seqs { lowest = min(lowest, seq) }
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
            var formerLives: [[UInt8]] = []
            let names = items.compactMap(\.bytes).filter { name in
                guard name != self.membership.me else { return false }
                // A previous life of this instance (one instance id runs once): gone.
                guard self.membership.isFormerLife(name) else { return true }
                formerLives.append(name)
                return false
            }
            if !formerLives.isEmpty {
                self.redis.command([Array("DEL".utf8)] + formerLives.map(Membership.key)) { _ in }
                self.redis.command([Array("SREM".utf8), Membership.setKey] + formerLives) { _ in }
            }
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
        // A view not updated for long (we were paused, or Redis was away) says nothing
        // true of us any more: we say we take no part until the members are read again,
        // so that nobody waits on us, nor hands us the claims, in the meantime.
        if now &- lastObserved > UInt64(max(settings.lockTTLMillis / 2, 40)) * 1_000_000 { membership.goStale() }
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
        // As old as the question: states read before a pause are no fresher after it.
        lastObserved = lastMembersPoll
        metrics.claiming.set(membership.claims ? 1 : 0)
        heartbeat(now: loop.nowNanos)
        if membership.view.hash != before || membership.active != wasActive {
            let names = membership.view.names.map { String(decoding: $0, as: UTF8.self) }
            let claimer = names[membership.view.claimer]
            let role = !membership.active ? "taking no part (producer link down, or catching up), holding for \(claimer)"
                : membership.claims ? "claiming" : "holding for \(claimer)"
            logger.info("\(role) among \(names.count) listener(s) on stream \(membership.stream.isEmpty ? "(unknown)" : membership.stream): \(names.joined(separator: ", "))")
        }
        sweepHeld()
        updateFlow()
        // Paused with seqs held for others: read their states again shortly rather than
        // on the next tick, since only their proofs let intake go on.
        if !flowOpen && !held.isEmpty && !membersPollQueued && !stopping {
            membersPollQueued = true
            loop.schedule(in: .milliseconds(2)) { [weak self] in
                guard let self else { return }
                self.membersPollQueued = false
                self.pollMembers()
            }
        }
    }

    /// Drops the held ranges the claimer shows finished. A range it cannot vouch for (it
    /// left, reads another stream, did not claim then, never received the seqs, or has not
    /// finished them within a claim's lifetime) makes us rewind to before it and claim
    /// what the producer sends again.
    func sweepHeld() {
        guard !held.isEmpty, !stopping else { return }
        let now = loop.nowNanos
        let patience = UInt64(settings.lockTTLMillis) * 1_000_000
        let stream = membership.stream
        // Looked up once per member, not per range.
        let states = held.names.map { name in membership.peers[name].flatMap { $0.stream == stream ? $0 : nil } }
        let before = held.count
        var why = ""
        var claimThrough = tracker.highest
        let names = held.names
        let recoverFrom = held.sweep { member, view, since, seqs in
            let verdict: HeldRanges.Verdict
            var reason = ""
            if let state = states[member] {
                switch state.proof(seqs: seqs) {
                case .finished: verdict = .finished
                case .pending:
                    verdict = now &- since < patience ? .hold : .recover
                    reason = "has not finished them within a claim's lifetime"
                case .unknown:
                    verdict = .recover
                    reason = !state.active ? "takes no part" : seqs.lowerBound <= state.from ? "did not receive them in its life"
                        : "did not claim them (it saw another claimer)"
                }
            } else {
                verdict = .recover
                reason = "is gone or reads another stream"
            }
            if verdict == .recover {
                if why.isEmpty {
                    why = "\(String(decoding: names[member], as: UTF8.self)) \(reason) (seqs \(seqs.lowerBound)-\(seqs.upperBound))"
                }
                // Up to where it vouches again, holding for it would only rewind again.
                if let from = states[member]?.vouchesFrom, from > 0 { claimThrough = max(claimThrough, from - 1) }
            }
            return verdict
        }
        metrics.duplicate.add(before - held.count)
        if let recoverFrom { rewind(before: recoverFrom, claimingThrough: claimThrough, because: why) }
    }

    /// Asks the producer again for every event from `seq` on that is not in our hands,
    /// and claims each one it sends again whatever our view says (`SET NX` decides, as
    /// always: what the other members finished meets its done marker); so too every new
    /// event up to `claimThrough` (a claimer that vouches only from further on). Our saved
    /// watermark never passed a held seq, so a crash before the rewind loses nothing
    /// either. At most one rewind per 200 ms: a member that cannot vouch for one range
    /// usually cannot for the next few either, and one rewind covers them all.
    func rewind(before seq: UInt64, claimingThrough: UInt64, because why: String) {
        let now = loop.nowNanos
        guard !stopping, now &- lastRewind >= 200_000_000 || lastRewind == 0 else { return }
        claimThrough = max(claimThrough, claimingThrough)
        let to = min(seq - 1, tracker.watermark)
        let through = tracker.highest
        guard tracker.rewind(to: to) else { return }
        lastRewind = now
        held.removeAll()
        // Frames of seqs sent again would arrive below the samples taken: start over.
        arrivals.reset()
        metrics.rewinds.add()
        logger.warning("rewinding to seq \(to): listener \(why); claiming seqs \(to + 1)-\(max(through, claimThrough)) not in hand as the producer sends them again")
        awaitingRewind = onRewind != nil
        onRewind?()
    }

    /// The producer link resumed after a rewind (or never had to).
    package func rewindDone() {
        awaitingRewind = false
    }

    /// The watermark we vouch for: every seq at or below it is finished, by us or (for
    /// the seqs we held for other members) by its member. What we save and report.
    package var safeWatermark: UInt64 {
        guard let lowest = held.lowest else { return tracker.watermark }
        return min(tracker.watermark, lowest - 1)
    }

    /// Our producer link went up or down: while it is down we take no part (if we
    /// claimed, the next in line claims, and the others rewind over what we never
    /// received).
    package func producerLinkChanged(up: Bool) {
        membership.linkUp = up
    }

    /// Stops taking part: if we claimed, the others take over at their next poll.
    func leaveMembership() {
        guard redisUp else { return }
        redis.command([Array("DEL".utf8), Membership.key(membership.me)]) { _ in }
        redis.command([Array("SREM".utf8), Membership.setKey, membership.me]) { _ in }
    }
}
