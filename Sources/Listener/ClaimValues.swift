/// The values this listener writes into Redis, and how it reads other listeners' values.
///
/// `event:<id>` holds `c|<instance>|<run>` while claimed (the run tells a restarted
/// instance from its previous life) and `d|<instance>` once done. `progress:<claim>` holds
/// the seq up to which that claimant finished everything it claimed, so losers drop
/// finished events with one read per owner instead of one per event.
struct ClaimValues {
    let claim: [UInt8]
    let done: [UInt8]
    let progressKey: [UInt8]
    /// The instance id as stored in `processed_by`.
    let instance: [UInt8]

    init(instance: String, run: String) {
        self.instance = Array(instance.utf8)
        claim = Array("c|\(instance)|\(run)".utf8)
        done = Array("d|\(instance)".utf8)
        progressKey = Self.progressKey(forClaim: claim)
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

    static func isDone(_ value: [UInt8]) -> Bool { value.first == UInt8(ascii: "d") }

    /// The instance named in a claim or done value (logs).
    static func owner(_ value: [UInt8]) -> String {
        let parts = value.split(separator: UInt8(ascii: "|"))
        return parts.count >= 2 ? String(decoding: parts[1], as: UTF8.self) : String(decoding: value, as: UTF8.self)
    }
}
