import Glibc
import Synchronization
import XCTest
@testable import Reactor

/// Records everything a connection tells its delegate; echoes when asked to.
final class RecordingDelegate: TCPConnectionDelegate {
    var received: [UInt8] = []
    var connected = false
    var closed = false
    var closeError: SocketError?
    var writabilityChanges: [Bool] = []
    var echo = false
    /// Consume at most this many bytes per call (to test kept bytes).
    var consumeLimit = Int.max

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        let n = min(bytes.count, consumeLimit)
        let taken = UnsafeRawBufferPointer(rebasing: bytes[0..<n])
        received.append(contentsOf: taken)
        if echo { connection.write(taken) }
        return n
    }
    func connectionDidConnect(_ connection: TCPConnection) { connected = true }
    func connectionWritabilityChanged(_ connection: TCPConnection) { writabilityChanges.append(connection.isWritable) }
    func connectionDidClose(_ connection: TCPConnection, error: SocketError?) {
        closed = true
        closeError = error
    }
}

final class TCPTests: XCTestCase {
    private func makeServer(_ loop: EventLoop, _ accepted: @escaping (TCPConnection, RecordingDelegate) -> Void = { _, _ in }) throws -> TCPServer {
        try TCPServer(loop: loop, host: "127.0.0.1", port: 0) { connection in
            let delegate = RecordingDelegate()
            connection.delegate = delegate
            accepted(connection, delegate)
        }
    }

    func testEchoRoundTripOverLoopback() throws {
        let loop = try EventLoop()
        let server = try makeServer(loop) { _, d in d.echo = true }
        let client = RecordingDelegate()
        let connection = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: server.port, delegate: client)
        let message = Array("hello, reactor".utf8)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.connected })
        connection.write(message)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.received.count == message.count })
        XCTAssertEqual(client.received, message)
        connection.close()
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.closed })
        XCTAssertNil(client.closeError)
        server.close()
    }

    func testUnconsumedBytesAreKeptAndOfferedAgain() throws {
        let loop = try EventLoop()
        var serverSide: RecordingDelegate?
        let server = try makeServer(loop) { _, d in d.consumeLimit = 3; serverSide = d }
        let client = RecordingDelegate()
        let connection = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: server.port, delegate: client)
        let message = Array(0..<100).map { UInt8($0) }
        connection.write(message)
        // Three bytes per call: every later read re-offers what was kept, in order.
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { serverSide?.received.count ?? 0 >= 3 })
        connection.write([200])
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { (serverSide?.received.count ?? 0) >= 6 })
        XCTAssertEqual(Array(serverSide!.received.prefix(6)), [0, 1, 2, 3, 4, 5])
        server.close()
        connection.abort()
    }

    func testCloseFlushesEverythingQueuedFirst() throws {
        let loop = try EventLoop()
        var serverConnection: TCPConnection?
        let server = try makeServer(loop) { c, _ in serverConnection = c }
        let client = RecordingDelegate()
        _ = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: server.port, delegate: client)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { serverConnection != nil })
        let payload = (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        serverConnection!.write(payload)
        serverConnection!.close()
        XCTAssertTrue(loop.run(timeout: .seconds(20)) { client.closed })
        XCTAssertEqual(client.received.count, payload.count)
        XCTAssertTrue(client.received == payload)
        server.close()
    }

    func testHighWaterMarkReportsBackpressureAndRecovery() throws {
        let loop = try EventLoop()
        var serverConnection: TCPConnection?
        var serverDelegate: RecordingDelegate?
        let server = try makeServer(loop) { c, d in serverConnection = c; serverDelegate = d }
        let client = RecordingDelegate()
        let clientConnection = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: server.port, delegate: client)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { serverConnection != nil && client.connected })
        clientConnection.pauseReading()
        let chunk = [UInt8](repeating: 7, count: 64 * 1024)
        // Write until the kernel buffers are full and our own buffer passes the mark.
        var written = 0
        while serverConnection!.isWritable && written < 64 << 20 {
            serverConnection!.write(chunk)
            written += chunk.count
            loop.turn(maxWaitNanos: 0)
        }
        XCTAssertFalse(serverConnection!.isWritable)
        XCTAssertTrue(loop.run(timeout: .seconds(2)) { serverDelegate!.writabilityChanges == [false] })
        clientConnection.resumeReading()
        XCTAssertTrue(loop.run(timeout: .seconds(20)) { serverDelegate!.writabilityChanges == [false, true] })
        XCTAssertTrue(loop.run(timeout: .seconds(20)) { client.received.count == written })
        server.close()
        clientConnection.abort()
        serverConnection!.abort()
    }

    func testIdleConnectionsAreClosed() throws {
        let loop = try EventLoop()
        let server = try makeServer(loop) { c, _ in c.idleTimeout = .milliseconds(200) }
        let client = RecordingDelegate()
        _ = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: server.port, delegate: client)
        let start = loop.nowNanos
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.closed })
        let elapsed = loop.nowNanos - start
        XCTAssertGreaterThanOrEqual(elapsed, 150_000_000)
        server.close()
    }

    func testConnectToAClosedPortReportsTheError() throws {
        let loop = try EventLoop()
        // Bind then close to find a port nobody listens on.
        let probe = try TCPServer(loop: loop, host: "127.0.0.1", port: 0) { _ in }
        let port = probe.port
        probe.close()
        let client = RecordingDelegate()
        _ = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: port, delegate: client)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.closed })
        XCTAssertFalse(client.connected)
        XCTAssertEqual(client.closeError?.errno, ECONNREFUSED)
    }

    func testReusePortServersOnEveryLoopShareConnections() throws {
        let accepted = Mutex([0, 0])
        let portBox = Mutex(0)
        let group = try EventLoopGroup(threads: 2) { loop, index in
            let port = portBox.withLock { $0 }
            let server = try TCPServer(loop: loop, host: "127.0.0.1", port: port) { connection in
                accepted.withLock { $0[index] += 1 }
                connection.delegate = RecordingDelegate()
                connection.close()
            }
            portBox.withLock { if $0 == 0 { $0 = server.port } }
        }
        defer { group.shutdown() }
        let port = portBox.withLock { $0 }
        let loop = try EventLoop()
        var clients: [RecordingDelegate] = []
        for _ in 0..<200 {
            let d = RecordingDelegate()
            clients.append(d)
            _ = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: port, delegate: d)
        }
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { clients.allSatisfy { $0.closed } })
        let counts = accepted.withLock { $0 }
        XCTAssertEqual(counts[0] + counts[1], 200)
        XCTAssertGreaterThan(counts[0], 0, "the kernel spreads connections over both loops")
        XCTAssertGreaterThan(counts[1], 0, "the kernel spreads connections over both loops")
    }
}
