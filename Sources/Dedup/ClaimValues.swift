import Glibc

/// The values this listener writes into Redis, and how it reads other listeners' values.
///
/// `event:<id>` holds a claim value while claimed and `d|<instance>` once done. A claim
/// value is `c|<instance>|<run>|<scope>`: the run tells a restarted instance from its
/// previous life, and the scope tells apart the sets of claims whose progress can be
/// proven with one number. Live claims (`L<n>`) are taken in increasing seq order, so
/// `progress:<claim>` (the seq up to which everything claimed under that value is
/// finished) only ever grows for them; a new producer stream starts a new live scope
/// because its seqs start over. Every recovery round gets a scope of its own (`R<n>`),
/// because it claims old seqs that a live mark already passed: a watcher never reads a
/// mark that does not cover exactly the claims it watches. A scope that is closed (a
/// recovery round, or a live scope whose stream ended) gets the final mark "finished"
/// once none of its claims is in our hands.
struct ClaimValues {
    /// The instance id as stored in `processed_by`.
    let instance: [UInt8]
    let done: [UInt8]
    /// `c|<instance>|<run>|`: every claim value of this process starts with it.
    let runPrefix: [UInt8]
    /// The claim value of live (in seq order) claims.
    private(set) var live: [UInt8]
    private(set) var liveProgressKey: [UInt8]
    private var liveScope = 1
    private var recoveryScope = 0

    init(instance: String, run: String) {
        self.instance = Array(instance.utf8)
        done = Array("d|\(instance)".utf8)
        runPrefix = Array("c|\(instance)|\(run)|".utf8)
        live = runPrefix + Array("L1".utf8)
        liveProgressKey = Self.progressKey(forClaim: live)
    }

    /// Starts a new live scope (the producer's seqs started over).
    mutating func startLiveScope() {
        liveScope += 1
        live = runPrefix + Array("L\(liveScope)".utf8)
        liveProgressKey = Self.progressKey(forClaim: live)
    }

    /// A claim value never used before, for one recovery round.
    mutating func makeRecoveryClaim() -> [UInt8] {
        recoveryScope += 1
        return runPrefix + Array("R\(recoveryScope)".utf8)
    }

    /// Whether `holder` is a claim value of this process (any scope).
    func isOurs(_ holder: UnsafeRawBufferPointer) -> Bool {
        holder.count > runPrefix.count && runPrefix.withUnsafeBytes { prefix in
            memcmp(prefix.baseAddress!, holder.baseAddress!, prefix.count) == 0
        }
    }

    static let eventKeyPrefix: [UInt8] = Array("event:".utf8)

    /// `event:<id>` written into `out` (reused: no allocation once it is big enough).
    static func eventKey(_ id: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: eventKeyPrefix)
        out.append(contentsOf: id)
    }

    static func progressKey(forClaim claim: [UInt8]) -> [UInt8] {
        Array("progress:".utf8) + claim
    }

    /// What an owner writes into its progress key when it gave its claims back (shutdown):
    /// watchers take those events over at once instead of waiting for the claims to expire.
    static let releasedMark: [UInt8] = Array("released".utf8)

    /// The final mark of a closed scope (a recovery round, or the live scope of a stream
    /// that ended) once none of its claims is in our hands: every key that held the value
    /// was stored, so it covers any copy of those ids, whatever its seq. (A seq bound
    /// would not: a watcher may hold a later copy of an id than the one claimed.)
    static let finishedMark: [UInt8] = Array("finished".utf8)

    static func isDone(_ value: [UInt8]) -> Bool { value.first == UInt8(ascii: "d") }
    static func isDone(_ value: UnsafeRawBufferPointer) -> Bool { value.first == UInt8(ascii: "d") }

    /// The instance named in a claim or done value (logs).
    static func owner(_ value: [UInt8]) -> String {
        let parts = value.split(separator: UInt8(ascii: "|"))
        return parts.count >= 2 ? String(decoding: parts[1], as: UTF8.self) : String(decoding: value, as: UTF8.self)
    }
}
