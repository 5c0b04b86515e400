import Foundation

/// `swift run -c release Benchmarks [micro|e2e] [--quick] [--only SUITE] [--events N]
/// [--listeners N[,N...]] [--bystanders N] [--rounds N] [--duplicates F] [--bin-dir DIR] [--output DIR]`
/// With no mode: the micro suites, then the end-to-end run. Prints a live rate while each
/// phase runs, then a table, and writes `.build/benchmarks/latest.json` (plus a timestamped
/// copy) with every figure, the machine and the commit.
struct Options {
    var quick = false
    var only: String?
    var mode = "all"
    var e2e = E2EOptions()
    var output = ".build/benchmarks"

    static let usage = """
        usage: Benchmarks [micro|e2e] [options]
          (no mode)          the micro suites, then the end-to-end run
          micro              the micro suites only
          e2e                the end-to-end run only
          --quick            shorter micro runs; e2e with 20,000 events (correctness only)
          --only SUITE       one micro suite
          --events N         e2e: events to publish (default 1,000,000)
          --listeners N      e2e: listener processes (default 2)
          --listeners 1,2,4  e2e: the throughput pass once per count, each on fresh
                             services, and a scaling table (rate, Redis commands,
                             CPU and peak RSS per count); the other phases run once,
                             with 2 listeners if 2 is listed, else the smallest count
          --duplicates F     e2e: fraction of duplicate ids, 0 to <1 (default 0.1)
          --bystanders N     e2e, with --listeners 1,...: one more pass, 1 listener and N
                             subscribers that only read the stream beside it (what adding
                             subscribers costs when they claim nothing)
          --rounds N         e2e, with --listeners 1,2,4: the scaling passes N times over
                             (1, 2, 4, 1, 2, 4, ...), the ratio bars judged on each
                             count's median rate (this machine's speed drifts)
          --latency-rate R   e2e: published events/s of the latency pass
                             (default: half the rate the throughput pass sustained)
          --bin-dir DIR      e2e: use DIR/producer and DIR/listener as they are
                             (default: build the release ones; env DEDUP_BENCH_BIN_DIR)
          --output DIR       where the JSON report goes (default .build/benchmarks)
        """

    static func parse(_ arguments: [String], suites: [String]) -> Options {
        var options = Options()
        var i = 0
        func value(_ name: String) -> String {
            i += 1
            guard i < arguments.count else { fail("\(name) needs a value (see --help)") }
            return arguments[i]
        }
        while i < arguments.count {
            let arg = arguments[i]
            switch arg {
            case "--quick": options.quick = true
            case "--only": options.only = value(arg)
            case "micro", "e2e": options.mode = arg
            case "--events":
                guard let n = Int(value(arg)), n >= 1_000, n <= 100_000_000 else { fail("--events must be 1000...100000000") }
                options.e2e.events = n
                options.e2e.eventsGiven = true
            case "--listeners":
                let counts = value(arg).split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
                guard !counts.isEmpty, counts.allSatisfy({ $0.map { (1...26).contains($0) } ?? false }) else {
                    fail("--listeners must be a count 1...26 or a comma-separated list of them")
                }
                let sorted = Set(counts.compactMap { $0 }).sorted()
                guard sorted.count == counts.count else { fail("--listeners lists a count twice") }
                options.e2e.listenerCounts = sorted
            case "--duplicates":
                guard let f = Double(value(arg)), f >= 0, f < 1 else { fail("--duplicates must be in [0, 1)") }
                options.e2e.duplicates = f
            case "--latency-rate":
                guard let n = Int(value(arg)), n >= 1 else { fail("--latency-rate must be a positive number of events/s") }
                options.e2e.latencyRate = n
            case "--bystanders":
                guard let n = Int(value(arg)), (1...25).contains(n) else { fail("--bystanders must be 1...25") }
                options.e2e.bystanders = n
            case "--rounds":
                guard let n = Int(value(arg)), (1...9).contains(n) else { fail("--rounds must be 1...9") }
                options.e2e.rounds = n
            case "--bin-dir": options.e2e.binDir = value(arg)
            case "--output": options.output = value(arg)
            case "--help", "-h":
                print(usage + "\nmicro suites: \(suites.joined(separator: ", "))")
                exit(0)
            default: fail("unknown argument '\(arg)' (see --help)")
            }
            i += 1
        }
        options.e2e.quick = options.quick
        if options.e2e.bystanders > 0 && options.e2e.listenerCounts.first != 1 {
            fail("--bystanders compares with the 1-listener pass: list 1 in --listeners")
        }
        if options.e2e.rounds > 1 && !options.e2e.scaling {
            fail("--rounds repeats the scaling passes: list several counts in --listeners")
        }
        if let only = options.only, !suites.contains(only) { fail("unknown suite '\(only)'; suites: \(suites.joined(separator: ", "))") }
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

if CommandLine.arguments.count == 3 && CommandLine.arguments[1] == "bystander" { Bystander.run(url: CommandLine.arguments[2]) }

let microSuites: [MicroSuite] = registeredMicroSuites()

let options = Options.parse(Array(CommandLine.arguments.dropFirst()), suites: microSuites.map(\.name))

var report = BenchmarkReport()
report.settings = ["quick": options.quick, "mode": options.mode]
if options.mode != "micro" {
    report.settings["e2e_events"] = options.e2e.effectiveEvents
    report.settings["e2e_listeners"] = options.e2e.listeners
    if options.e2e.scaling { report.settings["e2e_listener_counts"] = options.e2e.listenerCounts }
    report.settings["e2e_duplicates"] = options.e2e.duplicates
    report.settings["command"] = (["Benchmarks"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
}
if options.mode != "e2e" {
    for suite in microSuites where options.only == nil || options.only == suite.name {
        print("== \(suite.name) ==")
        do {
            report.add(try suite.run(options.quick))
        } catch {
            print("  \(suite.name) failed: \(error)")
            report.add(SuiteResult(name: suite.name, figures: [], notes: ["failed: \(error)"]))
        }
    }
}
var e2e: E2EOutcome?
if options.mode != "micro" {
    let outcome = runE2EBenchmark(options.e2e)
    for suite in outcome.suites { report.add(suite) }
    e2e = outcome
}
var micro = report
micro.suites = report.suites.filter { !$0.name.hasPrefix("e2e_") }
if !micro.suites.isEmpty { micro.printTable() }
e2e?.printTable()
do {
    let path = try report.write(to: options.output)
    print("\nwrote \(path)")
    if let e2e, !e2e.storedSeries.isEmpty {
        let picture = options.output + "/latest.svg"
        try E2EChart.svg(e2e, title: "dedup e2e: " + e2e.header.split(separator: "\n").first.map(String.init)!)
            .write(toFile: picture, atomically: true, encoding: .utf8)
        print("wrote \(picture)")
    }
} catch {
    fail("cannot write the JSON report: \(error)")
}
if let e2e, !(e2e.checksPassed && e2e.failures.isEmpty) { exit(1) }
