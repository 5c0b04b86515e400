/// A segment's sparse index (Kafka's OffsetIndex): one (seq, file position) pair every
/// `SparseIndex.interval` bytes of records, so finding a seq reads at most that much
/// before it instead of scanning the segment. Stored beside a sealed segment as
/// `<first seq>.index`, 16 bytes per entry; the active segment's is rebuilt at start-up.
struct SparseIndex: Sendable {
    /// Bytes of records between entries.
    static let interval = 32 * 1024

    private(set) var seqs: [UInt64] = []
    private(set) var positions: [Int] = []

    var count: Int { seqs.count }

    /// Notes a record at `position`, keeping it only when it starts a new interval.
    mutating func noteRecord(seq: UInt64, position: Int) {
        if let last = positions.last, position - last < Self.interval { return }
        seqs.append(seq)
        positions.append(position)
    }

    mutating func append(contentsOf other: SparseIndex) {
        for i in 0..<other.count { noteRecord(seq: other.seqs[i], position: other.positions[i]) }
    }

    /// The last indexed (seq, position) at or before `seq`; (nil: start of the segment).
    func floor(_ seq: UInt64) -> (seq: UInt64, position: Int)? {
        var low = 0, high = seqs.count
        while low < high {
            let mid = (low + high) / 2
            if seqs[mid] <= seq { low = mid + 1 } else { high = mid }
        }
        return low == 0 ? nil : (seqs[low - 1], positions[low - 1])
    }

    /// The file form.
    func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count * 16)
        for i in 0..<count {
            withUnsafeBytes(of: seqs[i].littleEndian) { bytes += $0 }
            withUnsafeBytes(of: UInt64(positions[i]).littleEndian) { bytes += $0 }
        }
        return bytes
    }

    /// Reads the file form; nil when it is not a whole, increasing index within `segmentSize`.
    static func decode(_ bytes: [UInt8], segmentSize: Int) -> SparseIndex? {
        guard bytes.count % 16 == 0 else { return nil }
        var index = SparseIndex()
        var ok = true
        bytes.withUnsafeBytes { raw in
            for i in 0..<(bytes.count / 16) {
                let seq = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 16, as: UInt64.self))
                let position = Int(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 16 + 8, as: UInt64.self)))
                if position >= segmentSize || (index.count > 0 && (seq <= index.seqs.last! || position <= index.positions.last!)) {
                    ok = false
                    return
                }
                index.seqs.append(seq)
                index.positions.append(position)
            }
        }
        return ok ? index : nil
    }
}
