/// Events held together in one byte arena: ids and payloads back to back in one array,
/// with one record of fixed fields per event alongside. Moving events between stages
/// (received, claimed, watched, stored) copies bytes into another set's arena instead of
/// allocating per event; two arrays per set (not one per field) keep the allocations a
/// growing set makes few.
package struct EventSet {
    /// What an event carries besides its bytes.
    package struct Fields {
        var seq: UInt64
        // Int, not Int32: a frame may carry gigabytes in total and nothing from the
        // network is ever truncated.
        var idStart: Int
        var idLength: Int
        var payloadLength: Int
        /// Accept time at the producer (Unix ms; 0 when the line carried none).
        var acceptedAt: Int64
        /// Numbering generation: the producer's seqs can start over (a new stream), and an
        /// event of an older numbering must not finish a seq of the new one.
        var generation: UInt32
        /// A payload that was absent or JSON null (stored as SQL NULL).
        var payloadIsNull: Bool
        /// A claim was sent for it before and its answer never came.
        var attempted: Bool
    }

    private(set) var bytes: [UInt8] = []
    private var fields: [Fields] = []
    /// The generation given to events appended from the network.
    var generation: UInt32 = 0

    package var count: Int { fields.count }
    var isEmpty: Bool { fields.isEmpty }

    package init() {}
    /// Bytes held for ids and payloads (what MAX_IN_FLIGHT_BYTES bounds).
    var byteCount: Int { bytes.count }
    /// Bytes the arena can hold before it grows.
    var byteCapacity: Int { bytes.capacity }

    package var seqs: LazyMapCollection<[Fields], UInt64> { fields.lazy.map { $0.seq } }
    var payloadIsNull: LazyMapCollection<[Fields], Bool> { fields.lazy.map { $0.payloadIsNull } }
    var attempted: LazyMapCollection<[Fields], Bool> { fields.lazy.map { $0.attempted } }
    package var generations: LazyMapCollection<[Fields], UInt32> { fields.lazy.map { $0.generation } }
    var acceptedAt: LazyMapCollection<[Fields], Int64> { fields.lazy.map { $0.acceptedAt } }

    mutating func reserve(events: Int, bytes byteCount: Int) {
        fields.reserveCapacity(events)
        bytes.reserveCapacity(byteCount)
    }

    package mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        fields.removeAll(keepingCapacity: true)
    }

    /// Appends an event; `id` is the decoded event_id, `payload` the payload's JSON text.
    mutating func append(seq: UInt64, id: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, attempted: Bool = false,
                         generation: UInt32? = nil, acceptedAt: Int64 = 0) {
        fields.append(Fields(seq: seq, idStart: bytes.count, idLength: id.count, payloadLength: payload.count,
                             acceptedAt: acceptedAt, generation: generation ?? self.generation,
                             payloadIsNull: payload.count == 4 && payload.elementsEqual("null".utf8), attempted: attempted))
        bytes.append(contentsOf: id)
        bytes.append(contentsOf: payload)
    }

    /// Drops the last event.
    mutating func removeLast() {
        let last = fields.removeLast()
        bytes.removeLast(last.idLength + last.payloadLength)
    }

    /// Appends event `index` of `other`.
    mutating func append(_ other: EventSet, _ index: Int, attempted: Bool? = nil) {
        var copied = other.fields[index]
        copied.idStart = bytes.count
        if let attempted { copied.attempted = attempted }
        other.withID(index) { bytes.append(contentsOf: $0) }
        other.withPayload(index) { bytes.append(contentsOf: $0) }
        fields.append(copied)
    }

    /// Appends the events of `other` at `indexes`.
    mutating func append(_ other: EventSet, _ indexes: Range<Int>) {
        for i in indexes { append(other, i) }
    }

    func withID<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let f = fields[index]
        return try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[f.idStart..<(f.idStart + f.idLength)])) }
    }

    func withPayload<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let f = fields[index]
        let start = f.idStart + f.idLength
        return try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[start..<(start + f.payloadLength)])) }
    }

    /// The event_id as a String (logs and slow paths).
    func idString(_ index: Int) -> String {
        withID(index) { String(decoding: $0, as: UTF8.self) }
    }
}
