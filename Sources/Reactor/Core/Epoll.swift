import CEpoll
import Glibc

/// Readiness of a descriptor. Errors and hang-ups are reported as readable and writable,
/// so a handler learns the error from its next read or write (as Redis' ae does).
public struct IOMask: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let readable = IOMask(rawValue: 1)
    public static let writable = IOMask(rawValue: 2)
}

/// The epoll syscall backend, nothing else: registration calls and one wait.
struct Epoll {
    let fd: Int32
    let events: UnsafeMutablePointer<epoll_event>
    let capacity: Int32

    init(capacity: Int32 = 1024) throws {
        fd = CEpoll_create()
        guard fd >= 0 else { throw SocketError.current("epoll_create1") }
        self.capacity = capacity
        events = UnsafeMutablePointer<epoll_event>.allocate(capacity: Int(capacity))
    }

    func destroy() {
        close(fd)
        events.deallocate()
    }

    private static func epollBits(_ mask: IOMask) -> UInt32 {
        var bits: UInt32 = 0
        if mask.contains(.readable) { bits |= CEpoll_IN | CEpoll_RDHUP }
        if mask.contains(.writable) { bits |= CEpoll_OUT }
        return bits
    }

    /// Level-triggered: a handler that leaves bytes unread is called again next turn.
    func add(_ descriptor: Int32, mask: IOMask, tag: UInt64) throws {
        if CEpoll_ctl(fd, CEpoll_CTL_ADD, descriptor, Self.epollBits(mask), tag) != 0 {
            throw SocketError.current("epoll_ctl(ADD)")
        }
    }

    /// Changes the interest set; falls back to ADD when the kernel forgot the descriptor
    /// (libpq may close and reopen a socket under the same number).
    func modify(_ descriptor: Int32, mask: IOMask, tag: UInt64) throws {
        if CEpoll_ctl(fd, CEpoll_CTL_MOD, descriptor, Self.epollBits(mask), tag) != 0 {
            if errno == ENOENT {
                try add(descriptor, mask: mask, tag: tag)
                return
            }
            throw SocketError.current("epoll_ctl(MOD)")
        }
    }

    func remove(_ descriptor: Int32) {
        _ = CEpoll_ctl(fd, CEpoll_CTL_DEL, descriptor, 0, 0)
    }

    /// Waits for events; returns how many are ready (0 on timeout or EINTR).
    func wait(timeoutMillis: Int32) -> Int {
        let n = CEpoll_wait(fd, events, capacity, timeoutMillis)
        return n < 0 ? 0 : Int(n)
    }

    func event(_ index: Int) -> (mask: IOMask, tag: UInt64) {
        let bits = CEpoll_event_mask(events, Int32(index))
        var mask: IOMask = []
        if bits & (CEpoll_IN | CEpoll_RDHUP) != 0 { mask.insert(.readable) }
        if bits & CEpoll_OUT != 0 { mask.insert(.writable) }
        if bits & (CEpoll_ERR | CEpoll_HUP) != 0 { mask.formUnion([.readable, .writable]) }
        return (mask, CEpoll_event_data(events, Int32(index)))
    }
}
