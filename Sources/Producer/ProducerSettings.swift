import ArgumentParser
import Reactor
import Logging
import ServiceKit

/// The producer's settings, resolved from flags, then the environment, then defaults.
struct ProducerSettings {
    var httpPort = 3005
    var wsPort = 8080
    var host = "0.0.0.0"
    var replayCapacity = 1_048_576
    var maxBodyBytes = 1_048_576
    var threads = EventLoopGroupDefaults.threads
    var slowClientTimeoutMillis = 10_000
    var logLevel = Logger.Level.info
    var dataDir = "producer-data"
    var retentionBytes = 1_073_741_824
    /// When set, publishing and subscribing need `Authorization: Bearer <token>`.
    var authToken: BearerToken?
    var maxConnections = 10_000

    /// Bytes of replay arena: room for `replayCapacity` typical lines, and always for
    /// several of the largest event a body can carry.
    var replayArenaBytes: Int {
        max(replayCapacity * 160, 4 * (maxBodyBytes + 4096), 1 << 20)
    }
}

enum EventLoopGroupDefaults {
    static var threads: Int { max(1, min(4, EventLoopGroup.coreCount)) }
}

/// Flags of `producer` (serve). Every flag is also an environment variable; the flag wins.
struct ServeOptions: ParsableArguments {
    @Option(name: .customLong("http-port"), help: "HTTP API port [env HTTP_PORT] (default: 3005)")
    var httpPort: String?
    @Option(name: .customLong("ws-port"), help: "WebSocket broadcast port [env WS_PORT] (default: 8080)")
    var wsPort: String?
    @Option(name: .customLong("host"), help: "Bind address [env HOST] (default: 0.0.0.0)")
    var host: String?
    @Option(name: .customLong("replay-capacity"), help: "Events kept for listeners that reconnect [env REPLAY_CAPACITY] (default: 1048576)")
    var replayCapacity: String?
    @Option(name: .customLong("max-body-bytes"), help: "Largest accepted request body [env MAX_BODY_BYTES] (default: 1048576)")
    var maxBodyBytes: String?
    @Option(name: .customLong("threads"), help: "Event loop threads; HTTP is served on all, the broadcast on the first [env THREADS] (default: cores, at most 4)")
    var threads: String?
    @Option(name: .customLong("slow-client-timeout-ms"), help: "Close (1013) a subscriber that takes no bytes this long while behind [env SLOW_CLIENT_TIMEOUT_MS] (default: 10000)")
    var slowClientTimeoutMs: String?
    @Option(name: .customLong("data-dir"), help: "Directory of the durable event log [env DATA_DIR] (default: producer-data)")
    var dataDir: String?
    @Option(name: .customLong("retention-bytes"), help: "Log bytes kept on disk for listeners that resume; oldest segments go first [env RETENTION_BYTES] (default: 1073741824)")
    var retentionBytes: String?
    @Option(name: .customLong("auth-token"), help: "When set, publishing and subscribing need Authorization: Bearer <token> [env AUTH_TOKEN] (default: unset, open)")
    var authToken: String?
    @Option(name: .customLong("max-connections"), help: "Open HTTP + WebSocket connections; more are closed at accept [env MAX_CONNECTIONS] (default: 10000)")
    var maxConnections: String?
    @Option(name: .customLong("log-level"), help: "debug, info, warning, error [env LOG_LEVEL] (default: info)")
    var logLevel: String?

    func resolve() throws -> ProducerSettings {
        var s = ProducerSettings()
        s.httpPort = try Settings.port(httpPort, env: "HTTP_PORT", default: s.httpPort)
        s.wsPort = try Settings.port(wsPort, env: "WS_PORT", default: s.wsPort)
        s.host = try Settings.host(host, env: "HOST", default: s.host)
        s.replayCapacity = try Settings.integer(replayCapacity, env: "REPLAY_CAPACITY", default: s.replayCapacity,
                                                range: 1...(1 << 26))
        s.maxBodyBytes = try Settings.integer(maxBodyBytes, env: "MAX_BODY_BYTES", default: s.maxBodyBytes,
                                              range: 64...(256 << 20), unit: " bytes")
        s.threads = try Settings.integer(threads, env: "THREADS", default: s.threads, range: 1...256)
        s.slowClientTimeoutMillis = try Settings.milliseconds(slowClientTimeoutMs, env: "SLOW_CLIENT_TIMEOUT_MS",
                                                              default: s.slowClientTimeoutMillis, range: 1...86_400_000)
        s.dataDir = Settings.string(dataDir, env: "DATA_DIR", default: s.dataDir)
        s.retentionBytes = try Settings.integer(retentionBytes, env: "RETENTION_BYTES", default: s.retentionBytes,
                                                range: (1 << 20)...(1 << 50), unit: " bytes")
        s.authToken = BearerToken(Settings.raw(authToken, env: "AUTH_TOKEN"))
        s.maxConnections = try Settings.integer(maxConnections, env: "MAX_CONNECTIONS", default: s.maxConnections,
                                                range: 1...10_000_000)
        s.logLevel = try LogSetup.level(Settings.string(logLevel, env: "LOG_LEVEL", default: "info"))
        if s.httpPort == s.wsPort { throw SettingError("WS_PORT", "must differ from HTTP_PORT (\(s.httpPort))") }
        return s
    }
}
