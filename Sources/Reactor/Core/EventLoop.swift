import CEpoll
import Glibc

/// Something registered with a loop for readiness events on one descriptor.
public protocol IOHandler: AnyObject {
    /// The descriptor is ready. Errors and hang-ups arrive as `[.readable, .writable]`.
    func handleIO(_ mask: IOMask)
}

/// Work a loop runs in its before-sleep pass (pending writes, mostly).
protocol Flushable: AnyObject {
    func flushPending()
}

/// A single-threaded epoll event loop: one per core, sharing nothing on the hot path.
///
/// One turn: run before-sleep work (flush pending writes), wait for events (no longer than
/// the next timer), dispatch them through the flat fd table, fire expired timers, then run
/// work deferred to after the batch (close callbacks). Objects are never freed while their
/// own callback runs: the table slot and the dispatch keep them alive, and close
/// notifications run only after the batch.
public final class EventLoop {
    private struct Slot {
        var handler: IOHandler?
        var generation: UInt32 = 0
        var mask: IOMask = []
    }

    private let epoll: Epoll
    private var slots: [Slot] = []
    private var timers = TimerHeap()
    private var beforeSleepHooks: [() -> Void] = []
    private var pendingFlushes: [Flushable] = []
    private var soon: [() -> Void] = []
    private var stopRequested = false
    private var ownedObjects: [AnyObject] = []
    private let inbox: LoopInbox
    private var inboxReader: InboxReader?

    /// One receive buffer for every connection on this loop: a connection keeps bytes of
    /// its own only for an unfinished request or frame (uSockets' recv_buf).
    let receiveBuffer: UnsafeMutableRawBufferPointer
    static let receiveBufferSize = 256 * 1024

    /// Connections with an idle timeout, swept by one coarse timer.
    var idleConnections: [ObjectIdentifier: TCPConnection] = [:]
    var idleSweepTimer: TimerHandle?

    /// Creates a loop bound to no thread until `run` is called.
    public init() throws {
        epoll = try Epoll()
        receiveBuffer = .allocate(byteCount: Self.receiveBufferSize, alignment: 16)
        let wakeFD = CEpoll_eventfd()
        guard wakeFD >= 0 else { throw SocketError.current("eventfd") }
        inbox = LoopInbox(wakeFD: wakeFD)
        let reader = InboxReader(inbox: inbox)
        inboxReader = reader
        reader.loop = self
        try register(wakeFD, mask: .readable, handler: reader)
    }

    deinit {
        close(inbox.wakeFD)
        epoll.destroy()
        receiveBuffer.deallocate()
    }

    /// The thread-safe way for other threads to hand this loop work.
    public var handle: EventLoopHandle { EventLoopHandle(inbox: inbox) }

    /// Monotonic time in nanoseconds.
    public var nowNanos: UInt64 { monotonicNanos() }

    // MARK: descriptors

    private static func tag(fd: Int32, generation: UInt32) -> UInt64 {
        UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
    }

    /// Starts delivering readiness events for `fd` to `handler`.
    public func register(_ fd: Int32, mask: IOMask, handler: IOHandler) throws {
        let index = Int(fd)
        if index >= slots.count {
            slots.append(contentsOf: repeatElement(Slot(), count: max(index + 1 - slots.count, slots.count)))
        }
        slots[index].generation &+= 1
        slots[index].handler = handler
        slots[index].mask = mask
        try epoll.add(fd, mask: mask, tag: Self.tag(fd: fd, generation: slots[index].generation))
    }

    /// Changes which events `fd` is interested in (idempotent). `force` issues the syscall
    /// even when the mask is unchanged: after a library closed and reopened its socket under
    /// the same number (libpq), the kernel has forgotten it and MOD falls back to ADD.
    public func modify(_ fd: Int32, mask: IOMask, force: Bool = false) throws {
        let index = Int(fd)
        guard index < slots.count, slots[index].handler != nil else { return }
        if slots[index].mask == mask && !force { return }
        slots[index].mask = mask
        try epoll.modify(fd, mask: mask, tag: Self.tag(fd: fd, generation: slots[index].generation))
    }

    /// Stops delivering events for `fd`; events already fetched for it in this batch are
    /// dropped because the slot's generation moves on.
    public func deregister(_ fd: Int32) {
        let index = Int(fd)
        guard index < slots.count, slots[index].handler != nil else { return }
        epoll.remove(fd)
        slots[index].handler = nil
        slots[index].mask = []
        slots[index].generation &+= 1
    }

    // MARK: timers and deferred work

    /// Calls `callback` on this loop after `delay`.
    @discardableResult
    public func schedule(in delay: Duration, _ callback: @escaping () -> Void) -> TimerHandle {
        timers.makeTimer(deadline: monotonicNanos() &+ delay.nanoseconds, callback: callback)
    }

