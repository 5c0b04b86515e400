import Foundation

/// Where a tool (Benchmarks, Chaos) gets the producer and listener it runs: a given bin
/// dir (a flag, or an environment variable) as it is, else the release products, built if
/// needed with the same scratch path as the tool's own binary.
public struct ServiceBinaries: Sendable {
    public let producer: String
    public let listener: String
    /// Where they came from, for the tool's output.
    public let origin: String
    /// The package root, when found.
    public let packageRoot: String?

    /// `binDir`, else the directory in `environment`, else a release build.
    public static func locate(binDir: String?, environment: String) throws -> ServiceBinaries {
        let root = packageRoot()
        if let binDir = binDir ?? ProcessInfo.processInfo.environment[environment] {
            let producer = binDir + "/producer", listener = binDir + "/listener"
            for path in [producer, listener] where !FileManager.default.isExecutableFile(atPath: path) {
                throw TestServerError.missing("\(path) not found (--bin-dir \(binDir))")
            }
            return ServiceBinaries(producer: producer, listener: listener, origin: "given: \(binDir)", packageRoot: root?.path)
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
        return ServiceBinaries(producer: bin + "/producer", listener: bin + "/listener",
                           origin: "release, \(bin)", packageRoot: root.path)
    }

    /// The package root and scratch path, from where this binary lives
    /// (`<root>/<scratch>/<triple>/<config>/<tool>`), else the current directory.
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
