import Foundation
import Glibc
import Synchronization

/// Real Redis and PostgreSQL servers for tests, each started once per test process on a
/// free port in its own temp dir and stopped at exit. No mocks: the README's test command
/// installs the packages; a missing binary fails the test with a line saying what to install.
public enum TestServers {
    /// A port nobody listens on right now.
    /// Never one this process was given lately: binding port 0 again once the probe socket
    /// is closed can return the same port, and two services given one port collide (seen:
    /// a chaos run's producer given the same HTTP_PORT and WS_PORT).
    public static func freePort() -> Int {
        while true {
            let port = unboundPort()
            let fresh = recentPorts.withLock { recent -> Bool in
                if recent.contains(port) { return false }
                recent.append(port)
                if recent.count > 1_024 { recent.removeFirst(recent.count - 1_024) }
                return true
            }
            if fresh { return port }
        }
    }

    private static let recentPorts = Mutex<[Int]>([])

    private static func unboundPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = loopbackAddress(port: 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Waits until something accepts TCP connections on 127.0.0.1:`port`.
    public static func waitForPort(_ port: Int, timeout: TimeInterval = 30) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            if accepts(port) { return true }
            usleep(50_000)
        } while Date() < deadline
        return false
    }

    public static func findExecutable(_ name: String, in dirs: [String] = ["/usr/bin", "/usr/local/bin"]) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for dir in dirs + path.split(separator: ":").map(String.init) {
            let candidate = dir + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs a command to completion and returns (status, combined output).
    @discardableResult
    /// Runs a tool to its end and returns its exit status and output (stdout and stderr).
    /// One that runs past `timeout` seconds is killed and reported as a failure, so a hung
    /// tool fails its test instead of stalling the whole suite.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           timeout: Double = 120) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let pid = process.processIdentifier
        let timedOut = Mutex(false)
        let watchdog = DispatchWorkItem {
            timedOut.withLock { $0 = true }
            kill(pid, SIGKILL)
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        watchdog.cancel()
        let output = String(decoding: data, as: UTF8.self)
        if timedOut.withLock({ $0 }) {
            throw TestServerError.failed("\(executable) \(arguments.joined(separator: " ")) did not finish within \(Int(timeout)) s and was killed; its output: \(output)")
        }
        return (process.terminationStatus, output)
    }

    public static func makeTempDir(_ prefix: String) -> String {
        var template = Array("/tmp/dedup-\(prefix)-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        return dir
    }

    /// Child pids to kill when this process exits or is interrupted, in a fixed C array
    /// a signal handler may read.
    private static let slots = 128
    nonisolated(unsafe) private static let pids: UnsafeMutablePointer<pid_t> = {
        let p = UnsafeMutablePointer<pid_t>.allocate(capacity: slots)
        p.initialize(repeating: 0, count: slots)
        return p
    }()
    nonisolated(unsafe) private static var handlersInstalled = false

    /// Remembers a child pid so an exit, a crash report or Ctrl-C takes the server down too.
    public static func track(_ pid: Int32) {
        installHandlers()
        for i in 0..<slots where pids[i] == 0 {
            pids[i] = pid
            return
        }
    }

    public static func untrack(_ pid: Int32) {
        for i in 0..<slots where pids[i] == pid { pids[i] = 0 }
    }

    /// SIGKILLs every tracked child (async-signal-safe: reads the C array, calls kill).
    public static func killAll() {
        for i in 0..<slots where pids[i] > 0 {
            kill(pids[i], SIGKILL)
            pids[i] = 0
        }
    }

    private static func installHandlers() {
        guard !handlersInstalled else { return }
        handlersInstalled = true
        _ = pids
        atexit { TestServers.killAll() }
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { signo in
                TestServers.killAll()
                _exit(128 + signo)
            }
        }
    }

    /// True when something accepts TCP connections on 127.0.0.1:`port` right now.
    public static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        return connectLoopback(fd, port: port) == 0
    }
}

/// A redis-server child process on a free port (no persistence).
public final class RedisTestServer: @unchecked Sendable {
    public let port: Int
    public let dir: String
    private var process: Process?

    public var url: String { "redis://127.0.0.1:\(port)" }

    /// The shared instance for this test process.
    public static let shared: RedisTestServer = {
        do { return try RedisTestServer() } catch { fatalError("\(error)") }
    }()

    /// Extra redis-server arguments, e.g. `["--requirepass", "secret"]`.
    public let extraArguments: [String]

    public init(port: Int = TestServers.freePort(), extraArguments: [String] = []) throws {
        self.port = port
        self.extraArguments = extraArguments
        dir = TestServers.makeTempDir("redis")
        try start()
    }

