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
