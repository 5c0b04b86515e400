import Foundation
import Logging
import Reactor
import ServiceKit
import TestSupport
import XCTest
@testable import Producer

/// A producer running in this process on its own loop threads, on free ports.
final class ProducerHarness {
    let server: ProducerServer
    var httpPort: Int { server.httpPort }
    var wsPort: Int { server.wsPort }
    var metrics: ProducerMetrics { server.metrics }
    var stream: String { server.stream }
    /// The event log's directory: a fresh temporary one unless given.
    let dataDir: String
    private let ownsDataDir: Bool

    init(replayCapacity: Int = 1 << 16, maxBodyBytes: Int = 1 << 20, threads: Int = 2, slowClientTimeoutMillis: Int = 10_000,
         dataDir: String? = nil, retentionBytes: Int = 1 << 30) throws {
        self.dataDir = dataDir ?? TestServers.makeTempDir("producer-log")
        ownsDataDir = dataDir == nil
        var settings = ProducerSettings()
        settings.dataDir = self.dataDir
        settings.retentionBytes = retentionBytes
        settings.httpPort = freeTCPPort()
        settings.wsPort = freeTCPPort()
        settings.host = "127.0.0.1"
        settings.replayCapacity = replayCapacity
        settings.maxBodyBytes = maxBodyBytes
        settings.threads = threads
        settings.slowClientTimeoutMillis = slowClientTimeoutMillis
        var logger = Logger(label: "producer-test")
        logger.logLevel = .error
        server = try ProducerServer(settings: settings, logger: logger)
    }

    deinit {
        server.shutdown()
        if ownsDataDir { try? FileManager.default.removeItem(atPath: dataDir) }
    }
}

func freeTCPPort() -> Int { TestServers.freePort() }

/// A stream line without its `"ts":N,` (the accept time, which differs every run), and
/// that time: tests compare the rest of the line byte for byte.
func withoutAcceptTime(_ line: String) -> (line: String, ts: Int64?) {
    guard let start = line.range(of: ",\"ts\":") else { return (line, nil) }
    let digits = line[start.upperBound...].prefix { $0.isNumber }
    let end = line.index(start.upperBound, offsetBy: digits.count)
    return (String(line[..<start.lowerBound]) + "," + String(line[line.index(after: end)...]), Int64(digits))
}

/// A WebSocket subscriber that records every line the producer sends.
final class Recorder: WebSocketClientDelegate {
    var lines: [String] = []
    var frames = 0
    var closeCode: WebSocketCloseCode?
    var opened = false
    let client: WebSocketClient

    init(loop: EventLoop, port: Int, fromSeq: UInt64? = nil, stream: String? = nil) throws {
        var parameters: [String] = []
        if let fromSeq { parameters.append("from_seq=\(fromSeq)") }
        if let stream { parameters.append("stream=\(stream)") }
        let query = parameters.isEmpty ? "" : "?" + parameters.joined(separator: "&")
        client = try WebSocketClient(loop: loop, url: "ws://127.0.0.1:\(port)/\(query)")
        client.delegate = self
        client.connect()
    }

    func webSocketDidOpen(_ socket: WebSocketConnection) { opened = true }

    /// The accept times (`ts`, Unix ms) of the event lines, in order.
    var acceptTimes: [Int64] = []

    func webSocket(_ socket: WebSocketConnection, didReceiveMessage opcode: WebSocketOpcode, bytes: UnsafeRawBufferPointer) {
        frames += 1
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            let (rest, ts) = withoutAcceptTime(String(line))
            lines.append(rest)
            if let ts { acceptTimes.append(ts) }
        }
    }

    func webSocketDidClose(_ socket: WebSocketConnection, code: WebSocketCloseCode, reason: String) { closeCode = code }

    /// The seqs of the event lines received, in order.
    var seqs: [UInt64] {
        lines.compactMap { line in
            guard let range = line.range(of: "\"seq\":") else { return nil }
            return UInt64(line[range.upperBound...].prefix { $0.isNumber })
        }
    }
}

/// Publishes bodies over one keep-alive connection and collects the answers.
final class Publisher {
    let client: HTTPClient
    var answers: [HTTPClientResponse] = []
    var failures = 0

    init(loop: EventLoop, port: Int) throws {
        client = try HTTPClient(loop: loop, host: "127.0.0.1", port: port)
    }

    func post(_ body: String, path: String = "/publish", method: String = "POST") {
        client.send(method: method, path: path, headers: [("Content-Type", "application/json")], body: Array(body.utf8)) { result in
            switch result {
            case .success(let response): self.answers.append(response)
            case .failure: self.failures += 1
            }
        }
    }
}
