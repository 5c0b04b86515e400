import Foundation
import TestSupport
import Glibc

/// What the end-to-end run asks of a service process.
extension ServiceProcess {
    func metrics() -> [String: Double]? {
        guard let (status, body) = blockingGet(port: port, path: "/metrics"), status == 200 else { return nil }
        return parseMetrics(body)
    }

    func healthy() -> Bool { blockingGet(port: port, path: "/health", timeoutSeconds: 1)?.status == 200 }
}

final class E2ESystem {
    let binaries: E2EBinaries
    let dir: String
    let redisURL: String
    let databaseURL: String
    private(set) var producer: ServiceProcess?
    private(set) var listeners: [ServiceProcess] = []
    private(set) var httpPort = 0
    private(set) var wsPort = 0

    init(binaries: E2EBinaries, dir: String, redisURL: String, databaseURL: String) {
        self.binaries = binaries
        self.dir = dir
        self.redisURL = redisURL
        self.databaseURL = databaseURL
    }

    /// Starts the producer and `count` listeners and waits until every listener is healthy
    /// (its producer, Redis and PostgreSQL links all up). `listenerEnvironment` adds to
    /// (or overrides) the listeners' settings.
    func start(pass: String, listenerCount: Int, databaseURL: String? = nil, listenerEnvironment: [String: String] = [:],
               perListenerEnvironment: [[String: String]] = []) throws {
        httpPort = TestServers.freePort()
        wsPort = TestServers.freePort()
        let producer = try ServiceProcess(
            name: "producer", binary: binaries.producer, log: dir + "/\(pass)-producer.log",
            environment: ["HTTP_PORT": "\(httpPort)", "WS_PORT": "\(wsPort)", "HOST": "127.0.0.1", "LOG_LEVEL": "warning"],
            port: httpPort)
        self.producer = producer
        try waitFor(20, what: "the producer to listen on \(httpPort)", service: producer) { TestServers.accepts(self.httpPort) }
        listeners = []
        for i in 0..<listenerCount {
            let id = "bench-\(Character(UnicodeScalar(UInt8(65 + i % 26))))\(i >= 26 ? String(i) : "")"
            let port = TestServers.freePort()
            var env = ["INSTANCE_ID": id, "PORT": "\(port)", "HOST": "127.0.0.1", "PRODUCER_URL": "ws://127.0.0.1:\(wsPort)/",
                       "REDIS_URL": redisURL, "DATABASE_URL": databaseURL ?? self.databaseURL, "LOG_LEVEL": "warning"]
            env.merge(listenerEnvironment) { $1 }
            if i < perListenerEnvironment.count { env.merge(perListenerEnvironment[i]) { $1 } }
            listeners.append(try ServiceProcess(name: "listener \(id)", binary: binaries.listener,
                                            log: dir + "/\(pass)-listener-\(id).log", environment: env, port: port))
        }
        for listener in listeners {
            try waitFor(30, what: "\(listener.name) to be healthy", service: listener) { listener.healthy() }
        }
    }

    /// Stops the listeners (SIGTERM: they finish or release in-flight work) and the producer.
    /// Returns the listeners' exit statuses.
    @discardableResult
    func stop() -> [Int32] {
        let statuses = listeners.map { $0.terminate() }
        producer?.terminate()
        producer = nil
        listeners = []
        return statuses
    }

    private func waitFor(_ seconds: Double, what: String, service: ServiceProcess, _ condition: () -> Bool) throws {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            if condition() { return }
            if !service.isRunning {
                throw TestServerError.failed("\(service.name) exited (status \(service.process.terminationStatus)) while waiting for \(what); its log:\n    \(service.logTail())")
            }
            usleep(50_000)
        }
        throw TestServerError.failed("timed out waiting for \(what); \(service.name)'s log:\n    \(service.logTail())")
    }
}

/// Where the producer and listener binaries come from: `--bin-dir` (or
/// `DEDUP_BENCH_BIN_DIR`) as given, else the release products, built if needed with the
/// same scratch path as this benchmark binary.
struct E2EBinaries {
    let producer: String
    let listener: String
    let origin: String
    /// The package root, when found (for the allocation counter's C source).
    let packageRoot: String?

