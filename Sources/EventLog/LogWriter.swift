import Dispatch
import Foundation
import Glibc
import Logging
import Synchronization

/// The dedicated sync thread: frames a group of payloads into records, writes them with
/// one `pwrite` and makes them durable with one `fdatasync`, so a slow disk never stalls
/// the event loop that owns the log. One job at a time; its owner queues the next group
/// while a sync runs (group commit).
///
/// On a failed write or sync the segment is cut back to its last durable size, so a
/// retry starts from a clean tail and nothing half-written is ever read.
final class LogWriter: @unchecked Sendable {
    // Sendable by construction: everything below the mailbox is touched only by the sync
    // thread once `start()` has run (the initial values are set before it starts).
    private struct Job {
        let entries: [LogEntries]
        let firstSeq: UInt64
        let deletions: [String]
        let done: @Sendable (LogAppendOutcome) -> Void
    }

    private let mailbox = Mutex<(job: Job?, stop: Bool)>((nil, false))
    private let wake = DispatchSemaphore(value: 0)
    private let exited = DispatchSemaphore(value: 0)
    private let directory: String
    private let segmentBytes: Int
    private let logger: Logger

    private var fd: Int32
    private var segmentFirstSeq: UInt64
    private var size: Int
    private var index: SparseIndex
    /// A failed write could not be cut back: retry that before writing anything else.
    private var dirtyTail = false
    /// The segment the current job started, if it started one.
    private var rolled: (firstSeq: UInt64, readFD: Int32)?
    private var buffer: UnsafeMutableRawPointer
    private var bufferCapacity = 1 << 20

    init(directory: String, segmentBytes: Int, fd: Int32, firstSeq: UInt64, size: Int, index: SparseIndex, logger: Logger) {
        self.directory = directory
        self.segmentBytes = segmentBytes
        self.fd = fd
        segmentFirstSeq = firstSeq
        self.size = size
        self.index = index
        self.logger = logger
        buffer = .allocate(byteCount: bufferCapacity, alignment: 64)
    }

    deinit {
        buffer.deallocate()
        close(fd)
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "event-log-sync"
        thread.start()
    }

    /// Queues one group; `done` runs on the sync thread when it is durable or failed.
    func submit(entries: [LogEntries], firstSeq: UInt64, deletions: [String], done: @escaping @Sendable (LogAppendOutcome) -> Void) {
        mailbox.withLock { box in
            precondition(box.job == nil, "one group commit at a time")
            box.job = Job(entries: entries, firstSeq: firstSeq, deletions: deletions, done: done)
        }
        wake.signal()
    }

    /// Finishes the job in progress, if any, and ends the thread.
    func stop() {
        mailbox.withLock { $0.stop = true }
        wake.signal()
        exited.wait()
    }

    private func run() {
        while true {
            wake.wait()
            let (job, stop) = mailbox.withLock { box -> (Job?, Bool) in
                let job = box.job
                box.job = nil
                return (job, box.stop)
            }
            if let job { job.done(perform(job)) }
            if stop { break }
        }
        exited.signal()
    }

    private func perform(_ job: Job) -> LogAppendOutcome {
        for name in job.deletions {
            unlink(directory + "/" + name)
            unlink(directory + "/" + SegmentName.index(SegmentName.firstSeq(ofSegment: name) ?? 0))
        }
        let count = job.entries.reduce(0) { $0 + $1.count }
        let lastSeq = job.firstSeq + UInt64(count) - 1
        let started = DispatchTime.now().uptimeNanoseconds
        rolled = nil
        let result: Result<LogAppendOutcome.Written, LogError>
        do {
            result = .success(try write(job.entries, firstSeq: job.firstSeq))
        } catch let error as LogError {
            result = .failure(error)
        } catch {
            result = .failure(LogError("append", code: 0, detail: "\(error)"))
        }
        return LogAppendOutcome(entries: job.entries, firstSeq: job.firstSeq, lastSeq: lastSeq,
                                syncNanos: DispatchTime.now().uptimeNanoseconds - started, rolled: rolled, result: result)
    }

