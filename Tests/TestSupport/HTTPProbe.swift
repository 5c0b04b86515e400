import Foundation
import Glibc
import Reactor

/// Blocking HTTP/1.1 for tests: one request per connection, the answer parsed by the
/// reactor's own response parser.
public func httpRequest(port: Int, method: String, path: String, body: String? = nil, headers: [(String, String)] = [],
                        timeoutSeconds: Int = 10) throws -> (status: Int, body: String) {
    let fd = try rawConnect(port: port, timeoutSeconds: timeoutSeconds)
    defer { close(fd) }
    var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    for (name, value) in headers { request += "\(name): \(value)\r\n" }
    if let body { request += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)" } else { request += "\r\n" }
    let bytes = Array(request.utf8)
    var sent = 0
    while sent < bytes.count {
        let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard n > 0 else { throw SocketError(errno: errno, operation: "send") }
        sent += n
    }
    guard let response = readResponses(fd, count: 1).first else {
        throw SocketError(errno: ECONNRESET, operation: "no HTTP response from port \(port)")
    }
    return response
}

public func httpGet(port: Int, path: String) throws -> (status: Int, body: String) {
    try httpRequest(port: port, method: "GET", path: path)
}

public func httpPost(port: Int, path: String, body: String) throws -> (status: Int, body: String) {
    try httpRequest(port: port, method: "POST", path: path, body: body)
}

/// 127.0.0.1:`port` as a socket address.
public func loopbackAddress(port: Int) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    return addr
}

/// `connect(2)` of `fd` to 127.0.0.1:`port`; its return code.
public func connectLoopback(_ fd: Int32, port: Int) -> Int32 {
    var addr = loopbackAddress(port: port)
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

/// A blocking TCP connection to 127.0.0.1 for byte-exact tests.
public func rawConnect(port: Int, timeoutSeconds: Int = 10) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard connectLoopback(fd, port: port) == 0 else {
        let error = SocketError(errno: errno, operation: "connect to port \(port)")
        close(fd)
        throw error
    }
    var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    return fd
}

/// Reads `count` responses from a blocking socket.
public func readResponses(_ fd: Int32, count: Int) -> [(status: Int, body: String)] {
    var buffer: [UInt8] = []
    var out: [(Int, String)] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while out.count < count {
        var parser = HTTPResponseParser()
        let parsed: HTTPResponseParseResult = buffer.withUnsafeBytes { parser.parse($0) }
        if case .response(let response, let consumed) = parsed {
            out.append((response.status, response.bodyString))
            buffer.removeFirst(consumed)
            continue
        }
        let n = recv(fd, &chunk, chunk.count, 0)
        if n <= 0 { break }
        buffer += chunk[0..<n]
    }
    return out
}

/// The path of a product built next to the test bundle (`swift build` builds them all).
public func productPath(_ name: String) throws -> String {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    let fallback = FileManager.default.currentDirectoryPath + "/.build/debug/" + name
    guard FileManager.default.isExecutableFile(atPath: fallback) else {
        throw TestServerError.missing("\(name) is not built: run swift build first")
    }
    return fallback
}

/// VmRSS of a process, in bytes.
public func residentBytes(pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
    return (Int(line.split(separator: " ").dropFirst().first { !$0.isEmpty } ?? "0") ?? 0) * 1024
}
