/// Events of one accepted publish request, encoded once: for each event the part of its
/// NDJSON line after `{"seq":N,` (`"event_id":...,"payload":...}`), back to back in one
/// byte array. Sendable, so an HTTP loop can hand it to the loop that owns the sequence.
struct EventBatch: Sendable {
    /// The encoded rests, concatenated.
    var bytes: [UInt8] = []
    /// Length of each event's rest, in order.
    var lengths: [Int] = []

    var count: Int { lengths.count }

    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        lengths.removeAll(keepingCapacity: true)
    }

    /// Calls `body` with each event's rest, in order.
    func forEach(_ body: (UnsafeRawBufferPointer) -> Void) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            for length in lengths {
                body(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + length)]))
                offset += length
            }
        }
    }
}
