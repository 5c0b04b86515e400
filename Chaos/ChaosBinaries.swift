import Foundation
import TestSupport

/// The producer and listener to test: `--bin-dir` as given, else the release products,
/// built first with the scratch path this binary was built with.
struct ChaosBinaries: Sendable {
    let producer: String
    let listener: String
    let origin: String
    /// `producer serve --help` lists `--data-dir`: the durable log is there, and a killed
    /// producer restarted on its DATA_DIR must keep every event it answered 202 for.
    let producerHasDataDir: Bool

    static func locate(binDir: String?) throws -> ChaosBinaries {
        let dir: String
        let origin: String
        if let binDir = binDir ?? ProcessInfo.processInfo.environment["DEDUP_CHAOS_BIN_DIR"] {
            dir = binDir
            origin = "given: \(binDir)"
        } else {
            dir = try buildRelease()
            origin = "release, \(dir)"
        }
        let producer = dir + "/producer", listener = dir + "/listener"
        for path in [producer, listener] where !FileManager.default.isExecutableFile(atPath: path) {
            throw TestServerError.missing("\(path) not found (bin dir \(dir))")
        }
        let (_, help) = try TestServers.run(producer, ["serve", "--help"])
        return ChaosBinaries(producer: producer, listener: listener, origin: origin, producerHasDataDir: help.contains("--data-dir"))
    }

    /// `swift build -c release` of the producer and listener, from the package this binary
    /// lives in (`<root>/<scratch>/<triple>/<config>/Chaos`) or the current directory.
    private static func buildRelease() throws -> String {
        let fm = FileManager.default
        let exe = (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        var child: URL?
        var root: String?
        var scratch: [String] = []
        for _ in 0..<6 {
            if fm.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
                root = dir.path
                if let child { scratch = ["--scratch-path", child.path] }
                break
            }
            child = dir
            dir = dir.deletingLastPathComponent()
        }
        if root == nil, fm.fileExists(atPath: fm.currentDirectoryPath + "/Package.swift") { root = fm.currentDirectoryPath }
        guard let root, let swift = TestServers.findExecutable("swift") else {
            throw TestServerError.missing("cannot build the release producer and listener here: pass --bin-dir DIR")
        }
        for product in ["producer", "listener"] {
            print("  building: swift build -c release --product \(product)")
            let (status, output) = try run(swift, ["build", "-c", "release"] + scratch + ["--product", product], in: root)
            guard status == 0 else { throw TestServerError.failed("building \(product) failed:\n\(output.suffix(2_000))") }
        }
        let (status, out) = try run(swift, ["build", "-c", "release"] + scratch + ["--show-bin-path"], in: root)
        let bin = out.split(separator: "\n").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard status == 0, !bin.isEmpty else { throw TestServerError.failed("no release bin path: \(out.suffix(500))") }
        return bin
    }

    private static func run(_ executable: String, _ arguments: [String], in directory: String) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
