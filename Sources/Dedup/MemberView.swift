/// One listener's view of the live members on its stream, and which of them claims: the
/// one taking part longest (the earliest `MemberState.activeSince`, then the lowest
/// name). Every member with the same view picks the same claimer, and a member joining
/// (or coming back) never takes the claims over: only the claimer leaving or falling
/// behind moves them, to the next in line.
///
/// One claimer, not a share per member: on a machine whose cores the listeners share,
/// every member that claims adds its own PostgreSQL session, Redis round trips and loop
/// turns, and four sharing claims stored less than one claiming alone. The others hold
/// only seqs (`HeldRanges`), at a tenth of a microsecond per event, and take over from
/// the producer's log when the claimer cannot vouch for what they held.
package struct MemberView: Equatable {
    /// Member names, sorted (so equal sets give equal views).
    package let names: [[UInt8]]
    /// Identifies the set: equal hashes mean the same names.
    package let hash: UInt64
    /// The index in `names` of the claimer.
    package let claimer: Int

    /// `started` gives when each name started taking part (milliseconds since the Unix epoch).
    package init(names: [[UInt8]], started: [[UInt8]: UInt64] = [:]) {
        self.names = names.sorted { $0.lexicographicallyPrecedes($1) }
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for name in self.names {
            hash = name.withUnsafeBytes { Self.fnv1a($0, from: hash) }
            hash = Self.fnv1a(UnsafeRawBufferPointer(start: nil, count: 0), from: hash ^ 0x0A)
        }
        self.hash = hash
        // Names are sorted: the first of the earliest start wins ties.
        var oldest = 0
        for index in self.names.indices.dropFirst()
        where started[self.names[index], default: .max] < started[self.names[oldest], default: .max] {
            oldest = index
        }
        claimer = oldest
    }

    static func fnv1a(_ bytes: UnsafeRawBufferPointer, from start: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 {
        var hash = start
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }
}
