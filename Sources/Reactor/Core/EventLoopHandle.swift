import CEpoll
import Dispatch
import Synchronization

/// Work handed to a loop from another thread; it receives the loop it runs on.
public typealias LoopWork = @Sendable (EventLoop) -> Void

/// The only shared state of a loop: a locked queue plus an eventfd wake-up (NIO's wakeup0).
final class LoopInbox: Sendable {
    let wakeFD: Int32
    private let queue = Mutex<[LoopWork]>([])

    init(wakeFD: Int32) { self.wakeFD = wakeFD }

    func push(_ work: @escaping LoopWork) {
        let wasEmpty = queue.withLock { queue -> Bool in
            queue.append(work)
            return queue.count == 1
        }
        // Only the first item needs a wake-up; the loop drains everything at once.
        if wasEmpty { _ = CEpoll_eventfd_signal(wakeFD) }
    }

    func takeAll() -> [LoopWork] {
        queue.withLock { queue in
            let items = queue
            queue.removeAll()
            return items
        }
    }
}

/// A thread-safe reference to an event loop: the way other threads hand it work.
public struct EventLoopHandle: Sendable {
    let inbox: LoopInbox

    /// Runs `work` on the loop's thread at its next turn.
    public func execute(_ work: @escaping LoopWork) {
        inbox.push(work)
    }

    /// Asks the loop to return from `run()`.
    public func stop() {
        inbox.push { $0.stop() }
    }

    /// Runs `work` on the loop and waits for its result (setup and tests, never the hot path).
    public func submitAndWait<T: Sendable>(_ work: @escaping @Sendable (EventLoop) throws -> T) throws -> T {
        let result = Mutex<Result<T, Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        inbox.push { loop in
            let r = Result { try work(loop) }
            result.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        return try result.withLock { $0! }.get()
    }
}
