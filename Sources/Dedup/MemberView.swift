/// One listener's view of the live members on its stream, and rendezvous hashing of
/// event ids over them: every member with the same view computes the same preferred
/// member for an id, and a member joining or leaving moves only its own share of ids.
package struct MemberView: Equatable {
    /// Member names, sorted (so equal sets give equal views).
    package let names: [[UInt8]]
    /// Identifies the set: equal hashes mean the same names.
    package let hash: UInt64
    private let seeds: [UInt64]

    package init(names: [[UInt8]]) {
        self.names = names.sorted { $0.lexicographicallyPrecedes($1) }
        seeds = self.names.map { name in name.withUnsafeBytes { Self.fnv1a($0) } }
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for name in self.names {
            hash = name.withUnsafeBytes { Self.fnv1a($0, from: hash) }
            hash = Self.fnv1a(UnsafeRawBufferPointer(start: nil, count: 0), from: hash ^ 0x0A)
        }
        self.hash = hash
    }

    /// The index in `names` of the member preferred for `id`: the highest score of the
    /// id's hash mixed with each member's seed (no allocation).
    package func preferred(for id: UnsafeRawBufferPointer) -> Int {
        if seeds.count == 1 { return 0 }
        let key = Self.fnv1a(id)
        var best = 0
        var bestScore: UInt64 = 0
        for (index, seed) in seeds.enumerated() {
            let score = Self.mix(key ^ seed)
            if index == 0 || score > bestScore {
                best = index
                bestScore = score
            }
        }
        return best
    }

    static func fnv1a(_ bytes: UnsafeRawBufferPointer, from start: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 {
        var hash = start
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }

    /// SplitMix64's finalizer: spreads FNV's weak low bits over the whole word.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
