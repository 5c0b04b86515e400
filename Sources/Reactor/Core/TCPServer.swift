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
    /// Shared cap on open connections (several listeners may share one); nil: no cap.
    /// A connection accepted over the cap is closed at once. Set on the loop's thread.
    public var connectionLimit: ConnectionLimit?
    /// Connections this listener closed at accept because `connectionLimit` was reached.
    public private(set) var refusedConnections = 0
    /// Times accepting paused because the process or system ran out of descriptors.
    public private(set) var acceptPauses = 0
    /// How long accepting pauses when descriptors run out.
    static let acceptPause = Duration.milliseconds(100)

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
                switch errno {
                case EAGAIN, EWOULDBLOCK:
                    return
                case EINTR, ECONNABORTED, EPROTO, EPERM, ENETDOWN, ENETUNREACH, EHOSTDOWN, EHOSTUNREACH,
                     ENONET, ENOPROTOOPT, EOPNOTSUPP:
                    // About one connection, which the kernel has already dropped: next.
                    continue
                default:
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: a shortage that retrying now cannot fix.
                    pauseAccepting()
                    return
                }
            }
            if let limit = connectionLimit, !limit.acquire() {
                // Full: closed before a byte moves, so the client learns at once.
                Glibc.close(client)
                refusedConnections += 1
                continue
            }
            _ = CEpoll_set_nodelay(client)
            let connection = TCPConnection(acceptedFD: client, loop: loop,
                                           peer: SocketAddress(storage: storage, length: length))
            connection.limitSlot = connectionLimit
            onAccept(connection)
            connection.startAccepted()
        }
    }

    /// Out of descriptors (or kernel memory): the waiting connection stays in the backlog
    /// and the listening socket stays readable, so a level-triggered epoll would wake us
    /// for it in a loop at 100 % CPU. Instead the socket leaves epoll for a moment and is
    /// tried again.
    ///
    /// Why a pause and not a reserve descriptor to accept-and-close with (libuv's and
    /// nginx's other answer): a pause keeps the queued clients, who are served as soon as
    /// descriptors free up (a burst of closes is usually around the corner), while
    /// accept-and-close would refuse every one of them even when the shortage lasts 10 ms;
    /// it keeps no descriptor idle; and it works for ENFILE, where a descriptor we give back
    /// may be taken by another process before we accept. Clients beyond the backlog wait in
    /// TCP's own SYN retries. `connectionLimit` set below the descriptor limit is what keeps
    /// this path rare.
    private func pauseAccepting() {
        guard pausedUntilFDsFree == nil else { return }
        acceptPauses += 1
        loop.deregister(fd)
        pausedUntilFDsFree = loop.schedule(in: Self.acceptPause) { [weak self] in
            guard let self else { return }
            self.pausedUntilFDsFree = nil
            guard self.fd >= 0 else { return }
            try? self.loop.register(self.fd, mask: .readable, handler: self)
        }
    }

    /// Stops listening. Accepted connections are not affected.
    public func close() {
        guard fd >= 0 else { return }
        if let timer = pausedUntilFDsFree { loop.cancel(timer); pausedUntilFDsFree = nil }
        loop.deregister(fd)
        Glibc.close(fd)
        fd = -1
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }
}
