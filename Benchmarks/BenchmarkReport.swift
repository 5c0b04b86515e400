import Foundation

/// Figures of one suite, in the order they were measured.
struct SuiteResult {
    let name: String
    var figures: [(String, Double)]
    var notes: [String] = []
}

/// Collects every suite's figures, prints the closing table and writes the JSON report
/// (`.build/benchmarks/latest.json` plus a timestamped copy) with the machine and commit.
struct BenchmarkReport {
    var suites: [SuiteResult] = []
    var settings: [String: Any] = [:]

    mutating func add(_ suite: SuiteResult) { suites.append(suite) }

    func printTable() {
        print("\n== results ==")
        for suite in suites {
            print("[\(suite.name)]")
            let width = suite.figures.map { $0.0.count }.max() ?? 0
            for (key, value) in suite.figures {
                let pad = String(repeating: " ", count: width - key.count)
                print("  \(key)\(pad)  \(formatFigure(value))")
            }
            for note in suite.notes { print("  note: \(note)") }
        }
    }

    func write(to directory: String = ".build/benchmarks") throws -> String {
        var json: [String: Any] = [
            "machine": Self.machine(),
            "commit": Self.commit(),
            "date": ISO8601DateFormatter().string(from: Date()),
            "settings": settings,
        ]
        var suitesJSON: [String: Any] = [:]
        for suite in suites {
            var figures: [String: Any] = [:]
            for (key, value) in suite.figures { figures[key] = value.isFinite ? value : 0 }
            if !suite.notes.isEmpty { figures["notes"] = suite.notes }
            suitesJSON[suite.name] = figures
        }
        json["suites"] = suitesJSON
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let latest = directory + "/latest.json"
        try data.write(to: URL(fileURLWithPath: latest))
        let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "-")
        try data.write(to: URL(fileURLWithPath: directory + "/\(stamp).json"))
        return latest
    }

    static func machine() -> [String: Any] {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown"
        return ["cores": ProcessInfo.processInfo.activeProcessorCount, "cpu": model,
                "memory_bytes": ProcessInfo.processInfo.physicalMemory]
    }

    static func commit() -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        process.arguments = ["rev-parse", "--short", "HEAD"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        guard (try? process.run()) != nil else { return "unknown" }
        process.waitUntilExit()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return out.isEmpty ? "unknown" : out
    }
}

func formatFigure(_ value: Double) -> String {
    if value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
    if abs(value) >= 1000 { return String(format: "%.0f", value) }
    if abs(value) >= 1 { return String(format: "%.2f", value) }
    return String(format: "%.4f", value)
}
