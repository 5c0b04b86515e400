import Dispatch
import EventLog
import Foundation
import Glibc
import Logging
import Synchronization

/// The durable log's append path against the disk's own ceiling, measured in the same run
/// on the same file system: first a raw `write` + `fdatasync` loop (what `dd oflag=dsync`
/// measures), then EventLog group commits of 1, 100 and 1,000 events of a typical size.
/// A group is one write and one fdatasync however many events it holds, so events per
/// second grow with the group while syncs per second stay near the raw ceiling.
///
/// The directory is `.build/benchmarks/event-log` (the disk the producer's DATA_DIR would
/// usually be on), removed afterwards.
func runEventLogBenchmark(quick: Bool) throws -> SuiteResult {
    let directory = FileManager.default.currentDirectoryPath + "/.build/benchmarks/event-log"
    try? FileManager.default.removeItem(atPath: directory)
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let seconds = quick ? 0.3 : 2.0
    let payload = Array(#""event_id":"evt-000000123456","payload":{"message":"hello","user":42,"tags":["a","b"],"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}"#.utf8)

    let raw4k = try rawSyncRate(directory: directory, blockBytes: 4096, seconds: seconds)
    let raw64k = try rawSyncRate(directory: directory, blockBytes: 64 << 10, seconds: seconds)
    var figures: [(String, Double)] = [
        ("raw_fdatasync_4k_per_sec", raw4k),
        ("raw_fdatasync_4k_mb_per_sec", raw4k * 4096 / 1e6),
        ("raw_fdatasync_64k_per_sec", raw64k),
        ("raw_fdatasync_64k_mb_per_sec", raw64k * 65536 / 1e6),
    ]
    for group in [1, 100, 1000] {
        let result = try appendRate(directory: directory + "/group-\(group)", payload: payload, group: group, seconds: seconds)
        figures.append(("group_\(group)_events_per_sec", result.events))
        figures.append(("group_\(group)_mb_per_sec", result.bytes / 1e6))
        figures.append(("group_\(group)_fsyncs_per_sec", result.syncs))
        figures.append(("group_\(group)_events_per_fsync", Double(group)))
    }
    return SuiteResult(name: "event_log", figures: figures,
                       notes: ["\(payload.count)-byte payload + 16-byte record header; one writer, groups back to back",
                               "raw: pwrite of one block at a growing offset + fdatasync, in a loop"])
}

/// Blocks written and synced per second, one block per fdatasync.
private func rawSyncRate(directory: String, blockBytes: Int, seconds: Double) throws -> Double {
    let path = directory + "/raw-\(blockBytes)"
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    defer { close(fd); unlink(path) }
    let block = [UInt8](repeating: 0x61, count: blockBytes)
    let live = LiveRate("raw write+fdatasync \(blockBytes >> 10) KiB", unit: "syncs")
    let start = DispatchTime.now().uptimeNanoseconds
    var done = 0
    while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds {
        let n = block.withUnsafeBytes { pwrite(fd, $0.baseAddress!, blockBytes, off_t(done * blockBytes)) }
        guard n == blockBytes, fdatasync(fd) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        done += 1
        live.update(done)
    }
    return live.finish(done)
}

/// Group commits of `group` events, back to back, for `seconds`.
private func appendRate(directory: String, payload: [UInt8], group: Int, seconds: Double) throws -> (events: Double, bytes: Double, syncs: Double) {
    var logger = Logger(label: "event-log-benchmark")
    logger.logLevel = .error
    let log = try EventLog(directory: directory, retentionBytes: 1 << 30, logger: logger)
    defer { log.close() }
    let entries = LogEntries(bytes: Array(Array(repeating: payload, count: group).joined()), lengths: Array(repeating: payload.count, count: group))
    let outcome = Mutex<LogAppendOutcome?>(nil)
    let done = DispatchSemaphore(value: 0)
    let live = LiveRate("event log, \(group) event(s) per fsync", unit: "events")
    let start = DispatchTime.now().uptimeNanoseconds
    var syncs = 0
    while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds {
        log.append([entries]) { result in
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        _ = try log.complete(outcome.withLock { $0! }).get()
        syncs += 1
        live.update(syncs * group)
    }
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    let events = live.finish(syncs * group)
    return (events, events * Double(payload.count + 16), Double(syncs) / elapsed)
}
