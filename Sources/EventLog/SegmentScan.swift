/// Walks a segment's records from the start, checking each checksum and that seqs run
/// on from the segment's first: how the start-up finds the end of what can be trusted.
struct SegmentScan {
    /// Bytes of whole, valid records from the start.
    var validBytes = 0
    /// The last valid record's seq (`firstSeq - 1` when none).
    var lastSeq: UInt64
    var index = SparseIndex()
    /// Why the scan stopped before the end of the file (nil: it reached the end cleanly).
    var problem: String?

    init(fd: Int32, name: String, firstSeq: UInt64, fileSize: Int) throws {
        lastSeq = firstSeq &- 1
        var capacity = 1 << 20
        var buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        var position = 0
        scanning: while position < fileSize {
            let want = min(capacity, fileSize - position)
            let got = try FileIO.preadUpTo(fd, buffer, count: want, at: position, name: name)
            var offset = 0
            while offset < got {
                switch RecordFormat.parse(UnsafeRawBufferPointer(start: buffer + offset, count: got - offset)) {
                case .record(let seq, _, let size):
                    guard seq == lastSeq &+ 1 else {
                        problem = "record at byte \(position + offset) has seq \(seq), expected \(lastSeq &+ 1)"
                        break scanning
                    }
                    index.noteRecord(seq: seq, position: position + offset)
                    lastSeq = seq
                    offset += size
                    validBytes = position + offset
                case .incomplete(let needed):
                    if position + offset + needed > fileSize {
                        problem = "torn record at byte \(position + offset): \(needed) bytes announced, \(fileSize - position - offset) present"
                        break scanning
                    }
                    if needed > capacity {
                        buffer.deallocate()
                        capacity = needed
                        buffer = .allocate(byteCount: capacity, alignment: 16)
                    }
                    position += offset
                    continue scanning
                case .corrupt:
                    problem = "checksum or header mismatch at byte \(position + offset)"
                    break scanning
                }
            }
            position += offset
            if got < want { problem = "file shrank while scanning"; break }
        }
    }
}
