import Foundation
import TestSupport
import Glibc
import Reactor

/// What the end-to-end run reads about processes: peak and current RSS, CPU time.
enum ProcStats {
    static let clockTicks = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// A `/proc/PID/status` field in bytes (VmHWM: peak RSS, VmRSS: current RSS).
    static func statusBytes(_ pid: pid_t, _ field: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first { !$0.isEmpty } ?? "0") ?? 0) * 1024
    }

    static func peakRSS(_ pid: pid_t) -> Int { statusBytes(pid, "VmHWM") }

    /// `/proc/PID/stat` after the command name: state, ppid, ... (fields 3 onwards).
    private static func statFields(_ pid: pid_t) -> [Substring]? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    /// utime + stime of the whole process (all threads), in seconds.
    static func cpuSeconds(_ pid: pid_t) -> Double {
        guard let fields = statFields(pid), fields.count > 12,
              let utime = Double(fields[11]), let stime = Double(fields[12]) else { return 0 }
        return (utime + stime) / clockTicks
    }

    /// CPU seconds of `root` and every live process whose parent is `root`, by pid (a
    /// PostgreSQL server: the postmaster, its backends and helpers).
    static func treeCPU(root: pid_t) -> [pid_t: Double] {
        var result: [pid_t: Double] = [root: cpuSeconds(root)]
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return result }
        for entry in entries {
            guard let pid = pid_t(entry), pid != root, let fields = statFields(pid), fields.count > 12,
                  pid_t(fields[1]) == root, let u = Double(fields[11]), let s = Double(fields[12]) else { continue }
            result[pid] = (u + s) / clockTicks
        }
        return result
    }

    /// CPU used between two `treeCPU` snapshots by the processes alive at the end (a
    /// process that exited in between is not counted; new ones count in full).
    static func treeDelta(_ before: [pid_t: Double], _ after: [pid_t: Double]) -> Double {
        after.reduce(0) { $0 + $1.value - (before[$1.key] ?? 0) }
    }

    /// CPU of reaped children (the flood generator, once waited for), in seconds.
    static func childrenCPU() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    static func totalCPU() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }
}

/// A blocking HTTP/1.1 GET on 127.0.0.1 with `Connection: close` (metrics and health
/// scrapes: a few per second, so a plain socket is plenty). Nil when nothing answers.
func blockingGet(port: Int, path: String, timeoutSeconds: Int = 3) -> (status: Int, body: String)? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    guard connectLoopback(fd, port: port) == 0 else { return nil }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else { return nil }
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        data.append(contentsOf: chunk[0..<n])
    }
    let text = String(decoding: data, as: UTF8.self)
    guard text.hasPrefix("HTTP/1."), let status = Int(text.split(separator: " ").dropFirst().first ?? ""),
          let split = text.range(of: "\r\n\r\n") else { return nil }
    return (status, String(text[split.upperBound...]))
}

/// Prometheus text -> value per metric name (summed over label sets).
func parseMetrics(_ text: String) -> [String: Double] {
    var values: [String: Double] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
        let key = line[..<space]
        let name = key.firstIndex(of: "{").map { String(key[..<$0]) } ?? String(key)
        values[name, default: 0] += value
    }
    return values
}

/// SQL from the benchmark process itself, over the reactor's PostgreSQL client on a loop
/// of its own (no psql per poll: nothing here should compete with the system for CPU).
final class BenchSQL {
    let loop: EventLoop
    let connection: PostgresConnection

    init(url: String) throws {
        loop = try EventLoop()
        var configuration = PostgresConfiguration(url: url)
        configuration.operationTimeout = .seconds(600)
        connection = try PostgresConnection(loop: loop, configuration: configuration)
        guard loop.run(timeout: .seconds(15), until: { connection.state == .up }) else {
            throw TestServerError.failed("cannot connect to PostgreSQL: \(String(describing: connection.lastError))")
        }
    }

    deinit { connection.close() }

    func query(_ sql: String) throws -> PostgresResult {
        var outcome: Result<PostgresResult, PostgresError>?
        connection.query(sql) { outcome = $0 }
        guard loop.run(timeout: .seconds(900), until: { outcome != nil }) else {
            throw TestServerError.failed("SQL timed out: \(sql.prefix(120))")
        }
        switch outcome! {
        case .success(let result): return result
        case .failure(let error): throw TestServerError.failed("SQL failed (\(error)): \(sql.prefix(200))")
        }
    }

    func execute(_ sql: String) throws { _ = try query(sql) }

    /// The first column of the first row as an integer (0 when NULL).
    func int(_ sql: String) throws -> Int {
        let result = try query(sql)
        guard result.rowCount > 0, let text = result.string(0, 0) else { return 0 }
        return Int(text) ?? Int(Double(text) ?? 0)
    }

    /// The first row, every column as an integer (0 when NULL).
    func ints(_ sql: String) throws -> [Int] {
        let result = try query(sql)
        guard result.rowCount > 0 else { return [] }
        return (0..<result.columnCount).map { column in
            result.string(0, column).flatMap { Int($0) ?? Double($0).map { Int($0) } } ?? 0
        }
    }
}

/// Wall-clock nanoseconds since the epoch (the clock the flood stamps payloads with).
func wallNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
