/// A FIFO in one power-of-two allocation that grows by doubling and never shrinks: the
/// pending-reply queue costs no allocation per command once it reached its working size
/// (hiredis' own callback list mallocs a node per command; this one does not).
struct RedisRing<Element> {
    private var storage: UnsafeMutablePointer<Element>
    private var capacity: Int
    private var head = 0
    private(set) var count = 0

    init(capacity: Int = 64) {
        var size = 16
        while size < capacity { size <<= 1 }
        self.capacity = size
        storage = .allocate(capacity: size)
    }

    /// Frees the storage; call once, from the owner's deinit.
    mutating func destroy() {
        removeAll()
        storage.deallocate()
        capacity = 0
    }

    var isEmpty: Bool { count == 0 }

    /// The oldest element.
    var first: Element? { count == 0 ? nil : storage[head] }

    /// Reads the oldest element in place without copying it out.
    func withFirst<R>(_ body: (Element) -> R) -> R? {
        count == 0 ? nil : body(storage[head])
    }

    /// The element `offset` places after the oldest one (0 is the oldest).
    subscript(offset: Int) -> Element {
        get {
            precondition(offset >= 0 && offset < count, "RedisRing index out of range")
            return storage[(head + offset) & (capacity - 1)]
        }
        nonmutating _modify {
            precondition(offset >= 0 && offset < count, "RedisRing index out of range")
            yield &storage[(head + offset) & (capacity - 1)]
        }
    }

    mutating func append(_ element: Element) {
        if count == capacity { grow() }
        (storage + ((head + count) & (capacity - 1))).initialize(to: element)
        count += 1
    }

    mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = (storage + head).move()
        head = (head + 1) & (capacity - 1)
        count -= 1
        return element
    }

    mutating func removeAll() {
        while popFirst() != nil {}
        head = 0
    }

    private mutating func grow() {
        let newCapacity = capacity * 2
        let newStorage = UnsafeMutablePointer<Element>.allocate(capacity: newCapacity)
        let firstRun = min(count, capacity - head)
        newStorage.moveInitialize(from: storage + head, count: firstRun)
        if firstRun < count {
            (newStorage + firstRun).moveInitialize(from: storage, count: count - firstRun)
        }
        storage.deallocate()
        storage = newStorage
        capacity = newCapacity
        head = 0
    }
}