    static func locate(binDir: String?) throws -> E2EBinaries {
        let root = packageRoot()
        if let binDir = binDir ?? ProcessInfo.processInfo.environment["DEDUP_BENCH_BIN_DIR"] {
            let producer = binDir + "/producer", listener = binDir + "/listener"
            for path in [producer, listener] where !FileManager.default.isExecutableFile(atPath: path) {
                throw TestServerError.missing("\(path) not found (--bin-dir \(binDir))")
            }
            return E2EBinaries(producer: producer, listener: listener, origin: "given: \(binDir)", packageRoot: root?.path)
        }
        guard let root else {
            throw TestServerError.missing("cannot find the package (Package.swift) to build the release producer and listener; "
                                           + "run from the package directory or pass --bin-dir DIR")
        }
        guard let swift = TestServers.findExecutable("swift") else {
            throw TestServerError.missing("swift not found on PATH: build the release producer and listener yourself and pass --bin-dir DIR")
        }
        var scratch: [String] = []
        if let path = root.scratch { scratch = ["--scratch-path", path] }
        for product in ["producer", "listener"] {
            let command = ["build", "-c", "release"] + scratch + ["--product", product]
            print("  building: swift \(command.joined(separator: " "))")
            let (status, output) = try runBuild(swift, command, in: root.path)
            guard status == 0 else {
                throw TestServerError.failed("building \(product) failed (status \(status)):\n\(output.suffix(2_000))")
            }
        }
        let (status, out) = try runBuild(swift, ["build", "-c", "release"] + scratch + ["--show-bin-path"], in: root.path, echo: false)
        let bin = out.split(separator: "\n").last.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
        guard status == 0, FileManager.default.isExecutableFile(atPath: bin + "/producer"),
              FileManager.default.isExecutableFile(atPath: bin + "/listener") else {
            throw TestServerError.failed("release producer and listener not found after building (bin path '\(bin)')")
        }
        return E2EBinaries(producer: bin + "/producer", listener: bin + "/listener",
                           origin: "release, \(bin)", packageRoot: root.path)
    }

    /// The package root and scratch path, from where this binary lives
    /// (`<root>/<scratch>/<triple>/<config>/Benchmarks`), else the current directory.
    static func packageRoot() -> (path: String, scratch: String?)? {
        let fm = FileManager.default
        let exe = (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        var child: URL?
        for _ in 0..<6 {
            if fm.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
                return (dir.path, child?.path)
            }
            child = dir
            dir = dir.deletingLastPathComponent()
        }
        let cwd = fm.currentDirectoryPath
        return fm.fileExists(atPath: cwd + "/Package.swift") ? (cwd, nil) : nil
    }

    /// Runs swift build, echoing its output (indented) as it comes. SwiftPM holds a lock
    /// on the scratch directory while it builds; `swift run` has released it by the time
    /// this binary runs, but another build (an editor, a second terminal) may hold it: say
    /// so when SwiftPM reports it is waiting.
    private static func runBuild(_ swift: String, _ arguments: [String], in directory: String, echo: Bool = true) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: swift)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        TestServers.track(process.processIdentifier)
        var output = ""
        while true {
            let data = pipe.fileHandleForReading.availableData
            if data.isEmpty { break }
            let chunk = String(decoding: data, as: UTF8.self)
            output += chunk
            if chunk.contains("Another instance of SwiftPM") {
                print("  note: another SwiftPM process holds the build lock; waiting for it (or stop it, or pass --bin-dir DIR)")
            }
            if echo {
                for line in chunk.split(separator: "\n") where line.hasPrefix("Build") || line.hasPrefix("Compiling") || line.contains("error") {
                    print("    " + line)
                }
            }
        }
        process.waitUntilExit()
        TestServers.untrack(process.processIdentifier)
        return (process.terminationStatus, output)
    }
}
