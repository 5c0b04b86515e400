/// Events held together in one byte arena: ids and payloads back to back in one array,
/// with seqs and ranges alongside. Moving events between stages (received, claimed,
/// watched, stored) copies bytes into another set's arena instead of allocating per event.
struct EventSet {
    private(set) var bytes: [UInt8] = []
    private(set) var seqs: [UInt64] = []
    // Int, not Int32: a frame may carry gigabytes in total and nothing from the network
    // is ever truncated.
    private var idStarts: [Int] = []
    private var idLengths: [Int] = []
    private var payloadLengths: [Int] = []
    /// Per-event flag for a payload that was absent or JSON null (stored as SQL NULL).
    private(set) var payloadIsNull: [Bool] = []
    /// Per-event flag: a claim was sent for it before and its answer never came.
    private(set) var attempted: [Bool] = []
    /// Per-event accept time at the producer (Unix ms; 0 when the line carried none).
    private(set) var acceptedAt: [Int64] = []
    /// Per-event numbering generation: the producer's seqs can start over (a new stream),
    /// and an event of an older numbering must not finish a seq of the new one.
    private(set) var generations: [UInt32] = []
    /// The generation given to events appended from the network.
    var generation: UInt32 = 0

    var count: Int { seqs.count }
    var isEmpty: Bool { seqs.isEmpty }
    /// Bytes held for ids and payloads (what MAX_IN_FLIGHT_BYTES bounds).
    var byteCount: Int { bytes.count }

    mutating func reserve(events: Int, bytes byteCount: Int) {
        seqs.reserveCapacity(events)
        idStarts.reserveCapacity(events)
        idLengths.reserveCapacity(events)
        payloadLengths.reserveCapacity(events)
        payloadIsNull.reserveCapacity(events)
        attempted.reserveCapacity(events)
        generations.reserveCapacity(events)
        acceptedAt.reserveCapacity(events)
        bytes.reserveCapacity(byteCount)
    }

    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        seqs.removeAll(keepingCapacity: true)
        idStarts.removeAll(keepingCapacity: true)
        idLengths.removeAll(keepingCapacity: true)
        payloadLengths.removeAll(keepingCapacity: true)
        payloadIsNull.removeAll(keepingCapacity: true)
        attempted.removeAll(keepingCapacity: true)
        generations.removeAll(keepingCapacity: true)
        acceptedAt.removeAll(keepingCapacity: true)
    }

    /// Appends an event; `id` is the decoded event_id, `payload` the payload's JSON text.
    mutating func append(seq: UInt64, id: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, attempted: Bool = false,
                         generation: UInt32? = nil, acceptedAt: Int64 = 0) {
        seqs.append(seq)
        self.acceptedAt.append(acceptedAt)
        generations.append(generation ?? self.generation)
        idStarts.append(bytes.count)
        idLengths.append(id.count)
        bytes.append(contentsOf: id)
        payloadLengths.append(payload.count)
        self.attempted.append(attempted)
        bytes.append(contentsOf: payload)
        payloadIsNull.append(payload.count == 4 && payload.elementsEqual("null".utf8))
    }

    /// Appends event `index` of `other`.
    mutating func append(_ other: EventSet, _ index: Int, attempted: Bool? = nil) {
        let flag = attempted ?? other.attempted[index]
        other.withID(index) { id in
            other.withPayload(index) { payload in
                append(seq: other.seqs[index], id: id, payload: payload, attempted: flag, generation: other.generations[index],
                       acceptedAt: other.acceptedAt[index])
            }
        }
    }

    /// Appends the events of `other` at `indexes`.
    mutating func append(_ other: EventSet, _ indexes: Range<Int>) {
        for i in indexes { append(other, i) }
    }

    func withID<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let start = idStarts[index]
        return try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[start..<(start + idLengths[index])])) }
    }

    func withPayload<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let start = idStarts[index] + idLengths[index]
        return try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[start..<(start + payloadLengths[index])])) }
    }

    /// The event_id as a String (logs and slow paths).
    func idString(_ index: Int) -> String {
        withID(index) { String(decoding: $0, as: UTF8.self) }
    }
}