    /// Calls `callback` at a monotonic deadline (nanoseconds).
    @discardableResult
    public func schedule(atNanos deadline: UInt64, _ callback: @escaping () -> Void) -> TimerHandle {
        timers.makeTimer(deadline: deadline, callback: callback)
    }

    /// Cancels a timer; a no-op when it already fired.
    public func cancel(_ timer: TimerHandle) {
        timers.remove(timer)
        timer.callback = nil
    }

    /// Number of timers scheduled (tests and metrics).
    public var scheduledTimerCount: Int { timers.count }

    /// Runs `work` on this loop after the current batch of events, before sleeping again.
    public func executeSoon(_ work: @escaping () -> Void) {
        soon.append(work)
    }

    /// Runs `hook` on every turn before the loop sleeps.
    public func addBeforeSleepHook(_ hook: @escaping () -> Void) {
        beforeSleepHooks.append(hook)
    }

    /// Keeps `object` alive as long as the loop: for servers and services set up on a loop
    /// that nothing else holds (their callbacks refer to them weakly or unowned).
    public func keepAlive(_ object: AnyObject) {
        ownedObjects.append(object)
    }

    func scheduleFlush(_ item: Flushable) {
        pendingFlushes.append(item)
    }

    // MARK: running

    /// Runs until `stop()`; blocks the calling thread, which becomes the loop's thread.
    public func run() {
        stopRequested = false
        while !stopRequested {
            turn(maxWaitNanos: nil)
        }
    }

    /// Runs turns until `condition()` holds or `timeout` passes; returns `condition()`.
    @discardableResult
    public func run(timeout: Duration, until condition: () -> Bool) -> Bool {
        let deadline = monotonicNanos() &+ timeout.nanoseconds
        stopRequested = false
        while !condition() && !stopRequested {
            let now = monotonicNanos()
            if now >= deadline { break }
            turn(maxWaitNanos: min(deadline - now, 10_000_000))
        }
        return condition()
    }

    /// Makes `run()` return after the current turn. Call on the loop's thread; other threads
    /// use `handle.stop()`.
    public func stop() {
        stopRequested = true
    }

    private func runBeforeSleep() {
        while !pendingFlushes.isEmpty {
            let batch = pendingFlushes
            pendingFlushes.removeAll(keepingCapacity: true)
            for item in batch { item.flushPending() }
        }
        for hook in beforeSleepHooks { hook() }
        // Hooks may have queued writes; flush them before sleeping too.
        while !pendingFlushes.isEmpty {
            let batch = pendingFlushes
            pendingFlushes.removeAll(keepingCapacity: true)
            for item in batch { item.flushPending() }
        }
    }

    private func runSoon() {
        while !soon.isEmpty {
            let batch = soon
            soon.removeAll(keepingCapacity: true)
            for work in batch { work() }
        }
    }

    /// One turn of the loop. `maxWaitNanos` caps the sleep (nil: until an event or timer).
    public func turn(maxWaitNanos: UInt64?) {
        runBeforeSleep()
        var timeoutMillis: Int32 = -1
        if !soon.isEmpty || !pendingFlushes.isEmpty || stopRequested {
            timeoutMillis = 0
        } else {
            var wait = maxWaitNanos
            if let next = timers.earliest {
                let now = monotonicNanos()
                let untilTimer = next.deadline > now ? next.deadline - now : 0
                wait = min(wait ?? untilTimer, untilTimer)
            }
            if let wait {
                // Round up so we never wake just before a deadline and spin.
                timeoutMillis = Int32(clamping: (wait + 999_999) / 1_000_000)
            }
        }
        let ready = epoll.wait(timeoutMillis: timeoutMillis)
        for i in 0..<ready {
            let (mask, tag) = epoll.event(i)
            let fd = Int(UInt32(truncatingIfNeeded: tag))
            let generation = UInt32(truncatingIfNeeded: tag >> 32)
            guard fd < slots.count, slots[fd].generation == generation,
                  let handler = slots[fd].handler else { continue }
            handler.handleIO(mask)
        }
        runSoon()
        fireTimers()
        runSoon()
    }

    private func fireTimers() {
        guard !timers.isEmpty else { return }
        let now = monotonicNanos()
        while let timer = timers.popExpired(now: now) {
            let callback = timer.callback
            timer.callback = nil
            callback?()
        }
    }

    fileprivate func drainInbox() {
        for work in inbox.takeAll() { work(self) }
    }

    /// Tells whether a fd slot is registered (tests of stale-event handling).
    func handler(for fd: Int32) -> IOHandler? {
        Int(fd) < slots.count ? slots[Int(fd)].handler : nil
    }
}

/// Reads the inbox eventfd and runs the work other threads queued.
private final class InboxReader: IOHandler {
    let inbox: LoopInbox
    weak var loop: EventLoop?
    init(inbox: LoopInbox) { self.inbox = inbox }
    func handleIO(_ mask: IOMask) {
        _ = CEpoll_eventfd_drain(inbox.wakeFD)
        loop?.drainInbox()
    }
}
