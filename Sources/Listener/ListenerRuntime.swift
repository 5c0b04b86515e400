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
    private(set) var redis: any RedisCommandClient
    let db: PostgresConnection
    let readDB: PostgresConnection
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
        let urls = settings.redisURLs
        let single = urls.count == 1 ? RedisClient(loop: loop, url: urls[0]) : nil
        redis = single ?? RedisClusterClient(loop: loop, seeds: urls)
        db = try PostgresConnection(loop: loop, url: settings.databaseURL)
        // Reads get a session of their own: a burst of API reads never queues behind, or
        // in front of, the pipelined inserts.
        readDB = try PostgresConnection(loop: loop, url: settings.databaseURL)
        var run: [UInt8] = []
        for _ in 0..<4 { run.append(contentsOf: String(UInt64.random(in: 0...UInt64.max), radix: 36).utf8.prefix(4)) }
        var engineSettings = EngineSettings(instance: settings.instanceID, run: String(decoding: run, as: UTF8.self),
                                            lockTTLMillis: settings.lockTTLMillis, dedupWindowMillis: settings.dedupWindowMillis,
                                            processDelayMillis: settings.processDelayMillis)
        engineSettings.maxInFlightBytes = settings.maxInFlightBytes
        engine = DedupEngine(loop: loop, settings: engineSettings, redis: redis, db: db, metrics: metrics, logger: logger)
        link = ProducerLink(loop: loop, url: settings.producerURL, token: settings.producerToken,
                            silenceTimeout: .milliseconds(settings.producerSilenceTimeoutMillis), engine: engine, logger: logger)
        watermarks = WatermarkStore(db: db, instance: settings.instanceID, logger: logger)
        var health: (() -> (ok: Bool, body: String))?
        api = EventsAPI(db: readDB, metrics: metrics, token: settings.apiToken) { health!() }
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
        let settingsCheck = BackendSettingsCheck(metrics: metrics, logger: logger)
        let logRedis: (RedisClient.State, String?) -> Void = { [weak self] state, error in
            logger.log(level: state == .up ? .info : .warning, "redis \(state)\(error.map { ": \($0)" } ?? "")")
            if state == .up, let self { settingsCheck.redisConnected(self.redis) }
        }
        redis.onStateChange = logRedis
        if let single {
            // One URL may name a cluster node: nothing goes to Redis until we know.
            engine.awaitRedisKind()
            RedisClients.whenKnown(single, loop: loop) { [weak self] client in
                guard let self else { return }
                if client !== single {
                    logger.info("REDIS_URL names a Redis Cluster node: using the cluster")
                    client.onStateChange = logRedis
                    self.redis = client
                }
                self.engine.useRedis(client)
            }
        } else {
            logger.info("Redis Cluster with \(urls.count) seed nodes")
        }
        db.onStateChange = { [weak db] state, error in
            logger.log(level: state == .up ? .info : .warning, "postgres \(state)\(error.map { ": \($0)" } ?? "")")
            if state == .up, let db { settingsCheck.postgresConnected(db) }
        }
        watermarks.load { [weak self] resume in
            guard let self else { return }
            if let resume {
                self.engine.resume(from: resume.watermark)
                self.link.stream = resume.stream
                self.engine.producerStream(resume.stream)
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
            if self.engine.tracker.highest > 0 { self.watermarks.save(stream: self.link.stream, self.engine.safeWatermark) }
            self.scheduleSave()
        }
    }

    /// 200 when the producer, Redis and PostgreSQL links are all up and work is moving;
    /// else 503 naming which is down, or "stalled" when the oldest unfinished event has
    /// waited longer than a claim lives.
    func health() -> (ok: Bool, body: String) {
        let links = [("producer", link.isUp, link.lastError), ("redis", redis.isUp, redis.lastError),
                     ("postgres", db.state == .up, db.lastError?.description)]
        let oldestMillis = engine.oldestUnfinishedAge() / 1_000_000
        let linksUp = links.allSatisfy { $0.1 }
        let stalled = oldestMillis > UInt64(settings.lockTTLMillis)
        let ok = linksUp && !stalled
        let out = ByteBuffer(capacity: 512)
        var json = JSONObjectWriter(into: out)
        json.string("status", ok ? "ok" : (linksUp ? "stalled" : "degraded"))
        json.string("instance", settings.instanceID)
        json.strings("down", links.filter { !$0.1 }.map { $0.0 })
        for (name, up, error) in links {
            json.object(name) { part in
                part.bool("up", up)
                if !up { part.string("error", error ?? "connecting") }
            }
        }
        json.string("stream", link.stream)
        json.number("watermark", engine.safeWatermark)
        json.number("in_flight", engine.inFlightCount)
        json.number("in_flight_bytes", engine.inFlightBytes)
        json.number("oldest_unfinished_ms", oldestMillis)
        json.finish()
        return (ok, String(decoding: out.readableBytesArray, as: UTF8.self))
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
                watermarks.save(stream: link.stream, engine.safeWatermark) { finish() }
            } else {
                finish()
            }
        }
    }
}
