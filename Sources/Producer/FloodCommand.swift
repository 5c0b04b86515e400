import ArgumentParser
import Foundation
import Reactor
import ServiceKit

/// `producer flood`: publishes generated events to a producer as fast as it takes them
/// (or at `--rate`), over keep-alive pipelined HTTP on the reactor, with a live progress
/// line, a summary, and `--json` for scripts.
struct FloodCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flood",
        abstract: "Load-test a producer: publish generated events and report the rate and POST latency.")

    @Option(help: "Producer HTTP URL; /publish is used when no path is given")
    var url = "http://127.0.0.1:3005"
    @Option(help: "Events to publish")
    var count = 100_000
    @Option(help: "Events per second, 0 = as fast as possible")
    var rate = 0
    @Option(help: "Events per POST")
    var batch = 100
    @Option(help: "Keep-alive connections")
    var connections = 4
    @Option(help: "POSTs in flight per connection (pipelining)")
    var pipeline = 4
    @Option(help: "Fraction of events that reuse an earlier event_id (0 to 1)")
    var duplicates = 0.0
    @Option(name: .customLong("payload-bytes"), help: "Approximate size of each payload")
    var payloadBytes = 100
    @Option(name: .customLong("id-prefix"), help: "Prefix of generated event ids (default: flood-<run>-)")
    var idPrefix: String?
    @Option(help: "Random seed (same seed, same ids and duplicates)")
    var seed: UInt64?
    @Option(help: "Bearer token for a producer with AUTH_TOKEN set (default: env AUTH_TOKEN; empty: none)")
    var token: String?
    @Flag(help: "Print the summary as one JSON object on stdout (progress goes to stderr)")
    var json = false

    func validate() throws {
        guard count > 0 else { throw ValidationError("--count must be positive") }
        guard rate >= 0 else { throw ValidationError("--rate must be 0 or positive") }
        guard batch > 0 && batch <= 100_000 else { throw ValidationError("--batch must be 1...100000") }
        guard connections > 0 && connections <= 1_000 else { throw ValidationError("--connections must be 1...1000") }
        guard pipeline > 0 && pipeline <= 1_000 else { throw ValidationError("--pipeline must be 1...1000") }
        guard duplicates >= 0 && duplicates < 1 else { throw ValidationError("--duplicates must be in [0, 1)") }
        guard payloadBytes >= 0 && payloadBytes <= 16 << 20 else { throw ValidationError("--payload-bytes must be 0...16777216") }
        _ = try FloodTarget(url)
    }

    func run() throws {
        let target = try FloodTarget(url)
        let seed = self.seed ?? UInt64(truncatingIfNeeded: Int(Date().timeIntervalSince1970 * 1e6))
        let prefix = idPrefix ?? "flood-\(String(seed, radix: 36))-"
        let plan = FloodPlan(count: count, rate: rate, batch: batch, connections: connections, pipeline: pipeline,
                             duplicates: duplicates, payloadBytes: payloadBytes, idPrefix: prefix, seed: seed,
                             token: BearerToken(Settings.raw(token, env: "AUTH_TOKEN")))
        let loop = try EventLoop()
        let runner = FloodRunner(loop: loop, target: target, plan: plan, progressToStderr: json)
        try runner.start()
        loop.run(timeout: .seconds(365 * 24 * 3600)) { runner.isFinished }
        let summary = runner.summary()
        if json {
            print(summary.json)
        } else {
            print(summary.text)
        }
        if summary.errors > 0 { throw ExitCode(1) }
    }
}

/// Where the flood goes: host, port and path of the publish endpoint.
struct FloodTarget {
    let host: String
    let port: Int
    let path: String

    init(_ url: String) throws {
        guard url.hasPrefix("http://") else { throw ValidationError("--url must start with http:// (got '\(url)')") }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        var pathPart = String(rest[slash...])
        if pathPart.isEmpty || pathPart == "/" { pathPart = "/publish" }
        var hostPart = String(authority)
        var portNumber = 80
        if let colon = authority.lastIndex(of: ":") {
            hostPart = String(authority[..<colon])
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else {
                throw ValidationError("--url has an invalid port: '\(url)'")
            }
            portNumber = p
        }
        guard !hostPart.isEmpty else { throw ValidationError("--url has no host: '\(url)'") }
        host = hostPart
        port = portNumber
        path = pathPart
    }
}

/// What to send.
struct FloodPlan {
    let count: Int
    let rate: Int
    let batch: Int
    let connections: Int
    let pipeline: Int
    let duplicates: Double
    let payloadBytes: Int
    let idPrefix: String
    let seed: UInt64
    let token: BearerToken?
}
