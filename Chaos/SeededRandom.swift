/// A small deterministic generator (SplitMix64): the same seed gives the same faults and
/// the same published stream on every machine and Swift version, which the standard
/// library's generator does not promise.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64

    /// A generator for `seed`; `stream` separates independent sequences (schedule,
    /// workload) so adding a draw to one never shifts the other.
    init(seed: UInt64, stream: UInt64 = 0) {
        state = seed &+ stream &* 0xD1B5_4A32_D192_ED03
    }

    /// The next 64 random bits.
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in `range` (both ends included).
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        // Multiply-shift (the top bits of a 128-bit product): our own arithmetic, so the
        // draws never change with the standard library's algorithm.
        let width = UInt64(range.upperBound - range.lowerBound) &+ 1
        if width == 0 { return Int(bitPattern: UInt(next())) }
        return range.lowerBound + Int(next().multipliedFullWidth(by: width).high)
    }

    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool {
        Double(next() >> 11) / Double(1 << 53) < p
    }

    /// One element of a non-empty array.
    mutating func pick<T>(_ items: [T]) -> T {
        items[int(0...(items.count - 1))]
    }
}
