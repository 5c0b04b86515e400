import Foundation
import Glibc

/// A service binary (producer or listener) running as a child process, its output in a
/// log file; tracked so it never outlives the test or benchmark that started it.
public final class ServiceProcess {
    public let name: String
    public let process = Process()
    public let logPath: String
    public let port: Int
    /// A producer's event log directory: the caller's DATA_DIR, or a fresh temporary one
    /// (removed with this object) so no two producers share a log or write into the
    /// checkout. To keep a log across a restart, pass DATA_DIR yourself.
    public let dataDir: String?
    private let ownsDataDir: Bool

    public init(name: String? = nil, binary: String, arguments: [String] = [], log: String,
                environment: [String: String], port: Int = 0) throws {
        self.name = name ?? URL(fileURLWithPath: binary).lastPathComponent
        logPath = log
        self.port = port
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = FileHandle(forWritingAtPath: log)!
        handle.seekToEndOfFile()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        let servesLog = self.name == "producer" && arguments.first != "flood"
        ownsDataDir = servesLog && environment["DATA_DIR"] == nil && !arguments.contains("--data-dir")
        if ownsDataDir { env["DATA_DIR"] = TestServers.makeTempDir("producer-log") }
        dataDir = servesLog ? env["DATA_DIR"] : nil
        process.environment = env
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        TestServers.track(process.processIdentifier)
    }

    deinit {
        if ownsDataDir, !process.isRunning, let dataDir { try? FileManager.default.removeItem(atPath: dataDir) }
    }

    public var pid: pid_t { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    public var logText: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The last lines of the log, for error messages.
    public func logTail(_ lines: Int = 8) -> String {
        logText.split(separator: "\n").suffix(lines).joined(separator: "\n    ")
    }

    /// SIGKILL: the process gets no chance to clean up.
    public func kill() {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        TestServers.untrack(process.processIdentifier)
    }

    /// SIGSTOP, returning once the kernel shows the process stopped (a signal takes effect
    /// only when the process next runs: bytes sent right after `kill` returns may still be
    /// read). `resume()` undoes it.
    public func pause() {
        let pid = process.processIdentifier
        Glibc.kill(pid, SIGSTOP)
        // /proc/PID/task/TID/stat: "tid (comm) S ...": the state follows the last ')'.
        func stopped(_ tid: String) -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return true }  // gone
            return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("T")
        }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            if threads.allSatisfy(stopped) { return }
            usleep(1_000)
        }
    }

    /// SIGCONT after `pause()`.
    public func resume() {
        Glibc.kill(process.processIdentifier, SIGCONT)
    }

    /// SIGTERM, then SIGKILL after `grace` seconds; returns the exit status.
    @discardableResult
    public func terminate(grace: Double = 20) -> Int32 {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(grace)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        TestServers.untrack(process.processIdentifier)
        return process.terminationStatus
    }
}
