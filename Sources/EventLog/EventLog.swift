import Glibc
import Logging

/// A durable, append-only event log in one directory: segments of records named by their
/// first seq (Kafka's LogSegment), each with a sparse index, and a stream id created with
/// the log. Seqs start at 1 and continue across restarts.
///
/// Owned by one thread (the producer's hub loop): it assigns seqs, reads, and decides
/// retention. Appends go to a dedicated sync thread one group at a time: `append` hands a
/// group over, the sync thread calls back when it is durable, and the owner then calls
/// `complete` on its own thread, which makes the group readable.
public final class EventLog {
    /// The directory holding the log.
    public let directory: String
    /// The stream id (16 hex characters).
    public let streamID: String
    /// Bytes after which a segment is sealed and the next begins.
    public let segmentBytes: Int
    /// Bytes kept; the oldest segments go first.
    public let retentionBytes: Int
    /// Newest durable seq (0 for an empty log).
    public private(set) var lastSeq: UInt64
    /// True while a group is being written and synced.
    public private(set) var isSyncing = false
    /// What the start-up recovery cut from a torn or corrupt tail (nil: nothing).
    public let recoveryNote: String?
    /// Why the directory's filesystem would lose the log whatever is synced (memory, a
    /// container's own layer); nil when it keeps it. Logged as a warning at start-up.
    public let storageWarning: String?

    private var segments: [Segment]
    private let writer: LogWriter
    private let lock: DirectoryLock
    private let logger: Logger
    private var deletions: [String] = []
    private var readBuffer: UnsafeMutableRawPointer
    private var readCapacity = 1 << 20

    /// The default segment size for a retention: a sixteenth of it, within 64 KiB...64 MiB,
    /// so retention drops about 6% of the log at a time.
    public static func segmentBytes(forRetention retention: Int) -> Int {
        min(64 << 20, max(64 << 10, retention / 16))
    }

    /// Opens the log in `directory` (created if missing) and recovers it: the stream id and
    /// last seq come from the files, and a torn or corrupt tail of the last segment is cut
    /// at the last whole record and logged.
    public init(directory: String, retentionBytes: Int, segmentBytes: Int? = nil, logger: Logger) throws {
        self.directory = directory
        self.retentionBytes = retentionBytes
        self.segmentBytes = segmentBytes ?? Self.segmentBytes(forRetention: retentionBytes)
        self.logger = logger
        try FileIO.makeDirectories(directory)
        lock = try DirectoryLock(directory: directory)
        storageWarning = LogStorage.volatility(of: directory).map {
            "DATA_DIR \(directory) is on \($0); a 202 promises an event survives anything, so keep the log on a disk"
        }
        if let storageWarning { logger.warning("\(storageWarning)") }
        let firstSeqs = try FileIO.list(directory).compactMap(SegmentName.firstSeq(ofSegment:)).sorted()
        let (id, created) = try StreamID.loadOrCreate(directory: directory, hasSegments: !firstSeqs.isEmpty)
        streamID = id
        if created { logger.info("created a new event log in \(directory), stream \(id)") }

        var segments: [Segment] = []
        for (i, firstSeq) in firstSeqs.enumerated() {
            let name = SegmentName.segment(firstSeq)
            let readFD = try FileIO.open(directory + "/" + name, O_RDONLY, name: name)
            let fileSize: Int
            do { fileSize = try FileIO.size(readFD, name: name) } catch { Glibc.close(readFD); throw error }
            if i + 1 < firstSeqs.count {
                let index = try Self.loadIndex(directory: directory, firstSeq: firstSeq, fd: readFD, size: fileSize, logger: logger)
                segments.append(Segment(firstSeq: firstSeq, lastSeq: firstSeqs[i + 1] - 1, size: fileSize, readFD: readFD, index: index))
            } else {
                segments.append(Segment(firstSeq: firstSeq, lastSeq: firstSeq - 1, size: fileSize, readFD: readFD, index: SparseIndex()))
            }
        }
        if segments.isEmpty {
            let name = SegmentName.segment(1)
            let fd = try FileIO.open(directory + "/" + name, O_RDONLY | O_CREAT, name: name)
            try FileIO.syncDirectory(directory)
            segments.append(Segment(firstSeq: 1, lastSeq: 0, size: 0, readFD: fd, index: SparseIndex()))
        }

        // Only the last segment can hold a torn tail: every earlier one was synced whole
        // before the next was created.
        let active = segments[segments.count - 1]
        let writeFD = try FileIO.open(directory + "/" + active.name, O_RDWR, name: active.name)
        let scan = try SegmentScan(fd: writeFD, name: active.name, firstSeq: active.firstSeq, fileSize: active.size)
        var note: String?
        if let problem = scan.problem {
            let cut = active.size - scan.validBytes
            note = "cut \(cut) bytes after seq \(scan.lastSeq) from the end of \(active.name): \(problem)"
            logger.warning("event log recovery: \(note!); those bytes were never acknowledged and are not served")
            try FileIO.truncate(writeFD, to: scan.validBytes, name: active.name)
            try FileIO.dataSync(writeFD, name: active.name)
        }
        recoveryNote = note
        active.size = scan.validBytes
        active.lastSeq = scan.lastSeq
        active.index = scan.index
        lastSeq = scan.lastSeq
        self.segments = segments
        writer = LogWriter(directory: directory, segmentBytes: self.segmentBytes, fd: writeFD, firstSeq: active.firstSeq,
                           size: scan.validBytes, index: scan.index, logger: logger)
        readBuffer = .allocate(byteCount: readCapacity, alignment: 64)
        applyRetention()
        writer.start()
    }

