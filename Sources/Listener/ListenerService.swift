import Dispatch
import Logging
import Dedup
import Reactor
import ServiceKit
import Synchronization

/// Runs one `ListenerRuntime` on its own loop thread.
final class ListenerService: Sendable {
    let group: EventLoopGroup
    let httpPort: Int
    private let runtime: LoopBound<ListenerRuntime>
    private let handle: EventLoopHandle
    private let settings: ListenerSettings

    init(settings: ListenerSettings, logger: Logger) throws {
        let box = Mutex<(LoopBound<ListenerRuntime>, EventLoopHandle, Int)?>(nil)
        group = try EventLoopGroup(threads: 1, name: "listener") { loop, _ in
            let runtime = try ListenerRuntime(loop: loop, settings: settings, logger: logger)
            loop.keepAlive(runtime)
            box.withLock { $0 = (LoopBound(runtime, on: loop), loop.handle, runtime.server.port) }
        }
        (runtime, handle, httpPort) = box.withLock { $0! }
        self.settings = settings
    }

    /// Graceful stop (SIGTERM): returns once in-flight work is finished or released.
    func stop() {
        let finished = DispatchSemaphore(value: 0)
        let runtime = self.runtime
        handle.execute { loop in runtime.value(on: loop).shutdown { finished.signal() } }
        _ = finished.wait(timeout: .now() + .milliseconds(settings.shutdownTimeoutMillis + 1_500))
        group.shutdown()
    }
}
