import CAllocCounter

/// Exact heap allocations made by `body`, per iteration: the benchmarks' allocation gate
/// (like NIO's mallocCountTotal). Counts come from CAllocCounter's malloc interposer.
struct AllocationCount {
    let allocations: UInt64
    let bytes: UInt64

    static func now() -> AllocationCount {
        AllocationCount(allocations: CAllocCounter_allocations(), bytes: CAllocCounter_bytes())
    }

    /// Allocations since `earlier`, divided by `per`.
    func perItem(since earlier: AllocationCount, items per: Int) -> (allocations: Double, bytes: Double) {
        let n = Double(max(per, 1))
        return (Double(allocations - earlier.allocations) / n, Double(bytes - earlier.bytes) / n)
    }
}

/// Runs `body` and returns allocations and bytes per item.
func measureAllocations(items: Int, _ body: () -> Void) -> (allocations: Double, bytes: Double) {
    let before = AllocationCount.now()
    body()
    return AllocationCount.now().perItem(since: before, items: items)
}
