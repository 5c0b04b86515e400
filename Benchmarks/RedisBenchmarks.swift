import Foundation
import Glibc
import Reactor

/// Redis claim benchmark: our pipelined `SET key:N x PX 30000 NX` from one loop and one
/// connection against `redis-benchmark -P 64 -n N -r 1000000 SET key:__rand_int__ x PX 30000 NX`
/// (50 connections, its default) on the same redis-server, which this benchmark starts on a
/// free port in a temp dir. Prints a live rate while each side runs, the ratio, and the exact
/// heap allocations per command (CAllocCounter's interposer; Glibc's module does not export
/// mallinfo2, and counts beat byte deltas) over a dedicated run.
///
/// Register it with `MicroSuite(name: "redis", run: runRedisBenchmark)`.
func runRedisBenchmark(quick: Bool) throws -> SuiteResult {
    let figures = try redisBenchmarkFigures(quick: quick)
    let order = ["commands", "window", "ours_cmds_per_sec", "redis_benchmark_cmds_per_sec", "ours_vs_redis_benchmark_ratio",
                 "allocations_per_command", "allocated_bytes_per_command"]
    return SuiteResult(
        name: "redis",
        figures: order.compactMap { key in figures[key].map { (key, $0) } },
        notes: ["redis-server \(BenchRedisServer.version()) in a temp dir, no persistence; FLUSHALL before each side",
                "ours: one loop, one connection, a window of pipelined SET key:<rand> x PX 30000 NX (keys in 0..<1M)",
                "redis-benchmark: -P 64 -n N -r 1000000, 50 connections (its default)",
                "allocations: every malloc in the process during a dedicated run of ours (hiredis' callback node and reply included)"])
}

/// The figures as a dictionary: both rates, their ratio, allocations per command.
func redisBenchmarkFigures(quick: Bool) throws -> [String: Double] {
    let commands = quick ? 200_000 : 1_000_000
    let window = 8_192
    let server = try BenchRedisServer()
    defer { server.stop() }
    print("  redis-server \(BenchRedisServer.version()) on 127.0.0.1:\(server.port)")

    let loop = try EventLoop()
    let client = RedisClient(loop: loop, url: RedisURL(host: "127.0.0.1", port: server.port),
                             configuration: RedisClient.Configuration(commandTimeout: .seconds(120)))
    defer { client.close() }
    guard loop.run(timeout: .seconds(10), until: { client.isUp }) else {
        throw RedisBenchError.failed("cannot connect: \(client.lastError ?? "?")")
    }
    var figures: [String: Double] = ["commands": Double(commands), "window": Double(window)]

    // Warm-up: grows hiredis' buffers, our ring and the server's dict outside the measurements.
    _ = try claimRun(loop, client, commands: 100_000, window: window, label: nil)
    try flushAll(loop, client)
    let allocations = try measureAllocationsThrowing(items: 100_000) {
        _ = try claimRun(loop, client, commands: 100_000, window: window, label: nil)
    }
    figures["allocations_per_command"] = allocations.allocations
    figures["allocated_bytes_per_command"] = allocations.bytes

    try flushAll(loop, client)
    let ours = try claimRun(loop, client, commands: commands, window: window, label: "ours: SET NX PX, 1 connection")
    figures["ours_cmds_per_sec"] = ours

    try flushAll(loop, client)
    let theirs = try server.redisBenchmark(commands: commands)
    figures["redis_benchmark_cmds_per_sec"] = theirs
    figures["ours_vs_redis_benchmark_ratio"] = theirs > 0 ? ours / theirs : 0
    print("  ours / redis-benchmark: \(String(format2: theirs > 0 ? ours / theirs : 0))")
    return figures
}

/// Runs `commands` claims with at most `window` in flight; returns commands per second.
private func claimRun(_ loop: EventLoop, _ client: RedisClient, commands: Int, window: Int, label: String?) throws -> Double {
    let run = ClaimRun(client: client, total: commands, live: label.map { LiveRate($0, unit: "cmds") })
    let start = monotonicSeconds()
    for _ in 0..<min(window, commands) { run.issue() }
    guard loop.run(timeout: .seconds(300), until: { run.completed == run.total }) else {
        throw RedisBenchError.failed("only \(run.completed) of \(commands) completed")
    }
    let rate = Double(commands) / (monotonicSeconds() - start)
    if let error = run.error { throw RedisBenchError.failed("a command failed: \(error)") }
    run.live?.finish(run.completed)
    return rate
}

/// One run's counters and its single completion closure: a closure made per call would be an
/// allocation per call, and state captured as `var`s would cost a dynamic exclusivity check
/// per access.
private final class ClaimRun {
    let client: RedisClient
    let total: Int
    let live: LiveRate?
    var issued = 0
    var completed = 0
    var claimed = 0
    var error: RedisError?
    private var random: UInt64 = 0x9E37_79B9_7F4A_7C15
    private let key = UnsafeMutableRawBufferPointer.allocate(byteCount: 32, alignment: 8)
    private var completion: ((Result<RedisSetResult, RedisError>) -> Void)?

    init(client: RedisClient, total: Int, live: LiveRate?) {
        self.client = client
        self.total = total
        self.live = live
        completion = { [unowned self] result in self.completed(result) }
    }

    deinit { key.deallocate() }

    func issue() {
        // xorshift64: keys spread over 0..<1M like redis-benchmark's -r 1000000.
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        let length = formatKey(Int(random % 1_000_000), into: key)
        issued += 1
        let value: StaticString = "x"
        client.set(UnsafeRawBufferPointer(rebasing: key[..<length]),
                   UnsafeRawBufferPointer(start: value.utf8Start, count: value.utf8CodeUnitCount),
                   px: 30_000, nx: true, completion: completion!)
    }

