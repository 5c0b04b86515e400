import Dispatch
import Glibc
import Synchronization

/// One event loop per thread (one thread per core by default). Loops share nothing on the
/// hot path: servers are bound on every loop with SO_REUSEPORT so the kernel spreads
/// connections, and loops talk to each other only through `EventLoopHandle`.
public final class EventLoopGroup: Sendable {
    /// Handles to the loops, in thread order.
    public let handles: [EventLoopHandle]
    private let threads: Mutex<[pthread_t]>

    /// The number of online cores.
    public static var coreCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Starts `threads` loops. `setup` runs on each loop's own thread before it serves
    /// (bind servers there); if any setup throws, every loop is stopped and the error rethrown.
    public init(threads count: Int = EventLoopGroup.coreCount,
                name: String = "reactor",
                setup: @escaping @Sendable (EventLoop, Int) throws -> Void = { _, _ in }) throws {
        precondition(count > 0, "EventLoopGroup needs at least one thread")
        var handles: [EventLoopHandle] = []
        var threadIDs: [pthread_t] = []
        var firstError: Error?
        for index in 0..<count {
            let started = LoopStart(index: index, name: "\(name)-\(index)", setup: setup)
            let box = Unmanaged.passRetained(started).toOpaque()
            var tid = pthread_t()
            let rc = pthread_create(&tid, nil, { raw in
                let start = Unmanaged<LoopStart>.fromOpaque(raw!).takeRetainedValue()
                start.runOnThisThread()
                return nil
            }, box)
            precondition(rc == 0, "pthread_create failed: \(rc)")
            threadIDs.append(tid)
            started.ready.wait()
            switch started.outcome.withLock({ $0 }) {
            case .success(let handle)?: handles.append(handle)
            case .failure(let error)?: firstError = firstError ?? error
            case nil: break
            }
        }
        self.handles = handles
        self.threads = Mutex(threadIDs)
        if let firstError {
            shutdown()
            throw firstError
        }
    }

    /// The loop for the `index`-th connection, round robin.
    public func handle(for index: Int) -> EventLoopHandle {
        handles[index % handles.count]
    }

    /// Stops every loop and waits for its thread to finish. Idempotent.
    public func shutdown() {
        for handle in handles { handle.stop() }
        let toJoin = threads.withLock { ids -> [pthread_t] in
            let all = ids
            ids.removeAll()
            return all
        }
        for tid in toJoin { pthread_join(tid, nil) }
    }

    deinit { shutdown() }
}

/// What a new loop thread needs, and how it reports back.
private final class LoopStart: Sendable {
    let index: Int
    let name: String
    let setup: @Sendable (EventLoop, Int) throws -> Void
    let ready = DispatchSemaphore(value: 0)
    let outcome = Mutex<Result<EventLoopHandle, Error>?>(nil)

    init(index: Int, name: String, setup: @escaping @Sendable (EventLoop, Int) throws -> Void) {
        self.index = index
        self.name = name
        self.setup = setup
    }

    func runOnThisThread() {
        let loop: EventLoop
        do {
            loop = try EventLoop()
            try setup(loop, index)
        } catch {
            outcome.withLock { $0 = .failure(error) }
            ready.signal()
            return
        }
        outcome.withLock { $0 = .success(loop.handle) }
        ready.signal()
        loop.run()
    }
}
