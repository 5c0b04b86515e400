import CEpoll
import Glibc

/// An IPv4 or IPv6 socket address, resolved before any nonblocking work starts
/// (getaddrinfo blocks, so it must never run per event).
public struct SocketAddress: CustomStringConvertible, Sendable {
    var storage = sockaddr_storage()
    var length: socklen_t = 0

    /// Resolves `host` (an IP literal or a name) and `port`; the first address wins.
    public init(host: String, port: Int) throws {
        guard (0...65535).contains(port) else {
            throw SocketError(errno: EINVAL, operation: "port \(port) out of range")
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            // AI_ADDRCONFIG hides 127.0.0.1 in sandboxes without a configured address: retry without it.
            hints.ai_flags = AI_NUMERICSERV
            let retry = getaddrinfo(host, String(port), &hints, &result)
            guard retry == 0, let again = result else {
                throw SocketError(errno: EINVAL, operation: "resolve \(host): \(String(cString: gai_strerror(rc)))")
            }
            self.init(copying: again)
            freeaddrinfo(again)
            return
        }
        self.init(copying: first)
        freeaddrinfo(first)
    }

    private init(copying info: UnsafeMutablePointer<addrinfo>) {
        length = info.pointee.ai_addrlen
        withUnsafeMutableBytes(of: &storage) { raw in
            raw.copyMemory(from: UnsafeRawBufferPointer(start: info.pointee.ai_addr, count: Int(length)))
        }
    }

    /// Copies an address the kernel filled in (accept, getpeername).
    init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
    }

    var family: Int32 { Int32(storage.ss_family) }

    /// The port number.
    public var port: Int {
        var copy = storage
        return withUnsafePointer(to: &copy) { raw in
            if family == AF_INET6 {
                return raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
            return raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    /// "ip:port" (IPv6 in brackets).
    public var description: String {
        var copy = storage
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        withUnsafePointer(to: &copy) { raw in
            if family == AF_INET6 {
                raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a in
                    var addr = a.pointee.sin6_addr
                    _ = inet_ntop(AF_INET6, &addr, &text, socklen_t(text.count))
                }
            } else {
                raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a in
                    var addr = a.pointee.sin_addr
                    _ = inet_ntop(AF_INET, &addr, &text, socklen_t(text.count))
                }
            }
        }
        let host = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var copy = storage
        return withUnsafePointer(to: &copy) { raw in
            raw.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    /// The local address a socket is bound to.
    static func local(of fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return rc == 0 ? SocketAddress(storage: storage, length: length) : nil
    }

    /// The peer address of a connected socket.
    static func peer(of fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        return rc == 0 ? SocketAddress(storage: storage, length: length) : nil
    }
}
