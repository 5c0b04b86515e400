import Glibc

/// One segment as the log's owner thread sees it: what is durable in it and a read
/// descriptor. The sync thread appends beyond `size`; only committed bytes are read.
final class Segment {
    let firstSeq: UInt64
    /// Newest durable seq in it; `firstSeq - 1` while empty.
    var lastSeq: UInt64
    /// Durable bytes.
    var size: Int
    let readFD: Int32
    var index: SparseIndex
    let name: String

    init(firstSeq: UInt64, lastSeq: UInt64, size: Int, readFD: Int32, index: SparseIndex) {
        self.firstSeq = firstSeq
        self.lastSeq = lastSeq
        self.size = size
        self.readFD = readFD
        self.index = index
        name = SegmentName.segment(firstSeq)
    }

    deinit { close(readFD) }
}
