import Foundation
import Glibc

/// A table lock held by a psql session the test keeps open: writers of that table wait
/// (without failing) until `release()`, so a test can make a service's statements queue.
public final class PostgresTableLock {
    private let process = Process()
    private let input = Pipe()

    /// Takes `mode` (e.g. `SHARE`: blocks INSERT, not SELECT) on `table` and returns once
    /// PostgreSQL shows it granted.
    public init(_ server: PostgresTestServer, table: String, mode: String = "SHARE") throws {
        let psql = TestServers.findExecutable("psql", in: [server.binDir, "/usr/bin"]) ?? "/usr/bin/psql"
        process.executableURL = URL(fileURLWithPath: psql)
        process.arguments = ["-h", "127.0.0.1", "-p", "\(server.port)", "-U", "postgres", "-d", "postgres",
                             "-XAtq", "-v", "ON_ERROR_STOP=1"]
        process.standardInput = input
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        TestServers.track(process.processIdentifier)
        input.fileHandleForWriting.write(Data("BEGIN;\nLOCK TABLE \(table) IN \(mode) MODE;\n".utf8))
        let granted = """
            SELECT count(*) FROM pg_locks WHERE relation = '\(table)'::regclass AND granted
              AND mode = '\(mode.capitalized.replacingOccurrences(of: " ", with: ""))Lock'
            """
        let deadline = Date().addingTimeInterval(10)
        while (try? server.psql(granted)) != "1" {
            guard process.isRunning, Date() < deadline else {
                release()
                throw TestServerError.failed("could not lock \(table) in \(mode) mode")
            }
            usleep(20_000)
        }
    }

    /// Commits the session's transaction (the lock goes) and waits for psql to exit.
    public func release() {
        guard process.isRunning else { return }
        input.fileHandleForWriting.write(Data("COMMIT;\n".utf8))
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        TestServers.untrack(process.processIdentifier)
    }

    deinit { release() }
}
