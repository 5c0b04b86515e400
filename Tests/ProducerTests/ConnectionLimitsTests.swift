import Foundation
import Glibc
import Reactor
import TestSupport
import XCTest

/// The producer's limits and deadlines against a real producer process: trickled headers
/// end at the header deadline, connections beyond MAX_CONNECTIONS are refused at accept,
/// and running out of descriptors neither spins nor kills it. Timing is asserted loosely.
final class ConnectionLimitsTests: XCTestCase {
    private var dataDirs: [String] = []

    override func tearDown() {
        for dir in dataDirs { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// Starts a producer on fresh ports; `shell` wraps it (e.g. `ulimit -n 64`).
    private func startProducer(_ environment: [String: String] = [:], shell: String? = nil) throws -> (ServiceProcess, http: Int, ws: Int) {
        let http = freeTCPPort(), ws = freeTCPPort()
        let dataDir = TestServers.makeTempDir("producer-log")
        dataDirs.append(dataDir)
        var env = ["HTTP_PORT": "\(http)", "WS_PORT": "\(ws)", "HOST": "127.0.0.1", "THREADS": "2",
                   "LOG_LEVEL": "warning", "DATA_DIR": dataDir]
        env.merge(environment) { $1 }
        let binary = try productPath("producer")
        let process: ServiceProcess
        if let shell {
            process = try ServiceProcess(name: "producer", binary: "/bin/sh", arguments: ["-c", shell + " && exec \"$0\"", binary],
                                         log: dataDir + ".log", environment: env)
        } else {
            process = try ServiceProcess(binary: binary, log: dataDir + ".log", environment: env)
        }
        XCTAssertTrue(TestServers.waitForPort(http), process.logTail())
        return (process, http, ws)
    }

    private func publish(_ port: Int, id: String) -> Int {
        (try? httpPost(port: port, path: "/publish", body: #"{"event_id":"\#(id)","payload":1}"#).status) ?? 0
    }

    // MARK: header deadline

    func testThousandConnectionsTricklingHeaderBytesAreClosedAfterTheHeaderDeadlineWhilePublishesSucceed() throws {
        let (producer, http, _) = try startProducer()
        defer { producer.terminate() }
        let head = Array("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: one byte a second\r\n\r\n".utf8)
        var sockets: [Int32] = []
        for _ in 0..<1000 {
            let fd = try rawConnect(port: http)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            sockets.append(fd)
        }
        defer { sockets.forEach { _ = close($0) } }
        let started = Date()
        var closedAfter = [Double?](repeating: nil, count: sockets.count)
        var got408 = 0
        var otherAnswers: [String] = []
        var publishes = 0
        var slowestPublish = 0.0
        var sentBytes = 0
        var buffer = [UInt8](repeating: 0, count: 4096)

        while closedAfter.contains(where: { $0 == nil }) && Date().timeIntervalSince(started) < 30 {
            // One more header byte to every connection still open, once a second.
            let elapsed = Date().timeIntervalSince(started)
            if Double(sentBytes) <= elapsed && sentBytes < head.count {
                for (index, fd) in sockets.enumerated() where closedAfter[index] == nil {
                    var byte = head[sentBytes]
                    _ = send(fd, &byte, 1, Int32(MSG_NOSIGNAL))
                }
                sentBytes += 1
            }
            // Notice answers and closes.
            for (index, fd) in sockets.enumerated() where closedAfter[index] == nil {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n > 0 {
                    let text = String(decoding: buffer[0..<n], as: UTF8.self)
                    if text.hasPrefix("HTTP/1.1 408 ") { got408 += 1 } else { otherAnswers.append(text) }
                    closedAfter[index] = Date().timeIntervalSince(started)
                } else if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) {
                    closedAfter[index] = Date().timeIntervalSince(started)
                }
            }
            // A normal client keeps publishing meanwhile.
            let before = Date()
            XCTAssertEqual(publish(http, id: "trickle-\(publishes)"), 202)
            slowestPublish = max(slowestPublish, Date().timeIntervalSince(before))
            publishes += 1
            usleep(100_000)
        }

        let times = closedAfter.compactMap { $0 }
        XCTAssertEqual(times.count, sockets.count, "connections still open after 30 s")
        // The deadline is 10 s from each connection's first byte; the trickle never moved it.
        XCTAssertGreaterThan(times.min() ?? 0, 8, "closed before the header deadline")
        XCTAssertLessThan(times.max() ?? 99, 20, "the trickle moved the deadline")
        XCTAssertEqual(otherAnswers, [], "only 408 or a plain close")
        XCTAssertGreaterThan(got408, 0, "no connection saw its 408")
        XCTAssertGreaterThan(publishes, 50)
        XCTAssertLessThan(slowestPublish, 2, "publishes stalled while the tricklers were open")
        XCTAssertTrue(producer.isRunning)
    }

    // MARK: MAX_CONNECTIONS

    func testConnectionsBeyondMaxConnectionsAreRefusedAtAcceptAndAcceptedAgainOnceOthersClose() throws {
        let (producer, http, ws) = try startProducer(["MAX_CONNECTIONS": "50"])
        defer { producer.terminate() }
        // Fill the limit across both ports: 45 keep-alive HTTP connections, 5 subscribers.
        var held: [Int32] = []
        defer { held.forEach { _ = close($0) } }
        for _ in 0..<45 {
            let fd = try rawConnect(port: http)
            held.append(fd)
            XCTAssertEqual(Self.exchange(fd, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n").first?.status, 200)
        }
        var subscribers: [Int32] = []
        defer { subscribers.forEach { _ = close($0) } }
        for _ in 0..<5 {
            let fd = try rawConnect(port: ws)
            subscribers.append(fd)
            XCTAssertTrue(Self.sendAll(fd, Self.upgradeRequest))
            XCTAssertTrue(Self.readSome(fd).hasPrefix("HTTP/1.1 101 "))
        }

        // 100 more, half on each port: each is closed without a byte of answer.
        for index in 0..<100 {
            let fd = try rawConnect(port: index % 2 == 0 ? http : ws, timeoutSeconds: 5)
            _ = Self.sendAll(fd, index % 2 == 0 ? "GET /health HTTP/1.1\r\nHost: a\r\n\r\n" : Self.upgradeRequest)
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, 0)
            let error = errno
            close(fd)
            XCTAssertTrue(n == 0 || (n < 0 && error == ECONNRESET),
                          "connection \(index) over the limit: recv \(n), errno \(error)")
        }

        // The connections already open are still served.
        for (index, fd) in held.prefix(5).enumerated() {
            let body = #"{"event_id":"held-\#(index)","payload":1}"#
            let request = "POST /publish HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            XCTAssertEqual(Self.exchange(fd, request).first?.status, 202)
        }

        // Ten close; their slots come back and new connections are served again.
        for fd in held.suffix(10) { close(fd) }
        held.removeLast(10)
        var served = 0
        let deadline = Date().addingTimeInterval(10)
        while served < 5 && Date() < deadline {
            if publish(http, id: "after-\(served)") == 202 { served += 1 } else { usleep(50_000) }
        }
        XCTAssertEqual(served, 5, producer.logTail())
        XCTAssertTrue(producer.isRunning)
    }

    // MARK: EMFILE

    func testAProducerOutOfDescriptorsNeitherSpinsNorDiesAndServesAgainOnceTheyFree() throws {
        // 64 descriptors for the whole process: well under the 200 connections below.
        let (producer, http, _) = try startProducer(["THREADS": "1"], shell: "ulimit -n 64")
        defer { producer.terminate() }
        var clients: [Int32] = []
        defer { clients.forEach { _ = close($0) } }
        for _ in 0..<200 { clients.append(try rawConnect(port: http, timeoutSeconds: 5)) }
        usleep(300_000)

        // The first accepted connections are served although accept is failing meanwhile.
        XCTAssertEqual(Self.exchange(clients[0], "GET /health HTTP/1.1\r\nHost: a\r\n\r\n").first?.status, 200)

        // Out of descriptors, with 150-odd clients waiting: the loop must sleep, not spin.
        let before = Self.cpuSeconds(pid: producer.pid)
        usleep(2_000_000)
        let cpu = Self.cpuSeconds(pid: producer.pid) - before
        XCTAssertLessThan(cpu, 1.0, "the producer burned \(cpu) s of CPU in 2 s while out of descriptors")
        XCTAssertTrue(producer.isRunning, producer.logTail())

        // Descriptors free up: publishing works again, from new connections.
        clients.forEach { _ = close($0) }
        clients = []
        var status = 0
        let deadline = Date().addingTimeInterval(10)
        while status != 202 && Date() < deadline {
            status = publish(http, id: "after-emfile")
            if status != 202 { usleep(100_000) }
        }
        XCTAssertEqual(status, 202, producer.logTail())
        XCTAssertTrue(producer.isRunning)
    }

    // MARK: helpers

    private static let upgradeRequest = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

    private static func sendAll(_ fd: Int32, _ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    /// Sends one request on a blocking socket and reads its answer.
    private static func exchange(_ fd: Int32, _ request: String) -> [(status: Int, body: String)] {
        guard sendAll(fd, request) else { return [] }
        return readResponses(fd, count: 1)
    }

    private static func readSome(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
    }

    /// utime + stime of a process, from /proc/<pid>/stat.
    private static func cpuSeconds(pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime 14 and stime 15 (1-based).
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
