/// Events held together in one byte arena: ids and payloads back to back in one array,
/// with seqs and ranges alongside. Moving events between stages (received, claimed,
/// watched, stored) copies bytes into another set's arena instead of allocating per event.
struct EventSet {
    private(set) var bytes: [UInt8] = []
    private(set) var seqs: [UInt64] = []
    private var idStarts: [Int32] = []
    private var idLengths: [Int32] = []
    private var payloadLengths: [Int32] = []
    /// Per-event flag for a payload that was absent or JSON null (stored as SQL NULL).
    private(set) var payloadIsNull: [Bool] = []

    var count: Int { seqs.count }
    var isEmpty: Bool { seqs.isEmpty }

    mutating func reserve(events: Int, bytes byteCount: Int) {
        seqs.reserveCapacity(events)
        idStarts.reserveCapacity(events)
        idLengths.reserveCapacity(events)
        payloadLengths.reserveCapacity(events)
        payloadIsNull.reserveCapacity(events)
        bytes.reserveCapacity(byteCount)
    }

    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        seqs.removeAll(keepingCapacity: true)
        idStarts.removeAll(keepingCapacity: true)
        idLengths.removeAll(keepingCapacity: true)
        payloadLengths.removeAll(keepingCapacity: true)
        payloadIsNull.removeAll(keepingCapacity: true)
    }

    /// Appends an event; `id` is the decoded event_id, `payload` the payload's JSON text.
    mutating func append(seq: UInt64, id: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) {
        seqs.append(seq)
        idStarts.append(Int32(bytes.count))
        idLengths.append(Int32(id.count))
        bytes.append(contentsOf: id)
        payloadLengths.append(Int32(payload.count))
        bytes.append(contentsOf: payload)
        payloadIsNull.append(payload.count == 4 && payload.elementsEqual("null".utf8))
    }

    /// Appends event `index` of `other`.
    mutating func append(_ other: EventSet, _ index: Int) {
        other.withID(index) { id in other.withPayload(index) { payload in append(seq: other.seqs[index], id: id, payload: payload) } }
    }

    func withID<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let start = Int(idStarts[index])
        return try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[start..<(start + Int(idLengths[index]))])) }
    }

    func withPayload<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let start = Int(idStarts[index] + idLengths[index])
        return try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[start..<(start + Int(payloadLengths[index]))])) }
    }

    /// The event_id as a String (logs and slow paths).
    func idString(_ index: Int) -> String {
        withID(index) { String(decoding: $0, as: UTF8.self) }
    }
}
