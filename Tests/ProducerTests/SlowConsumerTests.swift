import Foundation
import Glibc
import Reactor
import TestSupport
import XCTest
@testable import Producer

/// A subscriber that stops reading is closed with 1013; the others keep receiving, and the
/// producer's memory stays bounded (its backlog is the ring, not a per-client queue).
final class SlowConsumerTests: XCTestCase {
    func testAStalledSubscriberIsClosedWith1013WhileOthersKeepUp() throws {
        let producer = try ProducerHarness(replayCapacity: 1 << 20, slowClientTimeoutMillis: 500)
        let loop = try EventLoop()
        let healthy = try Recorder(loop: loop, port: producer.wsPort)
        let stalled = try Recorder(loop: loop, port: producer.wsPort)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { healthy.opened && stalled.opened })
        stalled.client.socket!.connection.pauseReading()
        let publisher = try Publisher(loop: loop, port: producer.httpPort)
        let pad = String(repeating: "p", count: 1000)
        let batch = "[" + (0..<100).map { "{\"event_id\":\"s\($0)\",\"payload\":\"\(pad)\"}" }.joined(separator: ",") + "]"
        // 60,000 events of ~1 KB: far more than the stalled socket's buffers hold. Once the
        // producer gives up on it, the stalled client reads again, well within the close
        // handshake's timeout, and gets the close frame behind what was queued for it.
        var resumed = false
        func resumeOnceClosed() {
            guard !resumed, producer.metrics.slowClientCloses.count == 1 else { return }
            resumed = true
            stalled.client.socket?.connection.resumeReading()
        }
        for round in 0..<600 {
            publisher.post(batch)
            if round % 20 == 19 {
                loop.run(timeout: .seconds(5)) { publisher.answers.count == round + 1 }
                resumeOnceClosed()
            }
        }
        XCTAssertTrue(loop.run(timeout: .seconds(30)) { resumeOnceClosed(); return healthy.seqs.count == 60_000 })
        XCTAssertEqual(healthy.seqs.last, 60_000)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { producer.metrics.slowClientCloses.count == 1 })
        resumeOnceClosed()
        XCTAssertTrue(loop.run(timeout: .seconds(15)) { stalled.closeCode != nil })
        XCTAssertEqual(stalled.closeCode, .tryAgainLater)
        XCTAssertLessThan(stalled.seqs.count, 60_000)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { producer.metrics.clients.current == 1 })
    }

    func testProducerMemoryStaysBoundedWhileASubscriberIsStalled() throws {
        let binary = try productPath("producer")
        let http = freeTCPPort(), ws = freeTCPPort()
        let process = Process()
        let dataDir = TestServers.makeTempDir("producer-log")
        process.executableURL = URL(fileURLWithPath: binary)
        process.environment = ["HTTP_PORT": "\(http)", "WS_PORT": "\(ws)", "HOST": "127.0.0.1", "REPLAY_CAPACITY": "20000",
                               "SLOW_CLIENT_TIMEOUT_MS": "60000", "LOG_LEVEL": "warning", "THREADS": "1",
                               "DATA_DIR": dataDir, "RETENTION_BYTES": "\(64 << 20)"]
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
            try? FileManager.default.removeItem(atPath: dataDir)
        }
        XCTAssertTrue(waitForTCP(port: http))
        let loop = try EventLoop()
        let stalled = try Recorder(loop: loop, port: ws)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { stalled.opened })
        stalled.client.socket!.connection.pauseReading()
        let publisher = try Publisher(loop: loop, port: http)
        let pad = String(repeating: "m", count: 2000)
        let batch = "[" + (0..<100).map { "{\"event_id\":\"m\($0)\",\"payload\":\"\(pad)\"}" }.joined(separator: ",") + "]"
        var peak = 0
        // 200 MB published while one subscriber reads nothing.
        for round in 0..<1000 {
            publisher.post(batch)
            if round % 50 == 49 {
                XCTAssertTrue(loop.run(timeout: .seconds(20)) { publisher.answers.count == round + 1 })
                peak = max(peak, residentBytes(pid: process.processIdentifier))
            }
        }
        XCTAssertEqual(publisher.answers.filter { $0.status == 202 }.count, 1000)
        // Ring arena (20,000 lines of ~2 KB) plus socket high-water marks; far below the 200 MB sent.
        XCTAssertLessThan(peak, 120 << 20, "producer RSS peaked at \(peak >> 20) MiB")
    }
}

func waitForTCP(port: Int, timeout: TimeInterval = 20) -> Bool {
    TestServers.waitForPort(port, timeout: timeout)
}