    private func write(_ entries: [LogEntries], firstSeq: UInt64) throws -> LogAppendOutcome.Written {
        let name = SegmentName.segment(segmentFirstSeq)
        if dirtyTail {
            try FileIO.truncate(fd, to: size, name: name)
            dirtyTail = false
        }
        if size >= segmentBytes {
            rolled = try roll(to: firstSeq)
        }
        let total = frame(entries, firstSeq: firstSeq)
        var newIndex = SparseIndex()
        do {
            try FileIO.pwriteAll(fd, UnsafeRawBufferPointer(start: buffer, count: total), at: size, name: SegmentName.segment(segmentFirstSeq))
            try FileIO.dataSync(fd, name: SegmentName.segment(segmentFirstSeq))
        } catch {
            // Nothing of this group may survive: cut the file back to what was durable.
            do { try FileIO.truncate(fd, to: size, name: SegmentName.segment(segmentFirstSeq)) } catch { dirtyTail = true }
            throw error
        }
        var position = 0
        var seq = firstSeq
        for batch in entries {
            for length in batch.lengths {
                index.noteRecord(seq: seq, position: size + position)
                newIndex.noteRecord(seq: seq, position: size + position)
                position += RecordFormat.headerBytes + length
                seq += 1
            }
        }
        size += total
        return .init(activeSize: size, index: newIndex)
    }

    /// Lays the records out in the write buffer; returns their total size.
    private func frame(_ entries: [LogEntries], firstSeq: UInt64) -> Int {
        var total = 0
        for batch in entries { total += batch.bytes.count + batch.count * RecordFormat.headerBytes }
        if total > bufferCapacity {
            buffer.deallocate()
            bufferCapacity = max(total, bufferCapacity * 2)
            buffer = .allocate(byteCount: bufferCapacity, alignment: 64)
        }
        var out = 0
        var seq = firstSeq
        for batch in entries {
            batch.bytes.withUnsafeBytes { payloads in
                var offset = 0
                for length in batch.lengths {
                    let record = buffer + out
                    if length > 0 {
                        (record + RecordFormat.headerBytes).copyMemory(from: payloads.baseAddress! + offset, byteCount: length)
                    }
                    RecordFormat.seal(record, seq: seq, payloadBytes: length)
                    out += RecordFormat.headerBytes + length
                    offset += length
                    seq += 1
                }
            }
        }
        return total
    }

    /// Seals the full segment (its index goes beside it) and starts one named `firstSeq`.
    private func roll(to firstSeq: UInt64) throws -> (firstSeq: UInt64, readFD: Int32) {
        let name = SegmentName.segment(firstSeq)
        let path = directory + "/" + name
        let newFD = try FileIO.open(path, O_WRONLY | O_CREAT | O_TRUNC, name: name)
        let readFD: Int32
        do {
            readFD = try FileIO.open(path, O_RDONLY, name: name)
            // The new file must survive a crash before anything in it is acknowledged.
            try FileIO.syncDirectory(directory)
        } catch {
            close(newFD)
            unlink(path)
            throw error
        }
        writeIndex(index, firstSeq: segmentFirstSeq)
        close(fd)
        fd = newFD
        segmentFirstSeq = firstSeq
        size = 0
        index = SparseIndex()
        return (firstSeq, readFD)
    }

    /// Best effort: a missing or damaged index is rebuilt by scanning at start-up.
    private func writeIndex(_ index: SparseIndex, firstSeq: UInt64) {
        let name = SegmentName.index(firstSeq)
        guard let out = try? FileIO.open(directory + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, name: name) else { return }
        defer { close(out) }
        let bytes = index.encoded()
        do {
            try bytes.withUnsafeBytes { try FileIO.pwriteAll(out, $0, at: 0, name: name) }
        } catch {
            logger.warning("could not write \(name) (\(error)); it is rebuilt at the next start")
        }
    }
}
