import CEpoll
import Foundation
import Glibc
import Synchronization
import XCTest
@testable import Reactor

/// Counts readiness events on an eventfd and optionally runs an action when it fires.
private final class EventFDHandler: IOHandler {
    let fd: Int32
    var calls = 0
    var onFire: (() -> Void)?
    init(fd: Int32) { self.fd = fd }
    func handleIO(_ mask: IOMask) {
        calls += 1
        _ = CEpoll_eventfd_drain(fd)
        onFire?()
    }
}

final class EventLoopTests: XCTestCase {
    func testEventsForAClosedAndReusedDescriptorAreDropped() throws {
        let loop = try EventLoop()
        let first = EventFDHandler(fd: CEpoll_eventfd())
        let second = EventFDHandler(fd: CEpoll_eventfd())
        try loop.register(first.fd, mask: .readable, handler: first)
        try loop.register(second.fd, mask: .readable, handler: second)
        var reused: EventFDHandler?
        // Whichever fires first closes the other and reuses its number at once; the event
        // epoll already returned for the closed one must not reach the newcomer.
        func closeOtherAndReuse(_ victim: EventFDHandler) {
            loop.deregister(victim.fd)
            close(victim.fd)
            let fresh = EventFDHandler(fd: CEpoll_eventfd())
            XCTAssertEqual(fresh.fd, victim.fd, "the kernel hands out the lowest free number")
            try? loop.register(fresh.fd, mask: .readable, handler: fresh)
            reused = fresh
        }
        first.onFire = { if reused == nil { closeOtherAndReuse(second) } }
        second.onFire = { if reused == nil { closeOtherAndReuse(first) } }
        _ = CEpoll_eventfd_signal(first.fd)
        _ = CEpoll_eventfd_signal(second.fd)
        loop.turn(maxWaitNanos: 100_000_000)
        XCTAssertEqual(first.calls + second.calls, 1)
        XCTAssertEqual(reused?.calls, 0, "a stale event reached the handler of a reused descriptor")
        loop.turn(maxWaitNanos: 10_000_000)
        XCTAssertEqual(reused?.calls, 0)
        if let reused { loop.deregister(reused.fd); close(reused.fd) }
        let survivor = first.calls == 1 ? first : second
        loop.deregister(survivor.fd)
        close(survivor.fd)
    }

    func testOtherThreadsHandWorkThroughTheHandle() throws {
        let group = try EventLoopGroup(threads: 2)
        defer { group.shutdown() }
        let counter = Mutex(0)
        let threads = Mutex(Set<UInt>())
        let workers = 4
        let done = Mutex(0)
        for w in 0..<workers {
            Thread.detachNewThread {
                for _ in 0..<1_000 {
                    group.handle(for: w).execute { _ in
                        counter.withLock { $0 += 1 }
                        threads.withLock { _ = $0.insert(pthread_self()) }
                    }
                }
                done.withLock { $0 += 1 }
            }
        }
        while done.withLock({ $0 }) < workers { usleep(1_000) }
        // submitAndWait runs after everything queued before it on that loop.
        for handle in group.handles { _ = try handle.submitAndWait { _ in 0 } }
        XCTAssertEqual(counter.withLock { $0 }, workers * 1_000)
        XCTAssertEqual(threads.withLock { $0.count }, 2, "work ran on the two loop threads only")
    }

    func testBeforeSleepHooksRunEveryTurn() throws {
        let loop = try EventLoop()
        var hookRuns = 0
        loop.addBeforeSleepHook { hookRuns += 1 }
        loop.turn(maxWaitNanos: 0)
        loop.turn(maxWaitNanos: 0)
        XCTAssertEqual(hookRuns, 2)
    }

    func testGroupSetupFailureIsReported() {
        XCTAssertThrowsError(try EventLoopGroup(threads: 2) { _, index in
            if index == 1 { throw SocketError(errno: EINVAL, operation: "setup") }
        })
    }
}
