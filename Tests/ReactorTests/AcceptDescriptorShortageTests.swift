import Foundation
import Glibc
import Reactor
import TestSupport
import XCTest

/// A listener that runs out of descriptors (EMFILE) neither spins nor stops: it pauses
/// accepting and takes the waiting clients once descriptors free up. The shortage is made
/// real by lowering this process's RLIMIT_NOFILE for the test's duration.
final class AcceptDescriptorShortageTests: XCTestCase {
    /// Keeps an accepted connection open and ignores its input.
    private final class Holder: TCPConnectionDelegate {
        func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer) -> Int { bytes.count }
        func connectionDidClose(_ connection: TCPConnection, error: SocketError?) {}
    }

    func testAListenerOutOfDescriptorsPausesInsteadOfSpinningAndAcceptsAgainOnceSomeFree() throws {
        let loop = try EventLoop()
        var accepted: [TCPConnection] = []
        let server = try TCPServer(loop: loop, host: "127.0.0.1", port: 0) { connection in
            connection.delegate = Holder()
            connection.write("hi")
            accepted.append(connection)
        }
        defer { server.close() }
        // Twelve clients complete their handshakes into the backlog before the shortage.
        var clients: [Int32] = []
        defer { clients.forEach { _ = close($0) } }
        for _ in 0..<12 { clients.append(try rawConnect(port: server.port, timeoutSeconds: 5)) }

        var original = rlimit()
        XCTAssertEqual(getrlimit(RLIMIT_NOFILE_CONSTANT, &original), 0)
        var low = original
        low.rlim_cur = rlim_t(try Self.limitLeaving(free: 4))
        XCTAssertEqual(setrlimit(RLIMIT_NOFILE_CONSTANT, &low), 0)
        defer { _ = setrlimit(RLIMIT_NOFILE_CONSTANT, &original) }

        let cpuBefore = Self.threadCPUSeconds()
        _ = loop.run(timeout: .seconds(1)) { false }
        let cpu = Self.threadCPUSeconds() - cpuBefore
        XCTAssertEqual(accepted.count, 4, "room for four descriptors")
        XCTAssertGreaterThanOrEqual(server.acceptPauses, 1)
        XCTAssertTrue(server.isListening)
        // A level-triggered spin would burn the whole second; a pause burns next to nothing.
        XCTAssertLessThan(cpu, 0.5, "the loop spun on the listening socket")

        // Two descriptors free up: the paused listener takes two more clients by itself.
        accepted[0].abort()
        accepted[1].abort()
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { accepted.count == 6 }, "accepted \(accepted.count)")

        // The shortage ends: every client is accepted and served.
        XCTAssertEqual(setrlimit(RLIMIT_NOFILE_CONSTANT, &original), 0)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { accepted.count == 12 }, "accepted \(accepted.count)")
        _ = loop.run(timeout: .milliseconds(100)) { false }
        for fd in clients {
            var buffer = [UInt8](repeating: 0, count: 2)
            XCTAssertEqual(recv(fd, &buffer, 2, Int32(MSG_WAITALL)), 2)
            XCTAssertEqual(buffer, Array("hi".utf8))
        }
        for connection in accepted { connection.close() }
    }

    /// The descriptor limit under which exactly `free` descriptor numbers are unused
    /// (new descriptors take the lowest free number, so holes count).
    private static func limitLeaving(free: Int) throws -> Int {
        let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap { Int($0) }
        // The directory listing's own descriptor is closed again by now.
        let used = Set(open.filter { fcntl(Int32($0), F_GETFD) != -1 })
        var unused = 0
        var limit = 0
        while unused < free {
            if !used.contains(limit) { unused += 1 }
            limit += 1
        }
        return limit
    }

    private static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// RLIMIT_NOFILE as the type `getrlimit` takes on Glibc.
private let RLIMIT_NOFILE_CONSTANT = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
