import EventLog

/// The last `capacity` events, as their NDJSON lines, in one preallocated byte arena:
/// no allocation per event, and the bytes broadcast live are the very bytes replayed.
///
/// Each line is `{"seq":N,` + the event's encoded rest + `\n`, stored contiguously; a
/// line that would straddle the arena's end starts over at its beginning instead, so
/// consecutive lines are contiguous except across that one wrap. An event leaves the ring
/// when `capacity` newer ones exist or its bytes are needed for a newer line.
final class ReplayRing {
    /// Most events kept.
    let capacity: Int
    /// Arena size in bytes.
    let arenaSize: Int
    private let arena: UnsafeMutableRawPointer
    /// Absolute byte position of each retained line, by `seq % capacity`.
    private let starts: UnsafeMutablePointer<UInt64>
    /// Length of each retained line including its `\n`.
    private let lengths: UnsafeMutablePointer<UInt32>
    /// Oldest retained seq (meaningful when `count > 0`).
    private(set) var firstSeq: UInt64 = 1
    /// Newest seq, 0 before the first event.
    private(set) var lastSeq: UInt64 = 0
    /// Absolute position where the next line goes; `% arenaSize` is the offset.
    private var head: UInt64 = 0

    /// `arenaSize` bounds the bytes; no line may exceed a quarter of it. The first line
    /// appended gets seq `after + 1` (seqs continue the durable log's).
    init(capacity: Int, arenaSize: Int, after: UInt64 = 0) {
        precondition(capacity > 0 && arenaSize >= 4096)
        self.capacity = capacity
        self.arenaSize = arenaSize
        lastSeq = after
        firstSeq = after + 1
        arena = .allocate(byteCount: arenaSize, alignment: 64)
        starts = .allocate(capacity: capacity)
        lengths = .allocate(capacity: capacity)
    }

    deinit {
        arena.deallocate()
        starts.deallocate()
        lengths.deallocate()
    }

    /// Largest line the ring accepts.
    var maxLineBytes: Int { arenaSize / 4 }

    /// Events retained.
    var count: Int { lastSeq >= firstSeq ? Int(lastSeq - firstSeq + 1) : 0 }

    /// Bytes of arena the retained lines span.
    var retainedBytes: Int { count == 0 ? 0 : Int(head - starts[slot(firstSeq)]) }

    @inline(__always) private func slot(_ seq: UInt64) -> Int { Int(seq % UInt64(capacity)) }

    private static let prefix: StaticString = "{\"seq\":"

    private static func decimalDigits(_ value: UInt64) -> Int {
        var n = 1
        var v = value
        while v >= 10 { v /= 10; n += 1 }
        return n
    }

    /// Appends the line for the next seq and returns that seq. `rest` is everything after
    /// `{"seq":N,` up to and including the closing brace.
    @discardableResult
    func append(rest: UnsafeRawBufferPointer) -> UInt64 {
        let seq = lastSeq + 1
        let digits = Self.decimalDigits(seq)
        let length = Self.prefix.utf8CodeUnitCount + digits + 1 + rest.count + 1
        precondition(length <= maxLineBytes, "event line larger than the replay arena allows")
        var position = head
        let offset = Int(position % UInt64(arenaSize))
        if offset + length > arenaSize { position += UInt64(arenaSize - offset) }
        if count == capacity { firstSeq += 1 }
        let end = position + UInt64(length)
        while count > 0 && starts[slot(firstSeq)] + UInt64(arenaSize) < end { firstSeq += 1 }
        if count == 0 { firstSeq = seq }

        var out = arena + Int(position % UInt64(arenaSize))
        out.copyMemory(from: Self.prefix.utf8Start, byteCount: Self.prefix.utf8CodeUnitCount)
        out += Self.prefix.utf8CodeUnitCount
        var v = seq
        for i in stride(from: digits - 1, through: 0, by: -1) {
            out.storeBytes(of: UInt8(truncatingIfNeeded: v % 10) &+ 48, toByteOffset: i, as: UInt8.self)
            v /= 10
        }
        out += digits
        out.storeBytes(of: UInt8(ascii: ","), as: UInt8.self)
        out += 1
        if rest.count > 0 { out.copyMemory(from: rest.baseAddress!, byteCount: rest.count) }
        out += rest.count
        out.storeBytes(of: UInt8(ascii: "\n"), as: UInt8.self)

        starts[slot(seq)] = position
        lengths[slot(seq)] = UInt32(length)
        head = end
        lastSeq = seq
        return seq
    }

    /// Appends one line per payload of a durable group, in seq order.
    func append(_ entries: LogEntries) {
        entries.bytes.withUnsafeBytes { raw in
            var offset = 0
            for length in entries.lengths {
                append(rest: UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + length)]))
                offset += length
            }
        }
    }

    /// The longest run of consecutive lines starting at `seq` that is contiguous in the
    /// arena and at most `maxBytes` long (always at least one line), without the final
    /// `\n`: ready to be one WebSocket text frame. `seq` must be retained.
    func run(from seq: UInt64, maxBytes: Int) -> (bytes: UnsafeRawBufferPointer, lastSeq: UInt64) {
        precondition(seq >= firstSeq && seq <= lastSeq, "seq \(seq) is not retained")
        let start = starts[slot(seq)]
        var end = start + UInt64(lengths[slot(seq)])
        var last = seq
        while last < lastSeq {
            let next = last + 1
            let nextStart = starts[slot(next)]
            let nextEnd = nextStart + UInt64(lengths[slot(next)])
            // Contiguous in absolute positions is not enough: a line that ended exactly at
            // the arena's end is followed by one at its beginning.
            if nextStart != end || nextStart % UInt64(arenaSize) == 0 || nextEnd - start > UInt64(maxBytes) { break }
            end = nextEnd
            last = next
        }
        let pointer = UnsafeRawPointer(arena + Int(start % UInt64(arenaSize)))
        return (UnsafeRawBufferPointer(start: pointer, count: Int(end - start) - 1), last)
    }

    /// True when `seq` can still be replayed.
    func retains(_ seq: UInt64) -> Bool { count > 0 && seq >= firstSeq && seq <= lastSeq }
}
