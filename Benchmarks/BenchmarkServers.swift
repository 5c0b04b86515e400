import Foundation
import Glibc
import TestSupport

/// The real servers the benchmarks start for themselves (Redis and PostgreSQL, each on a
/// free port in its own temp dir), shared by the micro suites and the end-to-end run, plus
/// the child-process bookkeeping that makes sure nothing outlives the benchmark.
/// A redis-server child on a free port in its own temp dir (no persistence), killed when
/// the benchmark ends.
final class BenchRedisServer {
    let port: Int
    let dir: String
    private let process = Process()

    var url: String { "redis://127.0.0.1:\(port)" }
    var pid: pid_t { process.processIdentifier }

    static let installHint = "install it with `scripts/install-deps` or `apt-get install redis-server` "
        + "(Debian/Ubuntu; it brings redis-benchmark and redis-cli too)"

    static func version() -> String {
        guard let binary = TestServers.findExecutable("redis-server") else { return "?" }
        guard let (_, text) = try? TestServers.run(binary, ["--version"]) else { return "?" }
        // "Redis server v=7.0.15 sha=..." -> "7.0.15"
        return text.split(separator: " ").first { $0.hasPrefix("v=") }.map { String($0.dropFirst(2)) } ?? "?"
    }

    init() throws {
        guard let binary = TestServers.findExecutable("redis-server") else {
            throw TestServerError.missing("redis-server not found: " + Self.installHint)
        }
        port = TestServers.freePort()
        dir = TestServers.makeTempDir("redis")
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", dir, "--logfile", dir + "/redis.log"]
        try process.run()
        TestServers.track(process.processIdentifier)
        for _ in 0..<200 {
            if TestServers.accepts(port) { return }
            usleep(25_000)
        }
        stop()
        throw TestServerError.failed("redis-server did not listen on \(port)")
    }