    deinit {
        readBuffer.deallocate()
    }

    /// Stops the sync thread after the group in progress, if any, and lets go of the
    /// directory's lock. Call once, last.
    public func close() {
        writer.stop()
        lock.release()
    }

    /// Oldest retained seq (`lastSeq + 1` when nothing is retained).
    public var firstSeq: UInt64 { segments[0].firstSeq }

    /// Bytes of records on disk.
    public var sizeBytes: Int { segments.reduce(0) { $0 + $1.size } }

    /// Number of segment files.
    public var segmentCount: Int { segments.count }

    /// True when `seq` can be read from the log.
    public func retains(_ seq: UInt64) -> Bool { seq >= firstSeq && seq <= lastSeq }

    // MARK: appending

    /// Hands a group to the sync thread; its payloads get seqs `lastSeq + 1` onwards.
    /// `done` runs on the sync thread; pass what it gets to `complete` on the owner thread.
    /// One group at a time (`isSyncing`).
    public func append(_ entries: [LogEntries], done: @escaping @Sendable (LogAppendOutcome) -> Void) {
        precondition(!isSyncing, "one group commit at a time")
        isSyncing = true
        let pending = deletions
        deletions.removeAll()
        writer.submit(entries: entries, firstSeq: lastSeq + 1, deletions: pending, done: done)
    }

    /// Takes a finished group in on the owner thread: on success its records become
    /// readable and the seq range is returned; on failure nothing of it exists.
    public func complete(_ outcome: LogAppendOutcome) -> Result<ClosedRange<UInt64>, LogError> {
        isSyncing = false
        if let rolled = outcome.rolled {
            segments.append(Segment(firstSeq: rolled.firstSeq, lastSeq: rolled.firstSeq - 1, size: 0,
                                    readFD: rolled.readFD, index: SparseIndex()))
            applyRetention()
        }
        switch outcome.result {
        case .failure(let error):
            return .failure(error)
        case .success(let written):
            let active = segments[segments.count - 1]
            active.size = written.activeSize
            active.lastSeq = outcome.lastSeq
            active.index.append(contentsOf: written.index)
            lastSeq = outcome.lastSeq
            return .success(outcome.firstSeq...outcome.lastSeq)
        }
    }

    /// Drops the oldest segments while the log is over `retentionBytes` (never the active
    /// one). Their files are removed by the sync thread with the next group.
    private func applyRetention() {
        var total = sizeBytes
        while segments.count > 1 && total > retentionBytes {
            let oldest = segments.removeFirst()
            total -= oldest.size
            deletions.append(oldest.name)
            logger.info("event log retention: dropping \(oldest.name) (seqs \(oldest.firstSeq)-\(oldest.lastSeq), \(oldest.size) bytes)")
        }
    }

    // MARK: reading

