import Dispatch
import Logging
import Dedup
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
    let watermarks: WatermarkStore
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
        var engineSettings = EngineSettings(instance: settings.instanceID, run: String(decoding: run, as: UTF8.self),
                                            lockTTLMillis: settings.lockTTLMillis, dedupWindowMillis: settings.dedupWindowMillis,
                                            processDelayMillis: settings.processDelayMillis)
        engineSettings.maxInFlightBytes = settings.maxInFlightBytes
        engine = DedupEngine(loop: loop, settings: engineSettings, redis: redis, db: db, metrics: metrics, logger: logger)
        link = ProducerLink(loop: loop, url: settings.producerURL, engine: engine, logger: logger)
        watermarks = WatermarkStore(db: db, instance: settings.instanceID, logger: logger)
        var health: (() -> (ok: Bool, body: String))?
        api = EventsAPI(db: db, metrics: metrics) { health!() }
        let engine = self.engine, metrics = self.metrics
        link.onStreamReplaced = { old, new in
            logger.warning("the producer now serves stream \(new), not \(old) (its log was replaced): events of \(old) after seq \(engine.tracker.watermark) that were not received can no longer be delivered; starting from the beginning of \(new)")
            metrics.streamReplaced.add()
            engine.streamRestarted(at: 0)
        }
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
        watermarks.load { [weak self] resume in
            guard let self else { return }
            if let resume {
                self.engine.resume(from: resume.watermark)
                self.link.stream = resume.stream
                let stream = resume.stream.isEmpty ? "" : " of stream \(resume.stream)"
                logger.info("resuming after seq \(resume.watermark)\(stream)\(resume.fromGroup ? " (the highest watermark any listener saved; this instance had none)" : "")")
            } else {
                logger.info("no watermark saved by any listener: asking for everything the producer retains")
            }
            self.link.start()
        }
        scheduleSave()
    }

    private func scheduleSave() {
        loop.schedule(in: .milliseconds(250)) { [weak self] in
            guard let self else { return }
            if self.engine.tracker.highest > 0 { self.watermarks.save(stream: self.link.stream, self.engine.tracker.watermark) }
            self.scheduleSave()
        }
    }

    /// 200 when the producer, Redis and PostgreSQL links are all up and work is moving;
    /// else 503 naming which is down, or "stalled" when the oldest unfinished event has
    /// waited longer than a claim lives.
    func health() -> (ok: Bool, body: String) {
        let producer = link.isUp, redisUp = redis.isUp, dbUp = db.state == .up
        let oldestMillis = engine.oldestUnfinishedAge() / 1_000_000
        let stalled = oldestMillis > UInt64(settings.lockTTLMillis)
        func part(_ name: String, _ up: Bool, _ error: String?) -> String {
            "\"\(name)\":{\"up\":\(up)\(up ? "" : ",\"error\":\(JSONString.quoted(error ?? "connecting"))")}"
        }
        let ok = producer && redisUp && dbUp && !stalled
        var down: [String] = []
        if !producer { down.append("\"producer\"") }
        if !redisUp { down.append("\"redis\"") }
        if !dbUp { down.append("\"postgres\"") }
        let status = ok ? "ok" : (producer && redisUp && dbUp ? "stalled" : "degraded")
        let body = "{\"status\":\"\(status)\",\"instance\":\(JSONString.quoted(settings.instanceID)),"
            + "\"down\":[\(down.joined(separator: ","))],"
            + part("producer", producer, link.lastError) + "," + part("redis", redisUp, redis.lastError) + ","
            + part("postgres", dbUp, db.lastError?.description) + ","
            + "\"stream\":\(JSONString.quoted(link.stream)),\"watermark\":\(engine.tracker.watermark),"
            + "\"in_flight\":\(engine.inFlightCount),\"in_flight_bytes\":\(engine.inFlightBytes),"
            + "\"oldest_unfinished_ms\":\(oldestMillis)}"
        return (ok, body)
    }

    /// Stops intake, finishes or releases in-flight claims, saves the watermark; `done`
    /// runs within SHUTDOWN_TIMEOUT_MS plus about a second, even with Redis or PostgreSQL
    /// down (the watermark saved last a moment ago is then the one that counts).
    func shutdown(_ done: @escaping () -> Void) {
        server.close()
        engine.drain(within: .milliseconds(settings.shutdownTimeoutMillis)) { [self] in
            link.stop()
            var called = false
            let finish = {
                guard !called else { return }
                called = true
                done()
            }
            loop.schedule(in: .milliseconds(400)) { finish() }
            if engine.tracker.highest > 0 {
                watermarks.save(stream: link.stream, engine.tracker.watermark) { finish() }
            } else {
                finish()
            }
        }
    }
}

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
