import Glibc

/// The few POSIX socket calls the fault proxy needs, all non-blocking: the proxy thread
/// must never wait on one socket while others have bytes to move or faults to apply.
enum FaultProxySocket {
    /// The errno of a failed call, as a readable line for error messages.
    static func describe(_ call: String, _ code: Int32 = errno) -> String {
        "\(call): \(String(cString: strerror(code))) (errno \(code))"
    }

    /// A non-blocking listening socket on 127.0.0.1:`port` (0: the kernel picks), and the
    /// port it got.
    static func listen(port: Int) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FaultProxyError.socket(describe("socket")) }
        var one: Int32 = 1
        // A test that restarts a proxy on the port it had must not wait out TIME_WAIT.
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = loopbackAddress(port: port)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0, Glibc.listen(fd, 128) == 0 else {
            let message = describe("bind/listen on 127.0.0.1:\(port)")
            close(fd)
            throw FaultProxyError.socket(message)
        }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }

    /// The IPv4 address of `host` (a dotted quad or a name such as `localhost`).
    static func resolve(_ host: String) throws -> in_addr {
        var addr = in_addr()
        if inet_pton(AF_INET, host, &addr) == 1 { return addr }
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list, let sa = first.pointee.ai_addr else {
            throw FaultProxyError.socket("cannot resolve \(host) to an IPv4 address")
        }
        defer { freeaddrinfo(list) }
        return sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
    }

    /// Starts a non-blocking connect; the caller polls for writability and then asks
    /// `connectError`. Nil when the socket could not even be made or the connect failed at once.
    static func startConnect(to address: in_addr, port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr = address
        addr.sin_port = UInt16(port).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc == 0 || errno == EINPROGRESS { return fd }
        close(fd)
        return nil
    }

    /// The outcome of a finished non-blocking connect (0: connected).
    static func connectError(_ fd: Int32) -> Int32 {
        var code: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &len) == 0 else { return errno }
        return code
    }

    /// Accepts one pending client, non-blocking; nil when none is waiting.
    static func accept(_ listenFD: Int32) -> Int32? {
        let fd = Glibc.accept(listenFD, nil, nil)
        guard fd >= 0 else { return nil }
        setNonBlocking(fd)
        return fd
    }

    /// O_NONBLOCK and FD_CLOEXEC (accept4 and pipe2 are not visible without _GNU_SOURCE).
    static func setNonBlocking(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    }

    /// A non-blocking self-pipe: (read end, write end).
    static func makePipe() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw FaultProxyError.socket(describe("pipe")) }
        setNonBlocking(fds[0])
        setNonBlocking(fds[1])
        return (fds[0], fds[1])
    }

    /// Closes with an RST instead of a FIN: SO_LINGER with a zero timeout makes close()
    /// discard unsent bytes and abort, so the peer's next read or write fails with
    /// ECONNRESET, as when a middlebox or a crashed host kills the connection.
    static func reset(_ fd: Int32) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(fd)
    }

    /// Turns off Nagle: the proxy forwards chunks as they come, and a 40 ms delayed-ACK
    /// stall would look like latency the test never asked for.
    static func noDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

}

/// Why a fault proxy could not start.
public enum FaultProxyError: Error, CustomStringConvertible {
    /// A socket call failed; the text names the call and the errno.
    case socket(String)

    /// The failure as one line.
    public var description: String {
        switch self {
        case .socket(let text): return "fault proxy: \(text)"
        }
    }
}
