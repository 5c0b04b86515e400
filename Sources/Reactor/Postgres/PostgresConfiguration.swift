/// How a `PostgresConnection` connects, times out, retries and bounds its queue.
public struct PostgresConfiguration: Sendable {
    /// A libpq connection URI or key=value string, e.g. `postgres://user@host:5432/db`.
    public var url: String
    /// How long one connection attempt may take (a reactor timer; libpq's own
    /// `connect_timeout` only applies to its blocking API).
    public var connectTimeout: Duration = .seconds(5)
    /// How long an operation may wait, queued or in flight, before it fails with `.timeout`.
    /// An in-flight operation past its deadline means the server is stuck: the connection is
    /// dropped and re-established.
    public var operationTimeout: Duration = .seconds(10)
    /// First reconnect delay; doubled after every failed attempt up to `maxBackoff`.
    public var initialBackoff: Duration = .milliseconds(50)
    /// Largest reconnect delay.
    public var maxBackoff: Duration = .seconds(2)
    /// Operations sent to the server and not yet answered (pipeline depth).
    public var maxInFlight: Int = 32
    /// Operations queued plus in flight. Beyond this, new work fails with `.queueFull` and
    /// `canAcceptWork` is false until the backlog drains to three quarters.
    public var maxPendingOperations: Int = 256
    /// How often an aborted or transiently failed operation is run again before its error
    /// goes back to the caller.
    public var maxRetries: Int = 3
    /// While the connection is down: queue new work (up to the bound, until its timeout) when
    /// true, fail it at once with `.notConnected` when false.
    public var queueWhileDown: Bool = true

    /// A configuration with defaults for everything but the URI.
    public init(url: String) {
        self.url = url
    }
}
