import Foundation

/// `swift run -c release Benchmarks [micro] [--quick] [--only NAME]`
/// Runs the micro suites, prints a live rate while each runs, then a table, and writes
/// `.build/benchmarks/latest.json` (plus a timestamped copy).
struct Options {
    var quick = false
    var only: String?
    var mode = "micro"

    static func parse(_ arguments: [String], suites: [String]) -> Options {
        var options = Options()
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            switch arg {
            case "--quick": options.quick = true
            case "--only":
                i += 1
                guard i < arguments.count else { fail("--only needs a suite name") }
                options.only = arguments[i]
            case "micro": options.mode = arg
            case "--help", "-h":
                print("usage: Benchmarks [micro] [--quick] [--only SUITE]\nsuites: \(suites.joined(separator: ", "))")
                exit(0)
            default: fail("unknown argument '\(arg)' (see --help)")
            }
            i += 1
        }
        return options
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("Benchmarks: \(message)\n".utf8))
    exit(2)
}

/// A micro suite: a name and a function that runs it (quick or full) and returns figures.
struct MicroSuite {
    let name: String
    let run: (_ quick: Bool) throws -> SuiteResult
}

let microSuites: [MicroSuite] = registeredMicroSuites()

let options = Options.parse(Array(CommandLine.arguments.dropFirst()), suites: microSuites.map(\.name))
var report = BenchmarkReport()
report.settings = ["quick": options.quick, "mode": options.mode]
for suite in microSuites where options.only == nil || options.only == suite.name {
    print("== \(suite.name) ==")
    do {
        report.add(try suite.run(options.quick))
    } catch {
        print("  \(suite.name) failed: \(error)")
        report.add(SuiteResult(name: suite.name, figures: [], notes: ["failed: \(error)"]))
    }
}
report.printTable()
do {
    let path = try report.write()
    print("\nwrote \(path)")
} catch {
    fail("cannot write the JSON report: \(error)")
}
