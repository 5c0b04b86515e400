import Glibc
import Logging
import Dedup
import Reactor
import ServiceKit

/// The listener's settings, resolved from flags, then the environment, then defaults.
struct ListenerSettings {
    var instanceID: String
    var port = 3000
    var producerURL = try! WebSocketURL(parsing: "ws://127.0.0.1:8080/")
    var redisURL = "redis://127.0.0.1:6379"
    /// One node, or a Redis Cluster's seed nodes (a comma-separated REDIS_URL).
    var redisURLs: [RedisURL] = []
    var databaseURL = "postgres://postgres@127.0.0.1:5432/postgres"
    var lockTTLMillis = 30_000
    var dedupWindowMillis = 600_000
    var processDelayMillis = 0
    var maxInFlightBytes = 268_435_456
    var shutdownTimeoutMillis = 10_000
    /// Sent as `Authorization: Bearer` to the producer.
    var producerToken: BearerToken?
    var producerSilenceTimeoutMillis = 30_000
    /// When set, `/api/*` needs `Authorization: Bearer <token>`.
    var apiToken: BearerToken?
    var logLevel = Logger.Level.info
    var host = "0.0.0.0"

    static var defaultInstanceID: String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "\(host)-\(getpid())"
    }
}

/// Flags of `listener`. Every flag is also an environment variable; the flag wins.
struct ListenerOptions {
    static let parser = FlagParser(
        command: "listener",
        abstract: "A deduplicating worker: claims each event in Redis, stores it once in PostgreSQL.",
        flags: [
            .init("instance-id", help: "Shown in every log line and stored with each event [env INSTANCE_ID] (default: host name + pid)"),
            .init("port", help: "HTTP API port [env PORT] (default: 3000)"),
            .init("host", help: "HTTP API bind address [env HOST] (default: 0.0.0.0)"),
            .init("producer-url", help: "Where events come from [env PRODUCER_URL] (default: ws://127.0.0.1:8080/)"),
            .init("redis-url", help: "Claims: redis://[:password@]host:port[/db], or a Redis Cluster's seed nodes redis://[:password@]h1:p1,h2:p2,... [env REDIS_URL] (default: redis://127.0.0.1:6379)"),
            .init("database-url", help: "Storage, a libpq URI [env DATABASE_URL] (default: postgres://postgres@127.0.0.1:5432/postgres)"),
            .init("lock-ttl-ms", help: "How long a claim lives if its owner dies [env LOCK_TTL_MS] (default: 30000)"),
            .init("dedup-window-ms", help: "How long a finished event stays marked done [env DEDUP_WINDOW_MS] (default: 600000)"),
            .init("process-delay-ms", help: "Simulated processing per event [env PROCESS_DELAY_MS] (default: 0)"),
            .init("max-in-flight-bytes", help: "Event bytes held unfinished above which reading from the producer pauses [env MAX_IN_FLIGHT_BYTES] (default: 268435456)"),
            .init("shutdown-timeout-ms", help: "After SIGTERM, how long to finish in-flight events before releasing the rest [env SHUTDOWN_TIMEOUT_MS] (default: 10000)"),
            .init("producer-token", help: "Sent as Authorization: Bearer to the producer [env PRODUCER_TOKEN] (default: unset)"),
            .init("producer-silence-timeout-ms", help: "With no frame or pong from the producer this long, the link is dropped and resumed [env PRODUCER_SILENCE_TIMEOUT_MS] (default: 30000)"),
            .init("api-token", help: "When set, /api/* needs Authorization: Bearer <token> [env API_TOKEN] (default: unset, open)"),
            .init("log-level", help: "debug, info, warning, error [env LOG_LEVEL] (default: info)"),
        ])

    var instanceID: String?
    var port: String?
    var host: String?
    var producerURL: String?
    var redisURL: String?
    var databaseURL: String?
    var lockTTLMs: String?
    var dedupWindowMs: String?
    var processDelayMs: String?
    var maxInFlightBytes: String?
    var shutdownTimeoutMs: String?
    var producerToken: String?
    var producerSilenceTimeoutMs: String?
    var apiToken: String?
    var logLevel: String?

    /// The flags given on the command line (by name, without dashes).
    init(flags: [String: String]) {
        instanceID = flags["instance-id"]
        port = flags["port"]
        host = flags["host"]
        producerURL = flags["producer-url"]
        redisURL = flags["redis-url"]
        databaseURL = flags["database-url"]
        lockTTLMs = flags["lock-ttl-ms"]
        dedupWindowMs = flags["dedup-window-ms"]
        processDelayMs = flags["process-delay-ms"]
        maxInFlightBytes = flags["max-in-flight-bytes"]
        shutdownTimeoutMs = flags["shutdown-timeout-ms"]
        producerToken = flags["producer-token"]
        producerSilenceTimeoutMs = flags["producer-silence-timeout-ms"]
        apiToken = flags["api-token"]
        logLevel = flags["log-level"]
    }