    private func completed(_ result: Result<RedisSetResult, RedisError>) {
        completed += 1
        switch result {
        case .success(.claimed): claimed += 1
        case .success(.taken): break
        case .failure(let failure): error = error ?? failure
        }
        if completed & 4095 == 0 { live?.update(completed, of: total) }
        if issued < total { issue() }
    }
}

/// Writes "key:<n>" into `buffer` without a String; returns its length.
private func formatKey(_ n: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int {
    buffer[0] = UInt8(ascii: "k"); buffer[1] = UInt8(ascii: "e"); buffer[2] = UInt8(ascii: "y"); buffer[3] = UInt8(ascii: ":")
    var digits = 1
    var rest = n / 10
    while rest > 0 { digits += 1; rest /= 10 }
    var value = n
    for i in stride(from: 4 + digits - 1, through: 4, by: -1) {
        buffer[i] = UInt8(truncatingIfNeeded: value % 10) &+ 48
        value /= 10
    }
    return 4 + digits
}

private func flushAll(_ loop: EventLoop, _ client: RedisClient) throws {
    var done: Result<RedisReply, RedisError>?
    client.command("FLUSHALL") { done = $0 }
    guard loop.run(timeout: .seconds(30), until: { done != nil }), case .success = done! else {
        throw RedisBenchError.failed("FLUSHALL failed: \(String(describing: done))")
    }
}

private func measureAllocationsThrowing(items: Int, _ body: () throws -> Void) throws -> (allocations: Double, bytes: Double) {
    var failure: Error?
    let result = measureAllocations(items: items) {
        do { try body() } catch { failure = error }
    }
    if let failure { throw failure }
    return result
}

enum RedisBenchError: Error, CustomStringConvertible {
    case missing(String)
    case failed(String)
    var description: String {
        switch self {
        case .missing(let s), .failed(let s): return s
        }
    }
}

/// A redis-server child on a free port in its own temp dir, killed when the benchmark ends.
private final class BenchRedisServer {
    let port: Int
    let dir: String
    private let process = Process()

    static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for dir in ["/usr/bin", "/usr/local/bin"] + path.split(separator: ":").map(String.init) {
            if FileManager.default.isExecutableFile(atPath: dir + "/" + name) { return dir + "/" + name }
        }
        return nil
    }

    static func version() -> String {
        guard let binary = find("redis-server") else { return "?" }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--version"]
        let pipe = Pipe()
        process.standardOutput = pipe
        guard (try? process.run()) != nil else { return "?" }
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        // "Redis server v=7.0.15 sha=..." -> "7.0.15"
        return text.split(separator: " ").first { $0.hasPrefix("v=") }.map { String($0.dropFirst(2)) } ?? "?"
    }

    init() throws {
        guard let binary = Self.find("redis-server") else {
            throw RedisBenchError.missing("redis-server not found: install it with `apt-get install redis-server` "
                                          + "(Debian/Ubuntu; it brings redis-benchmark and redis-cli too)")
        }
        port = Self.freePort()
        var template = Array("/tmp/dedup-bench-redis-XXXXXX".utf8CString)
        dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", dir, "--logfile", dir + "/redis.log"]
        try process.run()
        for _ in 0..<200 {
            if Self.accepts(port) { return }
            usleep(25_000)
        }
        stop()
        throw RedisBenchError.failed("redis-server did not listen on \(port)")
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        _ = try? FileManager.default.removeItem(atPath: dir)
    }

    /// Runs redis-benchmark, echoing its live rate line, and returns its requests per second.
    func redisBenchmark(commands: Int) throws -> Double {
        guard let binary = Self.find("redis-benchmark") else {
            throw RedisBenchError.missing("redis-benchmark not found: install it with `apt-get install redis-server`")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["-h", "127.0.0.1", "-p", "\(port)", "-P", "64", "-n", "\(commands)", "-r", "1000000", "-q",
                             "SET", "key:__rand_int__", "x", "PX", "30000", "NX"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        var output = ""
        let isTerminal = isatty(STDOUT_FILENO) != 0
        while true {
            let data = pipe.fileHandleForReading.availableData
            if data.isEmpty { break }
            let chunk = String(decoding: data, as: UTF8.self)
            output += chunk
            // Its progress lines end in "\r": show the latest one as our live line.
            if isTerminal, let line = chunk.split(separator: "\r").last(where: { $0.contains("rps=") }) {
                print("\r\u{1B}[K  redis-benchmark: " + line.trimmingCharacters(in: .whitespacesAndNewlines), terminator: "")
                fflush(nil)
            }
        }
        process.waitUntilExit()
        if isTerminal { print("\r\u{1B}[K", terminator: "") }
        // Final line: "SET key:__rand_int__ x PX 30000 NX: 1234567.00 requests per second, p50=..."
        guard let final = output.split(whereSeparator: { $0 == "\r" || $0 == "\n" })
                .last(where: { $0.contains("requests per second") }),
              let colon = final.range(of: ": ", options: .backwards, range: final.startIndex..<final.range(of: "requests")!.lowerBound),
              let rate = Double(final[colon.upperBound...].split(separator: " ").first ?? "") else {
            throw RedisBenchError.failed("cannot read redis-benchmark's result: \(output.suffix(300))")
        }
        print("  redis-benchmark: \(Int(rate)) cmds/s (-P 64, 50 connections)")
        return rate
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
