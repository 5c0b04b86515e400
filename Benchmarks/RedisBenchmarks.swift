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
        case .success(.written): claimed += 1
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
