import Glibc
import Logging
import Synchronization

/// One log line per call on stderr: time, level, the instance id, the message, metadata.
/// Lines are written whole with one write() so threads never interleave within a line.
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let instance: String

    public init(instance: String, level: Logger.Level) {
        self.instance = instance
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var text = "\(Self.timestamp()) \(event.level) [\(instance)] \(event.message)"
        let all = event.metadata.map { metadata.merging($0) { $1 } } ?? metadata
        for (key, value) in all.sorted(by: { $0.key < $1.key }) { text += " \(key)=\(value)" }
        text += "\n"
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(2, raw.baseAddress! + offset, raw.count - offset)
                if n <= 0 { break }
                offset += n
            }
        }
    }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var tm = tm()
        var seconds = ts.tv_sec
        gmtime_r(&seconds, &tm)
        let millis = ts.tv_nsec / 1_000_000
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(tm.tm_year + 1900)-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }
}

public enum LogSetup {
    private static let bootstrapped = Mutex(false)

    /// Parses LOG_LEVEL: debug, info, warning, error (and swift-log's trace, notice, critical).
    public static func level(_ text: String) throws -> Logger.Level {
        switch text.lowercased() {
        case "trace": return .trace
        case "debug": return .debug
        case "info": return .info
        case "notice": return .notice
        case "warning", "warn": return .warning
        case "error": return .error
        case "critical": return .critical
        default: throw SettingError("LOG_LEVEL", "'\(text)' is not one of debug, info, warning, error")
        }
    }

    /// Installs the line handler for the process (once) and returns a logger.
    public static func bootstrap(label: String, instance: String, level: Logger.Level) -> Logger {
        let first = bootstrapped.withLock { done -> Bool in
            defer { done = true }
            return !done
        }
        if first {
            LoggingSystem.bootstrap { _ in LineLogHandler(instance: instance, level: level) }
        }
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}
