/// A first-in, first-out queue over one array with a moving head, compacted now and then:
/// appending and popping never shift the whole array, so a long queue drains in linear
/// time. Popped slots are cleared at once, so the queue holds no reference it gave up.
public struct HeadQueue<Element> {
    private var items: [Element?] = []
    private var head = 0

    public init() {}

    public var count: Int { items.count - head }
    public var isEmpty: Bool { head == items.count }
    public var first: Element? { isEmpty ? nil : items[head] }

    public mutating func append(_ element: Element) {
        items.append(element)
    }

    /// Puts an element back at the front (a retry keeps its place in line).
    public mutating func prepend(_ element: Element) {
        if head > 0 {
            head -= 1
            items[head] = element
        } else {
            items.insert(element, at: 0)
        }
    }

    /// Changes the first element in place (no-op when empty).
    public mutating func updateFirst(_ body: (inout Element) -> Void) {
        guard !isEmpty else { return }
        body(&items[head]!)
    }

    @discardableResult
    public mutating func popFirst() -> Element? {
        guard head < items.count else { return nil }
        let element = items[head]
        items[head] = nil
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return element
    }

    /// Empties the queue and returns what it held, in order.
    public mutating func removeAll() -> [Element] {
        let all = items[head...].compactMap { $0 }
        items.removeAll(keepingCapacity: true)
        head = 0
        return all
    }

    /// Removes and returns, in order, the elements `shouldRemove` picks; the rest keep
    /// their order.
    public mutating func removeAll(where shouldRemove: (Element) -> Bool) -> [Element] {
        var removed: [Element] = []
        var kept: [Element?] = []
        for case let element? in items[head...] {
            if shouldRemove(element) { removed.append(element) } else { kept.append(element) }
        }
        guard !removed.isEmpty else { return [] }
        items = kept
        head = 0
        return removed
    }
}
