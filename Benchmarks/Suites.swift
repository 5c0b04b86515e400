/// Every micro suite, in the order they run. Each lives in its own file.
func registeredMicroSuites() -> [MicroSuite] {
    [
        MicroSuite(name: "redis", run: runRedisBenchmark),
        MicroSuite(name: "http_parse", run: runHTTPParseBenchmark),
        MicroSuite(name: "postgres", run: runPostgresBenchmark),
        MicroSuite(name: "pg_writers", run: runPostgresWritersBenchmark),
        MicroSuite(name: "websocket", run: runWebSocketBenchmark),
        MicroSuite(name: "event_log", run: runEventLogBenchmark),
        MicroSuite(name: "intake", run: runIntakeBenchmark),
        MicroSuite(name: "replay_storm", run: runReplayStormBenchmark),
    ]
}
