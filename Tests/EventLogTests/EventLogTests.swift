import EventLog
import Foundation
import Glibc
import XCTest

/// The log on real files: records come back as written, seqs and the stream id survive a
/// reopen, a torn or corrupt tail is cut at start-up, retention drops whole segments, and
/// a failed write leaves nothing behind.
final class EventLogTests: XCTestCase {
    private var directory = ""

    override func setUp() { directory = temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    func testRecordsRoundTripAndSeqsAndStreamContinueAcrossAReopen() throws {
        var log = try EventLog.open(directory)
        XCTAssertEqual(log.lastSeq, 0)
        XCTAssertEqual(try log.appendAndWait(["a", "", "ccc"]).get(), 1...3)
        XCTAssertEqual(try log.appendAndWait(["{\"x\":\"é✓\"}"]).get(), 4...4)
        let stream = log.streamID
        XCTAssertEqual(stream.count, 16)
        log.close()

        log = try EventLog.open(directory)
        XCTAssertEqual(log.streamID, stream)
        XCTAssertEqual(log.lastSeq, 4)
        XCTAssertNil(log.recoveryNote)
        XCTAssertEqual(try log.appendAndWait(["e", "f"]).get(), 5...6)
        let records = try log.readAll()
        XCTAssertEqual(records.map(\.0), Array(1...6))
        XCTAssertEqual(records.map(\.1), ["a", "", "ccc", "{\"x\":\"é✓\"}", "e", "f"])
        XCTAssertEqual(try log.readAll(from: 4).map(\.0), [4, 5, 6])
        log.close()
    }

    func testALogKeptInMemorySaysSoAtStartUp() throws {
        // stat(1) tells the filesystem's type on its own, from statfs(2).
        let stat = Process()
        stat.executableURL = URL(fileURLWithPath: "/usr/bin/stat")
        stat.arguments = ["-f", "-c", "%T", "/dev/shm"]
        let out = Pipe()
        stat.standardOutput = out
        try stat.run()
        stat.waitUntilExit()
        let type = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard type.trimmingCharacters(in: .whitespacesAndNewlines) == "tmpfs" else { throw XCTSkip("no tmpfs at /dev/shm") }
        let inMemory = "/dev/shm/dedup-event-log-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: inMemory) }
        let log = try EventLog.open(inMemory)
        defer { log.close() }
        XCTAssertTrue(log.storageWarning?.contains("tmpfs") ?? false, String(describing: log.storageWarning))
        XCTAssertEqual(try log.appendAndWait(["still works"]).get(), 1...1, "a warning, not a refusal")
    }

    func testANewDirectoryGetsANewStream() throws {
        let first = try EventLog.open(directory)
        let other = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: other) }
        let second = try EventLog.open(other)
        XCTAssertNotEqual(first.streamID, second.streamID)
        first.close()
        second.close()
    }

    func testATornTailIsCutAtTheLastWholeRecordAndSeqsContinueFromThere() throws {
        var log = try EventLog.open(directory)
        _ = try log.appendAndWait((1...10).map { "event-\($0)" }).get()
        log.close()
        let path = directory + "/" + (try segmentFiles(directory).last!)
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        XCTAssertEqual(truncate(path, off_t(size - 3)), 0)  // a crash in the middle of record 10

        log = try EventLog.open(directory)
        XCTAssertEqual(log.lastSeq, 9)
        let note = try XCTUnwrap(log.recoveryNote)
        XCTAssertTrue(note.contains("after seq 9") && note.contains("torn"), note)
        XCTAssertEqual(try log.readAll().map(\.1), (1...9).map { "event-\($0)" })
        XCTAssertEqual(try log.appendAndWait(["again"]).get(), 10...10)
        XCTAssertEqual(try log.readAll().last?.1, "again")
        log.close()
    }

    func testAFlippedByteCutsTheLogFromThatRecordOn() throws {
        var log = try EventLog.open(directory)
        _ = try log.appendAndWait((1...10).map { String(format: "record-%02d", $0) }).get()
        log.close()
        let path = directory + "/" + (try segmentFiles(directory).last!)
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        let recordSize = 16 + "record-01".utf8.count
        bytes[6 * recordSize + 20] ^= 0x20  // inside record 7's payload
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        log = try EventLog.open(directory)
        XCTAssertEqual(log.lastSeq, 6)
        let note = try XCTUnwrap(log.recoveryNote)
        XCTAssertTrue(note.contains("cut \(4 * recordSize) bytes after seq 6") && note.contains("checksum"), note)
        XCTAssertEqual(try log.readAll().map(\.1), (1...6).map { String(format: "record-%02d", $0) })
        log.close()
    }

    func testSegmentsRollAndRetentionDropsTheOldestWholeSegments() throws {
        let payload = String(repeating: "r", count: 1000)
        var log = try EventLog.open(directory, retentionBytes: 256 << 10, segmentBytes: 64 << 10)
        for _ in 0..<100 { _ = try log.appendAndWait(Array(repeating: payload, count: 10)).get() }
        XCTAssertEqual(log.lastSeq, 1000)
        XCTAssertGreaterThan(log.firstSeq, 1)
        XCTAssertLessThanOrEqual(log.sizeBytes, (256 << 10) + (64 << 10) + 10 * 1016)
        // The sync thread removes dropped files with the next group.
        _ = try log.appendAndWait(["last"]).get()
        let files = try segmentFiles(directory)
        XCTAssertEqual(files.count, log.segmentCount)
        XCTAssertEqual(UInt64(files.first!.dropLast(4)), log.firstSeq)
        let first = log.firstSeq
        XCTAssertEqual(try log.readAll().map(\.0), Array(first...1001))
        XCTAssertEqual(try log.readAll(from: 777).map(\.0), Array(777...1001), "a seq in the middle is found through the index")
        log.close()

        log = try EventLog.open(directory, retentionBytes: 256 << 10, segmentBytes: 64 << 10)
        XCTAssertEqual(log.firstSeq, first)
        XCTAssertEqual(log.lastSeq, 1001)
        XCTAssertEqual(try log.readAll(from: 900).count, 102)
        log.close()
    }

    /// Appends with the process' file size limit at `bytes` (EFBIG past it, as a full disk).
    private func appendWithFileSizeLimit(_ log: EventLog, _ bytes: Int, _ payloads: [String]) -> Result<ClosedRange<UInt64>, LogError> {
        signal(SIGXFSZ, SIG_IGN)
        var saved = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &saved)
        var limited = saved
        limited.rlim_cur = rlim_t(bytes)
        setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limited)
        defer { setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &saved) }
        return log.appendAndWait(payloads)
    }

    func testAFailedWriteLeavesNothingAndTheNextGroupTakesTheSameSeqs() throws {
        let log = try EventLog.open(directory)
        _ = try log.appendAndWait(["one", "two"]).get()
        let path = directory + "/" + (try segmentFiles(directory).last!)
        let sizeBefore = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int

        let failed = appendWithFileSizeLimit(log, sizeBefore + 100, Array(repeating: String(repeating: "x", count: 50), count: 10))

        guard case .failure(let error) = failed else { return XCTFail("the write should have failed") }
        XCTAssertTrue(error.isOutOfSpace, "\(error)")
        XCTAssertTrue(error.description.contains("EFBIG"), error.description)
        XCTAssertEqual(log.lastSeq, 2)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int, sizeBefore, "cut back to the last good record")
        XCTAssertEqual(try log.appendAndWait(["three"]).get(), 3...3)
        XCTAssertEqual(try log.readAll().map(\.1), ["one", "two", "three"])
        log.close()
    }

    func testAWriteThatFailsInANewSegmentLeavesTheLogConsistent() throws {
        var log = try EventLog.open(directory, retentionBytes: 1 << 30, segmentBytes: 64 << 10)
        let payload = String(repeating: "s", count: 1000)
        for _ in 0..<7 { _ = try log.appendAndWait(Array(repeating: payload, count: 10)).get() }
        XCTAssertEqual(log.segmentCount, 1)
        // The segment is full: the next group starts a new one, and its write fails there.
        let failed = appendWithFileSizeLimit(log, 500, Array(repeating: payload, count: 10))
        guard case .failure = failed else { return XCTFail("the write should have failed") }
        XCTAssertEqual(log.segmentCount, 2)
        XCTAssertEqual(log.lastSeq, 70)
        XCTAssertEqual(try log.appendAndWait(["after"]).get(), 71...71)
        XCTAssertEqual(try log.readAll().map(\.0), Array(1...71))
        log.close()
        log = try EventLog.open(directory, retentionBytes: 1 << 30, segmentBytes: 64 << 10)
        XCTAssertNil(log.recoveryNote)
        XCTAssertEqual(try log.readAll().last?.1, "after")
        XCTAssertEqual(try segmentFiles(directory), ["00000000000000000001.log", "00000000000000000071.log"])
        log.close()
    }

    func testAnIndexThatDoesNotMatchItsSegmentIsNotTrusted() throws {
        var log = try EventLog.open(directory, retentionBytes: 1 << 30, segmentBytes: 64 << 10)
        let payload = String(repeating: "i", count: 1000)
        for _ in 0..<10 { _ = try log.appendAndWait(Array(repeating: payload, count: 10)).get() }
        XCTAssertGreaterThan(log.segmentCount, 1)
        log.close()
        // Increasing and inside the file, so it loads; but byte 100 is inside record 1.
        var entry: [UInt8] = []
        withUnsafeBytes(of: UInt64(5).littleEndian) { entry += $0 }
        withUnsafeBytes(of: UInt64(100).littleEndian) { entry += $0 }
        try Data(entry).write(to: URL(fileURLWithPath: directory + "/00000000000000000001.index"))

        log = try EventLog.open(directory, retentionBytes: 1 << 30, segmentBytes: 64 << 10)
        XCTAssertEqual(try log.readAll(from: 10).map(\.0), Array(10...100))
        log.close()
    }
}
