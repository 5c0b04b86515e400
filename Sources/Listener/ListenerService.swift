import Dispatch
import Logging
import Reactor
import ServiceKit
import Synchronization

/// Everything of one listener instance on its loop: Redis and PostgreSQL clients, the
/// event engine, the producer link, the watermark store and the HTTP API.
final class ListenerRuntime {
    let loop: EventLoop
    let settings: ListenerSettings
    let redis: RedisClient
    let db: PostgresConnection
    let metrics: ListenerMetrics
    let engine: DedupEngine
    let link: ProducerLink
    let offsets: OffsetStore
    let api: EventsAPI
    let server: HTTPServer
    private let logger: Logger

    init(loop: EventLoop, settings: ListenerSettings, logger: Logger) throws {
        self.loop = loop
        self.settings = settings
        self.logger = logger
        metrics = ListenerMetrics(instance: settings.instanceID)
        redis = try RedisClient(loop: loop, url: settings.redisURL)
        db = try PostgresConnection(loop: loop, url: settings.databaseURL)
        var run: [UInt8] = []
        for _ in 0..<4 { run.append(contentsOf: String(UInt64.random(in: 0...UInt64.max), radix: 36).utf8.prefix(4)) }
        let engineSettings = EngineSettings(instance: settings.instanceID, run: String(decoding: run, as: UTF8.self),
                                            lockTTLMillis: settings.lockTTLMillis, dedupWindowMillis: settings.dedupWindowMillis,
                                            processDelayMillis: settings.processDelayMillis)
        engine = DedupEngine(loop: loop, settings: engineSettings, redis: redis, db: db, metrics: metrics, logger: logger)
        link = ProducerLink(loop: loop, url: settings.producerURL, engine: engine, logger: logger)
        offsets = OffsetStore(db: db, instance: settings.instanceID, logger: logger)
        var health: (() -> (ok: Bool, body: String))?
        api = EventsAPI(db: db, metrics: metrics) { health!() }
        var config = HTTPServer.Configuration(host: settings.host, port: settings.port, reusePort: false)
        config.idleTimeout = .seconds(60)
        server = try HTTPServer(loop: loop, configuration: config, router: api.router)
        health = { [unowned self] in self.health() }
        redis.onStateChange = { state, error in
            logger.log(level: state == .up ? .info : .warning, "redis \(state)\(error.map { ": \($0)" } ?? "")")
        }
        db.onStateChange = { state, error in
            logger.log(level: state == .up ? .info : .warning, "postgres \(state)\(error.map { ": \($0)" } ?? "")")
        }
        offsets.load { [weak self] watermark in
            guard let self else { return }
            if let watermark {
                self.engine.resume(from: watermark)
                self.link.resumeEnabled = true
                logger.info("resuming after seq \(watermark)")
            }
            self.link.start()
        }
        scheduleSave()
    }

    private func scheduleSave() {
        loop.schedule(in: .milliseconds(250)) { [weak self] in
            guard let self else { return }
            if self.engine.tracker.highest > 0 { self.offsets.save(self.engine.tracker.watermark) }
            self.scheduleSave()
        }
    }

    /// 200 when the producer, Redis and PostgreSQL links are all up; else 503 naming which is down.
    func health() -> (ok: Bool, body: String) {
        let producer = link.isUp, redisUp = redis.isUp, dbUp = db.state == .up
        func part(_ name: String, _ up: Bool, _ error: String?) -> String {
            "\"\(name)\":{\"up\":\(up)\(up ? "" : ",\"error\":\(JSONString.quoted(error ?? "connecting"))")}"
        }
        let ok = producer && redisUp && dbUp
        var down: [String] = []
        if !producer { down.append("\"producer\"") }
        if !redisUp { down.append("\"redis\"") }
        if !dbUp { down.append("\"postgres\"") }
        let body = "{\"status\":\"\(ok ? "ok" : "degraded")\",\"instance\":\(JSONString.quoted(settings.instanceID)),"
            + "\"down\":[\(down.joined(separator: ","))],"
            + part("producer", producer, link.lastError) + "," + part("redis", redisUp, redis.lastError) + ","
            + part("postgres", dbUp, db.lastError?.description) + ","
            + "\"watermark\":\(engine.tracker.watermark),\"in_flight\":\(engine.inFlightCount)}"
        return (ok, body)
    }

    /// Stops intake, finishes or releases in-flight claims, saves the watermark.
    func shutdown(_ done: @escaping () -> Void) {
        server.close()
        engine.drain(within: .seconds(10)) { [self] in
            link.stop()
            offsets.save(engine.tracker.watermark) { done() }
        }
    }
}

/// Runs one `ListenerRuntime` on its own loop thread.
final class ListenerService: Sendable {
    let group: EventLoopGroup
    let httpPort: Int
    private let runtime: LoopBound<ListenerRuntime>
    private let handle: EventLoopHandle

    init(settings: ListenerSettings, logger: Logger) throws {
        let box = Mutex<(LoopBound<ListenerRuntime>, EventLoopHandle, Int)?>(nil)
        group = try EventLoopGroup(threads: 1, name: "listener") { loop, _ in
            let runtime = try ListenerRuntime(loop: loop, settings: settings, logger: logger)
            loop.keepAlive(runtime)
            box.withLock { $0 = (LoopBound(runtime, on: loop), loop.handle, runtime.server.port) }
        }
        (runtime, handle, httpPort) = box.withLock { $0! }
    }

    /// Graceful stop (SIGTERM): returns once in-flight work is finished or released.
    func stop() {
        let finished = DispatchSemaphore(value: 0)
        let runtime = self.runtime
        handle.execute { loop in runtime.value(on: loop).shutdown { finished.signal() } }
        _ = finished.wait(timeout: .now() + 15)
        group.shutdown()
    }
}