    /// Reads records in order from `seq` (which must be retained), about `maxBytes` of
    /// payload (at least one record), calling `body` with each seq and payload. Returns
    /// the last seq read. Throws on a read error or a record that fails its checksum
    /// (records before it have been passed to `body`); the reader can skip to the end of
    /// that segment (`segmentLastSeq(containing:)`).
    public func read(from seq: UInt64, maxBytes: Int, _ body: (UInt64, UnsafeRawBufferPointer) -> Void) throws -> UInt64 {
        precondition(retains(seq), "seq \(seq) is not retained")
        let segment = self.segment(containing: seq)
        if let entry = segment.index.floor(seq) {
            var delivered = false
            do {
                return try read(segment, at: entry.position, expecting: entry.seq, from: seq, maxBytes: maxBytes) { seq, payload in
                    delivered = true
                    body(seq, payload)
                }
            } catch where !delivered {
                // A stale or damaged index entry: the segment itself is the truth.
                logger.warning("event log: index of \(segment.name) does not match its records (\(error)); reading from its start")
            }
        }
        return try read(segment, at: 0, expecting: segment.firstSeq, from: seq, maxBytes: maxBytes, body)
    }

    /// The last seq of the segment that holds `seq`.
    public func segmentLastSeq(containing seq: UInt64) -> UInt64 { segment(containing: seq).lastSeq }

    private func segment(containing seq: UInt64) -> Segment {
        var low = 0, high = segments.count
        while low < high {
            let mid = (low + high) / 2
            if segments[mid].firstSeq <= seq { low = mid + 1 } else { high = mid }
        }
        return segments[max(low - 1, 0)]
    }

    private func read(_ segment: Segment, at start: Int, expecting first: UInt64, from seq: UInt64, maxBytes: Int,
                      _ body: (UInt64, UnsafeRawBufferPointer) -> Void) throws -> UInt64 {
        var position = start
        var expected = first
        var delivered = 0
        var last = seq - 1
        while position < segment.size && last < segment.lastSeq {
            let got = try FileIO.preadUpTo(segment.readFD, readBuffer, count: min(readCapacity, segment.size - position),
                                           at: position, name: segment.name)
            var offset = 0
            parsing: while offset < got {
                switch RecordFormat.parse(UnsafeRawBufferPointer(start: readBuffer + offset, count: got - offset)) {
                case .record(let recordSeq, let payload, let size):
                    guard recordSeq == expected else {
                        throw LogError("read \(segment.name)", code: 0, detail: "record at byte \(position + offset) has seq \(recordSeq), expected \(expected)")
                    }
                    expected += 1
                    if recordSeq >= seq {
                        if delivered > 0 && delivered + payload.count > maxBytes { return last }
                        body(recordSeq, payload)
                        delivered += payload.count
                        last = recordSeq
                        if last == segment.lastSeq { return last }
                    }
                    offset += size
                case .incomplete(let needed):
                    if offset == 0 {
                        guard position + needed <= segment.size else {
                            throw LogError("read \(segment.name)", code: 0, detail: "record at byte \(position) runs past the end")
                        }
                        growReadBuffer(to: needed)
                    }
                    break parsing
                case .corrupt:
                    throw LogError("read \(segment.name)", code: 0, detail: "checksum mismatch at byte \(position + offset)")
                }
            }
            position += offset
        }
        guard last >= seq else {
            throw LogError("read \(segment.name)", code: 0, detail: "seq \(seq) not found before byte \(position)")
        }
        return last
    }

    private func growReadBuffer(to bytes: Int) {
        readBuffer.deallocate()
        readCapacity = max(bytes, readCapacity * 2)
        readBuffer = .allocate(byteCount: readCapacity, alignment: 64)
    }

    private static func loadIndex(directory: String, firstSeq: UInt64, fd: Int32, size: Int, logger: Logger) throws -> SparseIndex {
        let name = SegmentName.index(firstSeq)
        let path = directory + "/" + name
        let indexFD = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if indexFD >= 0 {
            defer { Glibc.close(indexFD) }
            let indexSize = (try? FileIO.size(indexFD, name: name)) ?? -1
            if indexSize >= 0 {
                var bytes = [UInt8](repeating: 0, count: indexSize)
                let n = (try? bytes.withUnsafeMutableBytes { try FileIO.preadUpTo(indexFD, $0.baseAddress!, count: indexSize, at: 0, name: name) }) ?? -1
                if n == indexSize, let index = SparseIndex.decode(bytes, segmentSize: size) { return index }
            }
        }
        logger.info("event log: rebuilding \(name) by scanning its segment")
        let scan = try SegmentScan(fd: fd, name: SegmentName.segment(firstSeq), firstSeq: firstSeq, fileSize: size)
        return scan.index
    }
}