    /// Starts (or restarts) the server on the same port.
    public func start() throws {
        guard let binary = TestServers.findExecutable("redis-server", in: ["/usr/bin", "/usr/local/bin"]) else {
            throw TestServerError.missing("redis-server not found: run the README's test command (apt-get install redis-server)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", dir, "--logfile", dir + "/redis.log"] + extraArguments
        try process.run()
        TestServers.track(process.processIdentifier)
        self.process = process
        guard TestServers.waitForPort(port) else { throw TestServerError.failed("redis-server did not listen on \(port)") }
    }

    /// True while the server process started by `start()` lives (false once it died by
    /// itself, or after `stop()`).
    public var isRunning: Bool { process?.isRunning ?? false }

    /// SIGSTOPs (true) or SIGCONTs (false) the server: a process that stops answering
    /// without closing anything, as a long GC-like pause or a frozen VM would.
    public func pause(_ paused: Bool) {
        guard let process else { return }
        kill(process.processIdentifier, paused ? SIGSTOP : SIGCONT)
    }

    /// Kills the server (SIGKILL: like a crash).
    public func stop() {
        guard let process else { return }
        kill(process.processIdentifier, SIGCONT)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        TestServers.untrack(process.processIdentifier)
        self.process = nil
    }

    /// Runs redis-cli against this server and returns its output, trimmed.
    public func cli(_ arguments: String...) throws -> String {
        guard let binary = TestServers.findExecutable("redis-cli", in: ["/usr/bin"]) else {
            throw TestServerError.missing("redis-cli not found (apt-get install redis-tools)")
        }
        let (_, out) = try TestServers.run(binary, ["-p", "\(port)"] + arguments)
        return out.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// A PostgreSQL 15 cluster in a temp dir, run as the `postgres` user (initdb refuses root),
/// with fsync off (a killed server still leaves its writes in the OS cache, so no
/// acknowledged commit is lost; synchronous_commit stays on for exactly that reason).
public final class PostgresTestServer: @unchecked Sendable {
    public let port: Int
    public let dir: String
    public let binDir: String
    private var process: Process?

    public var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }

    public static let shared: PostgresTestServer = {
        do { return try PostgresTestServer() } catch { fatalError("\(error)") }
    }()

    public init(port: Int = TestServers.freePort()) throws {
        self.port = port
        let candidates = ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"]
        guard let bin = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }) else {
            throw TestServerError.missing("PostgreSQL server binaries not found: run the README's test command (apt-get install postgresql)")
        }
        binDir = bin
        dir = TestServers.makeTempDir("pg")
        let runuser = "/usr/sbin/runuser"
        try TestServers.run("/bin/chown", ["-R", "postgres", dir])
        let (status, out) = try TestServers.run(runuser, ["-u", "postgres", "--", bin + "/initdb", "-D", dir + "/data",
                                                          "-A", "trust", "-U", "postgres", "--no-sync"])
        guard status == 0 else { throw TestServerError.failed("initdb failed: \(out)") }
        try start()
    }

    public func start() throws {
        let process = Process()
        // setpriv execs in place (runuser forks), so the pid we hold is the postmaster's
        // own and killing it at exit leaves no server behind.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", binDir + "/postgres", "-D", dir + "/data", "-p", "\(port)",
                             "-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                             "-c", "full_page_writes=off", "-c", "max_connections=200"]
        let log = FileHandle(forWritingAtPath: "/dev/null")
        process.standardOutput = log
        process.standardError = log
        try process.run()
        TestServers.track(process.processIdentifier)
        self.process = process
        guard TestServers.waitForPort(port) else { throw TestServerError.failed("postgres did not listen on \(port)") }
        // Accepting TCP precedes accepting queries by a moment; wait for a real query.
        for _ in 0..<100 {
            if let out = try? psql("SELECT 1"), out == "1" { return }
            usleep(100_000)
        }
        throw TestServerError.failed("postgres on \(port) does not answer queries")
    }

    /// True while the postmaster started by `start()` lives (false once it died by itself,
    /// or after `stop()`).
    public var isRunning: Bool { process?.isRunning ?? false }

    /// SIGSTOPs (true) or SIGCONTs (false) the postmaster and every process it started
    /// (backends, writers, the checkpointer): a server that stops answering with every
    /// connection open, as a frozen VM would. Returns how many processes it signalled.
    @discardableResult
    public func pause(_ paused: Bool) -> Int {
        guard let postmaster = process?.processIdentifier else { return 0 }
        // The postmaster first when stopping, so it starts nothing new meanwhile; last when
        // continuing, so it finds every child running again.
        let children = Self.children(of: postmaster)
        let order = paused ? [postmaster] + children : children + [postmaster]
        for pid in order { kill(pid, paused ? SIGSTOP : SIGCONT) }
        return order.count
    }

    /// The pids whose parent is `parent`, from /proc.
    private static func children(of parent: pid_t) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { name -> pid_t? in
            guard let pid = pid_t(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            // "pid (comm) state ppid ...": the comm may hold spaces, so fields count from its ")".
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && pid_t(fields[1]) == parent ? pid : nil
        }
    }

    /// Stops the server at once (immediate mode: like a crash, no checkpoint).
    public func stop() {
        pause(false)
        _ = try? TestServers.run("/usr/sbin/runuser", ["-u", "postgres", "--", binDir + "/pg_ctl", "-D", dir + "/data",
                                                       "-m", "immediate", "stop"])
        process?.waitUntilExit()
        if let pid = process?.processIdentifier { TestServers.untrack(pid) }
        process = nil
    }

    /// Runs one SQL statement with psql and returns its unaligned, tuples-only output.
    public func psql(_ sql: String) throws -> String {
        let psql = TestServers.findExecutable("psql", in: [binDir, "/usr/bin"]) ?? "/usr/bin/psql"
        let (status, out) = try TestServers.run(psql, ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres",
                                                       "-d", "postgres", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
        guard status == 0 else { throw TestServerError.failed("psql: \(out)") }
        return out.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

public enum TestServerError: Error, CustomStringConvertible {
    case missing(String)
    case failed(String)
    public var description: String {
        switch self {
        case .missing(let s), .failed(let s): return s
        }
    }
}
