import Glibc
import TestSupport
import XCTest

/// A blocking TCP client that speaks raw bytes, for the fault proxy tests: it tells a
/// reset from a clean close from silence, which a protocol client would blur, and every
/// wait is bounded.
final class RawTestClient {
    /// What one bounded read saw.
    enum Outcome: Equatable {
        case data([UInt8])
        /// The peer closed cleanly (FIN).
        case closed
        /// The peer aborted (RST): ECONNRESET.
        case reset
        /// Nothing within the timeout, and the connection is still open.
        case silent
    }

    let fd: Int32

    init(port: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard connectLoopback(fd, port: port) == 0 else {
            let code = errno
            close(fd)
            throw NSError(domain: "RawTestClient", code: Int(code), userInfo: [NSLocalizedDescriptionKey: "connect to \(port): errno \(code)"])
        }
    }

    deinit { close(fd) }

    /// Sends all of `text` (a test's requests are small; a failure is returned, not thrown,
    /// since writing into a reset connection is part of what some tests check).
    @discardableResult
    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    /// One read, waiting at most `timeout` for something to happen.
    func read(timeout: Duration) -> Outcome {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ms = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        guard poll(&pfd, 1, ms) > 0 else { return .silent }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, 0)
        if n > 0 { return .data(Array(buffer[0..<n])) }
        if n == 0 { return .closed }
        return errno == ECONNRESET ? .reset : .closed
    }

    /// Reads until the text received contains `expected`; nil (after a test failure) when
    /// the connection ends or the deadline passes first.
    @discardableResult
    func readUntil(_ expected: String, timeout: Duration = .seconds(10),
                   file: StaticString = #filePath, line: UInt = #line) -> String? {
        let deadline = ContinuousClock.now + timeout
        var received: [UInt8] = []
        while ContinuousClock.now < deadline {
            switch read(timeout: .milliseconds(100)) {
            case .data(let bytes):
                received += bytes
                let text = String(decoding: received, as: UTF8.self)
                if text.contains(expected) { return text }
            case .silent:
                continue
            case let ending:
                XCTFail("connection ended (\(ending)) before \(expected.debugDescription); got \(String(decoding: received, as: UTF8.self).debugDescription)",
                        file: file, line: line)
                return nil
            }
        }
        XCTFail("no \(expected.debugDescription) within \(timeout); got \(String(decoding: received, as: UTF8.self).debugDescription)", file: file, line: line)
        return nil
    }

    /// Reads exactly `count` bytes (nil when the connection ends or the deadline passes
    /// first): for large replies, compared as bytes rather than decoded again per read.
    func readBytes(_ count: Int, timeout: Duration = .seconds(30)) -> [UInt8]? {
        let deadline = ContinuousClock.now + timeout
        var received: [UInt8] = []
        while received.count < count && ContinuousClock.now < deadline {
            switch read(timeout: .milliseconds(100)) {
            case .data(let bytes): received += bytes
            case .silent: continue
            default: return nil
            }
        }
        return received.count == count ? received : nil
    }

    /// Reads until the connection ends, collecting whatever data came first; `.silent`
    /// when it is still open at the deadline.
    func readToEnd(timeout: Duration = .seconds(10)) -> (data: [UInt8], end: Outcome) {
        let deadline = ContinuousClock.now + timeout
        var received: [UInt8] = []
        while ContinuousClock.now < deadline {
            switch read(timeout: .milliseconds(100)) {
            case .data(let bytes): received += bytes
            case .silent: continue
            case let ending: return (received, ending)
            }
        }
        return (received, .silent)
    }
}

/// RESP for one command, as any Redis client sends it.
func resp(_ words: String...) -> String {
    "*\(words.count)\r\n" + words.map { "$\($0.utf8.count)\r\n\($0)\r\n" }.joined()
}