    deinit { stop() }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        TestServers.untrack(process.processIdentifier)
        _ = try? FileManager.default.removeItem(atPath: dir)
    }

    /// Runs redis-cli against this server; returns its output, trimmed.
    @discardableResult
    func cli(_ arguments: String...) throws -> String {
        guard let binary = TestServers.findExecutable("redis-cli") else {
            throw TestServerError.missing("redis-cli not found: " + Self.installHint)
        }
        let (status, out) = try TestServers.run(binary, ["-h", "127.0.0.1", "-p", "\(port)"] + arguments)
        guard status == 0 else { throw TestServerError.failed("redis-cli \(arguments.joined(separator: " ")): \(out)") }
        return out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Commands the server has run since it started (`INFO stats` total_commands_processed).
    /// A reading leaves out the INFO that asks for it but counts every earlier one.
    func commandsProcessed() throws -> Int {
        let info = try cli("INFO", "stats")
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("total_commands_processed:") }),
              let count = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) else {
            throw TestServerError.failed("no total_commands_processed in INFO stats: \(info.prefix(200))")
        }
        return count
    }

    /// Runs `redis-benchmark -P 64 -n commands -r randomKeys SET key:__rand_int__ x PX 30000 NX`
    /// (50 connections, its default), echoing its live rate line; returns requests per second.
    func redisBenchmark(commands: Int, randomKeys: Int = 1_000_000) throws -> Double {
        guard let binary = TestServers.findExecutable("redis-benchmark") else {
            throw TestServerError.missing("redis-benchmark not found: " + Self.installHint)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["-h", "127.0.0.1", "-p", "\(port)", "-P", "64", "-n", "\(commands)", "-r", "\(randomKeys)", "-q",
                             "SET", "key:__rand_int__", "x", "PX", "30000", "NX"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        var output = ""
        let isTerminal = isatty(STDOUT_FILENO) != 0
        var lastLogged = monotonicSeconds()
        while true {
            let data = pipe.fileHandleForReading.availableData
            if data.isEmpty { break }
            let chunk = String(decoding: data, as: UTF8.self)
            output += chunk
            // Its progress lines end in "\r": show the latest one as our live line.
            if let line = chunk.split(separator: "\r").last(where: { $0.contains("rps=") }) {
                let text = "  redis-benchmark: " + line.trimmingCharacters(in: .whitespacesAndNewlines)
                if isTerminal {
                    print("\r\u{1B}[K" + text, terminator: "")
                    fflush(nil)
                } else if monotonicSeconds() - lastLogged >= 2 {
                    lastLogged = monotonicSeconds()
                    print(text)
                }
            }
        }
        process.waitUntilExit()
        if isTerminal { print("\r\u{1B}[K", terminator: "") }
        // Final line: "SET key:__rand_int__ x PX 30000 NX: 1234567.00 requests per second, p50=..."
        guard let final = output.split(whereSeparator: { $0 == "\r" || $0 == "\n" })
                .last(where: { $0.contains("requests per second") }),
              let colon = final.range(of: ": ", options: .backwards, range: final.startIndex..<final.range(of: "requests")!.lowerBound),
              let rate = Double(final[colon.upperBound...].split(separator: " ").first ?? "") else {
            throw TestServerError.failed("cannot read redis-benchmark's result: \(output.suffix(300))")
        }
        print("  redis-benchmark: \(Int(rate)) cmds/s (-P 64, -r \(randomKeys), 50 connections)")
        return rate
    }
}

/// A PostgreSQL cluster of the benchmark's own: initdb in a temp dir as the `postgres` user
/// (initdb and postgres refuse root), a free port, fsync on, synchronous_commit=off
/// (sessions that want the durable default set it back on), shared_buffers 256 MB,
/// max_wal_size 4 GB. The server log is `dir/postgres.log`.
final class BenchPostgresServer {
    let port: Int
    let dir: String
    let binDir: String
    private var process: Process?
    private(set) var version = "?"

    var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }
    /// The postmaster's pid (setpriv execs in place, so the child is the server itself).
    var pid: pid_t { process?.processIdentifier ?? 0 }

    static let settingsDescription = "fsync=on, synchronous_commit=off, shared_buffers=256MB, max_wal_size=4GB"
    static let installHint = "install it with `scripts/install-deps` or `apt-get install postgresql`"

    init() throws {
        let candidates = ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"]
        guard let bin = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }) else {
            throw TestServerError.missing("PostgreSQL server binaries (initdb, postgres) not found under /usr/lib/postgresql: "
                                           + Self.installHint)
        }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            throw TestServerError.missing("setpriv not found (util-linux): needed to run PostgreSQL as the postgres user")
        }
        binDir = bin
        port = TestServers.freePort()
        dir = TestServers.makeTempDir("pg")
        try TestServers.run("/bin/chown", ["-R", "postgres", dir])
        let (status, out) = try TestServers.run("/usr/sbin/runuser", ["-u", "postgres", "--", bin + "/initdb", "-D", dir + "/data",
                                                                          "-A", "trust", "-U", "postgres", "--no-sync"])
        guard status == 0 else { throw TestServerError.failed("initdb failed: \(out)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=postgres", "--regid=postgres", "--init-groups", "--",
                             bin + "/postgres", "-D", dir + "/data", "-p", "\(port)", "-k", dir,
                             "-c", "listen_addresses=127.0.0.1", "-c", "synchronous_commit=off",
                             "-c", "shared_buffers=256MB", "-c", "max_wal_size=4GB"]
        _ = FileManager.default.createFile(atPath: dir + "/postgres.log", contents: nil)
        let log = FileHandle(forWritingAtPath: dir + "/postgres.log")
        process.standardOutput = log
        process.standardError = log
        try process.run()
        TestServers.track(process.processIdentifier)
        self.process = process
        for _ in 0..<300 {
            let (ok, out) = try TestServers.run(bin + "/psql", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-XAtq",
                                                                   "-c", "SHOW server_version"])
            if ok == 0 {
                version = out.trimmingCharacters(in: .whitespacesAndNewlines)
                return
            }
            usleep(100_000)
        }
        stop()
        throw TestServerError.failed("postgres on \(port) did not start")
    }

    func stop() {
        guard let process else { return }
        _ = try? TestServers.run("/usr/sbin/runuser", ["-u", "postgres", "--", binDir + "/pg_ctl", "-D", dir + "/data",
                                                          "-m", "fast", "stop"])
        process.waitUntilExit()
        TestServers.untrack(process.processIdentifier)
        self.process = nil
        _ = try? FileManager.default.removeItem(atPath: dir)
    }

    deinit { stop() }

    /// Runs SQL with psql; returns its unaligned, tuples-only output.
    @discardableResult
    func psql(_ sql: String) throws -> String {
        let (status, out) = try TestServers.run(binDir + "/psql", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres",
                                                                      "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
        guard status == 0 else { throw TestServerError.failed("psql: \(out)") }
        return out.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
