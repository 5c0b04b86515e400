import CEpoll
import Glibc

/// A listening TCP socket on one loop. With `reusePort`, every loop of a group binds the
/// same port and the kernel spreads incoming connections across them.
public final class TCPServer: IOHandler {
    /// The loop that accepts.
    public let loop: EventLoop
    private var fd: Int32
    private let onAccept: (TCPConnection) -> Void
    private var pausedUntilFDsFree: TimerHandle?
    /// The bound port (the kernel's choice when 0 was asked for).
    public let port: Int
    /// The bound address.
    public let address: SocketAddress

    /// Binds and listens; every accepted connection goes to `onAccept`, which must set its
    /// delegate (a connection left without one is closed).
    public init(loop: EventLoop, host: String, port: Int, reusePort: Bool = true, backlog: Int32 = 4096,
                onAccept: @escaping (TCPConnection) -> Void) throws {
        let address = try SocketAddress(host: host, port: port)
        let fd = CEpoll_socket_nonblocking(address.family, Int32(SOCK_STREAM.rawValue))
        guard fd >= 0 else { throw SocketError.current("socket") }
        do {
            guard CEpoll_set_reuseaddr(fd) == 0 else { throw SocketError.current("SO_REUSEADDR") }
            if reusePort { guard CEpoll_set_reuseport(fd) == 0 else { throw SocketError.current("SO_REUSEPORT") } }
            let bound = address.withSockaddr { bind(fd, $0, $1) }
            guard bound == 0 else { throw SocketError.current("bind \(address)") }
            guard listen(fd, backlog) == 0 else { throw SocketError.current("listen") }
        } catch {
            Glibc.close(fd)
            throw error
        }
        self.loop = loop
        self.fd = fd
        self.onAccept = onAccept
        self.address = SocketAddress.local(of: fd) ?? address
        self.port = self.address.port
        try loop.register(fd, mask: .readable, handler: self)
    }

    /// True until `close()`.
    public var isListening: Bool { fd >= 0 }

    public func handleIO(_ mask: IOMask) {
        // Bounded per event so a connection storm cannot starve established connections.
        for _ in 0..<256 {
            guard fd >= 0 else { return }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { CEpoll_accept4(fd, $0, &length) }
            }
            if client < 0 {
                let error = errno
                if error == EAGAIN || error == EWOULDBLOCK || error == EINTR || error == ECONNABORTED { return }
                if error == EMFILE || error == ENFILE {
                    // Out of descriptors: level-triggered accept would spin, so stop listening briefly.
                    loop.deregister(fd)
                    pausedUntilFDsFree = loop.schedule(in: .milliseconds(100)) { [weak self] in
                        guard let self, self.fd >= 0 else { return }
                        try? self.loop.register(self.fd, mask: .readable, handler: self)
                    }
                }
                return
            }
            _ = CEpoll_set_nodelay(client)
            let connection = TCPConnection(acceptedFD: client, loop: loop,
                                           peer: SocketAddress(storage: storage, length: length))
            onAccept(connection)
            connection.startAccepted()
        }
    }

    /// Stops listening. Accepted connections are not affected.
    public func close() {
        guard fd >= 0 else { return }
        if let timer = pausedUntilFDsFree { loop.cancel(timer) }
        loop.deregister(fd)
        Glibc.close(fd)
        fd = -1
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }
}
