import Dispatch
import EventLog
import Foundation
import Logging
import Synchronization

/// Drives an EventLog from the test thread: append, wait for the sync thread, complete.
extension EventLog {
    static func open(_ directory: String, retentionBytes: Int = 1 << 30, segmentBytes: Int? = nil) throws -> EventLog {
        var logger = Logger(label: "event-log-test")
        logger.logLevel = .critical
        return try EventLog(directory: directory, retentionBytes: retentionBytes, segmentBytes: segmentBytes, logger: logger)
    }

    /// Appends payloads as one group and waits until it is durable or failed.
    func appendAndWait(_ payloads: [String]) -> Result<ClosedRange<UInt64>, LogError> {
        var bytes: [UInt8] = []
        var lengths: [Int] = []
        for payload in payloads {
            bytes += Array(payload.utf8)
            lengths.append(payload.utf8.count)
        }
        let box = Mutex<LogAppendOutcome?>(nil)
        let done = DispatchSemaphore(value: 0)
        append([LogEntries(bytes: bytes, lengths: lengths)]) { outcome in
            box.withLock { $0 = outcome }
            done.signal()
        }
        done.wait()
        return complete(box.withLock { $0! })
    }

    /// Every retained record from `seq` on, as (seq, text).
    func readAll(from seq: UInt64? = nil) throws -> [(UInt64, String)] {
        var out: [(UInt64, String)] = []
        var next = seq ?? firstSeq
        while next <= lastSeq {
            next = try read(from: next, maxBytes: 4096) { seq, payload in
                out.append((seq, String(decoding: payload, as: UTF8.self)))
            } + 1
        }
        return out
    }
}

func temporaryDirectory() -> String {
    var template = Array("/tmp/dedup-event-log-XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
}

/// The segment files of a log directory, oldest first.
func segmentFiles(_ directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".log") }.sorted()
}
