import Foundation
import Glibc
import Synchronization
import TestSupport

/// Reads never slow writes: the throughput pass again with readers paging
/// `/api/events?limit=1000` on the first listener all the while; its stored rate is
/// judged against the throughput pass's.
private let readersCount = 20
private let readsShareBar = 0.85

extension E2ERun {
    func readsPhase(after throughput: PassResult, on setup: E2ESetup, into outcome: inout E2EOutcome) throws {
        print("-- reads: \(events) events as fast as the system takes them, \(readersCount) readers of /api/events?limit=1000 --")
        let reads = try pass(PassPlan(name: "reads", events: events, readers: readersCount), on: setup)
        let share = throughput.distinctPerSecond > 0 ? reads.distinctPerSecond / throughput.distinctPerSecond : 0
        outcome.suites.append(SuiteResult(
            name: "e2e_reads",
            figures: passFigures(reads) + [("readers", Double(readersCount)), ("reader_requests", Double(reads.readerRequests)),
                                           ("reader_failures", Double(reads.readerFailures)),
                                           ("reader_refused", Double(APIReaders.lastRefused.withLock { $0 })), ("vs_throughput_pass", share)],
            notes: ["the throughput pass with \(readersCount) threads reading /api/events?limit=1000 from the first listener throughout; "
                    + "a reader asks for the next page once the last arrived, and waits Retry-After after a 503"]))
        outcome.storedSeries.append(("reads", reads.storedOverTime))
        outcome.row("reads", "distinct events stored/s with \(readersCount) API readers", fmtRate(reads.distinctPerSecond))
        outcome.row("reads", "vs the throughput pass without readers", String(format: "%.2f", share),
                    bar: "bar >= \(readsShareBar): " + bar(share >= readsShareBar))
        let refused = APIReaders.lastRefused.withLock { $0 }
        outcome.row("reads", "API pages served (failed; refused 503 + Retry-After)", "\(reads.readerRequests) (\(reads.readerFailures); \(refused))")
        if reads.readerFailures > 0 {
            outcome.checksPassed = false
            outcome.failures.append("reads pass: \(reads.readerFailures) API reads failed")
        }
        outcome.checkExactlyOnce(reads, phase: "reads")
    }
}

/// Threads that read a listener's API in a loop until stopped, as a patient client
/// would: the next page as soon as the last one arrived, but after a 503 with
/// `Retry-After` (the listener's read queue was full) they wait that long before asking
/// again, rather than spin on refusals. Each keeps one receive buffer and only checks an
/// answer's status and length, so the readers' own CPU stays small next to the listener's.
final class APIReaders: Sendable {
    private final class Tally: Sendable {
        let state = Mutex((stop: false, requests: 0, failures: 0, refused: 0))
    }
    private let tally = Tally()
    private let group = DispatchGroup()

    /// Refusals (503 with Retry-After) of the last readers stopped: the pass's result has
    /// no field for them, so `readsPhase` reads them here.
    static let lastRefused = Mutex(0)

    init(port: Int, count: Int, path: String) {
        for _ in 0..<count {
            DispatchQueue.global().async(group: group) { [tally] in
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                while !tally.state.withLock({ $0.stop }) {
                    let answer = Self.get(port: port, path: path, buffer: &buffer)
                    switch answer {
                    case .page: tally.state.withLock { $0.requests += 1 }
                    case .refused(let seconds):
                        tally.state.withLock { $0.refused += 1 }
                        // Sleep in small steps so stop() is not held up by a long Retry-After.
                        let until = monotonicSeconds() + Double(seconds)
                        while monotonicSeconds() < until && !tally.state.withLock({ $0.stop }) { usleep(50_000) }
                    case .failed:
                        tally.state.withLock { $0.failures += 1 }
                        usleep(100_000)
                    }
                }
            }
        }
    }

    /// Stops the readers and returns what they did.
    func stop() -> (requests: Int, failures: Int) {
        tally.state.withLock { $0.stop = true }
        group.wait()
        let (requests, failures, refused) = tally.state.withLock { ($0.requests, $0.failures, $0.refused) }
        Self.lastRefused.withLock { $0 = refused }
        return (requests, failures)
    }

    enum Answer {
        /// 200 with the whole body (its Content-Length) received.
        case page
        /// 503 with Retry-After: come back after that many seconds.
        case refused(seconds: Int)
        case failed
    }

    /// One `GET path` with `Connection: close`: the status line and headers parsed, the body
    /// counted, not kept.
    static func get(port: Int, path: String, buffer: inout [UInt8]) -> Answer {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return .failed }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connectLoopback(fd, port: port) == 0 else { return .failed }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else { return .failed }
        var filled = 0
        var headerEnd: Int?
        var received = 0
        while true {
            if filled == buffer.count { buffer += [UInt8](repeating: 0, count: buffer.count) }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + filled, $0.count - filled, 0) }
            if n <= 0 { break }
            if headerEnd != nil {
                received += n  // body bytes land over the last ones: counted, not kept
                continue
            }
            filled += n
            if let end = Self.find(crlfcrlf: buffer, count: filled) {
                headerEnd = end
                received = filled - end
            }
        }
        guard let end = headerEnd else { return .failed }
        let head = String(decoding: buffer[0..<end], as: UTF8.self).lowercased()
        let lines = head.split(separator: "\r\n")
        guard let statusLine = lines.first, statusLine.hasPrefix("http/1."),
              let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") else { return .failed }
        func header(_ name: String) -> Substring? {
            lines.first { $0.hasPrefix(name + ":") }.map { $0.dropFirst(name.count + 1).drop { $0 == " " } }
        }
        switch status {
        case 200:
            guard let length = header("content-length").flatMap({ Int($0) }), length == received else { return .failed }
            return .page
        case 503:
            guard let seconds = header("retry-after").flatMap({ Int($0) }) else { return .failed }
            return .refused(seconds: max(seconds, 1))
        default:
            return .failed
        }
    }

    /// Offset just past the first CRLFCRLF in `bytes[0..<count]`.
    private static func find(crlfcrlf bytes: [UInt8], count: Int) -> Int? {
        guard count >= 4 else { return nil }
        for i in 0...(count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i + 4
        }
        return nil
    }
}
