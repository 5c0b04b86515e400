/// A scheduled callback. Keep it to cancel; it is inert once fired or cancelled.
public final class TimerHandle {
    let deadline: UInt64
    let sequence: UInt64
    var callback: (() -> Void)?
    /// Position in the heap, or -1 when not scheduled: this is what makes cancel O(log n).
    var heapIndex = -1

    init(deadline: UInt64, sequence: UInt64, callback: @escaping () -> Void) {
        self.deadline = deadline
        self.sequence = sequence
        self.callback = callback
    }

    /// True until the timer fires or is cancelled.
    public var isScheduled: Bool { heapIndex >= 0 }

    /// The monotonic deadline in nanoseconds.
    public var deadlineNanos: UInt64 { deadline }
}

/// A binary min-heap of timers ordered by (deadline, sequence), so timers with equal
/// deadlines fire in the order they were scheduled (libuv's timer heap).
struct TimerHeap {
    private(set) var items: [TimerHandle] = []
    private var nextSequence: UInt64 = 0

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }
    var earliest: TimerHandle? { items.first }

    mutating func makeTimer(deadline: UInt64, callback: @escaping () -> Void) -> TimerHandle {
        nextSequence &+= 1
        let timer = TimerHandle(deadline: deadline, sequence: nextSequence, callback: callback)
        insert(timer)
        return timer
    }

    mutating func insert(_ timer: TimerHandle) {
        timer.heapIndex = items.count
        items.append(timer)
        siftUp(items.count - 1)
    }

    /// Removes `timer` wherever it sits; a no-op for timers not in the heap.
    mutating func remove(_ timer: TimerHandle) {
        let index = timer.heapIndex
        guard index >= 0, index < items.count, items[index] === timer else { return }
        let last = items.count - 1
        if index != last {
            swapAt(index, last)
        }
        items.removeLast()
        timer.heapIndex = -1
        if index < items.count {
            siftDown(index)
            siftUp(index)
        }
    }

    /// Removes and returns the earliest timer if its deadline is at or before `now`.
    mutating func popExpired(now: UInt64) -> TimerHandle? {
        guard let first = items.first, first.deadline <= now else { return nil }
        remove(first)
        return first
    }

    private static func precedes(_ a: TimerHandle, _ b: TimerHandle) -> Bool {
        a.deadline < b.deadline || (a.deadline == b.deadline && a.sequence < b.sequence)
    }

    private mutating func swapAt(_ i: Int, _ j: Int) {
        items.swapAt(i, j)
        items[i].heapIndex = i
        items[j].heapIndex = j
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.precedes(items[child], items[parent]) else { return }
            swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        let n = items.count
        while true {
            let left = 2 * parent + 1
            guard left < n else { return }
            var smallest = left
            let right = left + 1
            if right < n && Self.precedes(items[right], items[left]) { smallest = right }
            guard Self.precedes(items[smallest], items[parent]) else { return }
            swapAt(smallest, parent)
            parent = smallest
        }
    }
}