    func resolve() throws -> ListenerSettings {
        let instance = Settings.string(instanceID, env: "INSTANCE_ID", default: ListenerSettings.defaultInstanceID)
        guard !instance.isEmpty, instance.utf8.count <= 200, !instance.contains("|") else {
            throw SettingError("INSTANCE_ID", "must be 1 to 200 bytes without '|'")
        }
        var s = ListenerSettings(instanceID: instance)
        s.port = try Settings.port(port, env: "PORT", default: s.port)
        s.host = try Settings.host(host, env: "HOST", default: s.host)
        if let text = Settings.raw(producerURL, env: "PRODUCER_URL") {
            do { s.producerURL = try WebSocketURL(parsing: text) } catch {
                throw SettingError("PRODUCER_URL", "'\(text)': \(error)")
            }
        }
        s.redisURL = Settings.string(redisURL, env: "REDIS_URL", default: s.redisURL)
        do { s.redisURLs = try RedisClients.urls(s.redisURL) } catch {
            throw SettingError("REDIS_URL", "'\(RedactedURL.text(s.redisURL))': \(error)")
        }
        s.databaseURL = Settings.string(databaseURL, env: "DATABASE_URL", default: s.databaseURL)
        if let error = PostgresConnection.validate(url: s.databaseURL) {
            throw SettingError("DATABASE_URL", "'\(RedactedURL.text(s.databaseURL))': \(RedactedURL.text("\(error)"))")
        }
        s.lockTTLMillis = try Settings.milliseconds(lockTTLMs, env: "LOCK_TTL_MS", default: s.lockTTLMillis, range: 100...86_400_000)
        s.dedupWindowMillis = try Settings.milliseconds(dedupWindowMs, env: "DEDUP_WINDOW_MS", default: s.dedupWindowMillis,
                                                        range: 1_000...(30 * 86_400_000))
        guard s.dedupWindowMillis >= s.lockTTLMillis else {
            throw SettingError("DEDUP_WINDOW_MS", "\(s.dedupWindowMillis) is shorter than LOCK_TTL_MS (\(s.lockTTLMillis)): a finished event must stay marked done at least as long as a claim lives")
        }
        s.processDelayMillis = try Settings.milliseconds(processDelayMs, env: "PROCESS_DELAY_MS", default: s.processDelayMillis,
                                                         range: 0...3_600_000)
        s.maxInFlightBytes = try Settings.integer(maxInFlightBytes, env: "MAX_IN_FLIGHT_BYTES", default: s.maxInFlightBytes,
                                                  range: (1 << 20)...(1 << 40))
        s.shutdownTimeoutMillis = try Settings.milliseconds(shutdownTimeoutMs, env: "SHUTDOWN_TIMEOUT_MS", default: s.shutdownTimeoutMillis,
                                                            range: 0...3_600_000)
        s.producerSilenceTimeoutMillis = try Settings.milliseconds(producerSilenceTimeoutMs, env: "PRODUCER_SILENCE_TIMEOUT_MS",
                                                                   default: s.producerSilenceTimeoutMillis, range: 300...3_600_000)
        s.producerToken = BearerToken(Settings.raw(producerToken, env: "PRODUCER_TOKEN"))
        s.apiToken = BearerToken(Settings.raw(apiToken, env: "API_TOKEN"))
        s.logLevel = try LogSetup.level(Settings.string(logLevel, env: "LOG_LEVEL", default: "info"))
        return s
    }

    func run() throws {
        let settings = try resolve()
        let logger = LogSetup.bootstrap(label: "listener", instance: settings.instanceID, level: settings.logLevel)
        let service = try ListenerService(settings: settings, logger: logger)
        if settings.apiToken == nil {
            logger.warning("API_TOKEN is not set: anyone who reaches port \(settings.port) can read the stored events through /api")
        }
        logger.info("listener \(settings.instanceID) starting: API \(settings.host):\(service.httpPort), producer \(settings.producerURL), lock TTL \(settings.lockTTLMillis) ms, dedup window \(settings.dedupWindowMillis) ms")
        Signals.waitForTermination()
        logger.info("stopping: finishing in-flight events")
        service.stop()
        logger.info("stopped")
    }
}
