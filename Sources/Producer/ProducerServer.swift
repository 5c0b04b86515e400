import EventLog
import Glibc
import Logging
import Reactor
import ServiceKit
import Synchronization

/// Starts the producer: the hub (sequence, ring, WebSocket broadcast) on the first loop,
/// the HTTP API on every loop (SO_REUSEPORT spreads connections).
final class ProducerServer: Sendable {
    let group: EventLoopGroup
    let httpPort: Int
    let wsPort: Int
    let metrics: ProducerMetrics
    /// The log's stream id.
    let stream: String
    private let hub: LoopBound<BroadcastHub>
    private let hubHandle: EventLoopHandle

    init(settings: ProducerSettings, logger: Logger) throws {
        // Sockets bound with SO_REUSEPORT would silently share a port with another
        // producer; a plain bind first tells "address in use" clearly.
        try Self.checkPortFree(host: settings.host, port: settings.httpPort, name: "HTTP_PORT")
        try Self.checkPortFree(host: settings.host, port: settings.wsPort, name: "WS_PORT")
        let metrics = ProducerMetrics()
        self.metrics = metrics
        // Opened (and recovered) here, so a bad DATA_DIR stops start-up with one clear line
        // before any loop runs; from then on only the hub loop touches it.
        let opened: LogHandOff
        do {
            opened = LogHandOff(log: try EventLog(directory: settings.dataDir, retentionBytes: settings.retentionBytes, logger: logger))
        } catch {
            throw SettingError("DATA_DIR", "cannot open the event log in \(settings.dataDir): \(error)")
        }
        let hubBox = Mutex<(LoopBound<BroadcastHub>, EventLoopHandle, String)?>(nil)
        let ports = Mutex((http: 0, ws: 0))
        // One count for both ports and every loop: the limit is per process.
        let connectionLimit = ConnectionLimit(maximum: settings.maxConnections)
        group = try EventLoopGroup(threads: settings.threads, name: "producer") { loop, index in
            var localHub: BroadcastHub?
            if index == 0 {
                let log = opened.log
                logger.info("event log \(settings.dataDir): stream \(log.streamID), seqs \(log.firstSeq)-\(log.lastSeq), \(log.sizeBytes) bytes in \(log.segmentCount) segment(s) of up to \(log.segmentBytes) bytes, retention \(settings.retentionBytes) bytes")
                let hub = BroadcastHub(loop: loop, log: log, replayCapacity: settings.replayCapacity,
                                       arenaBytes: settings.replayArenaBytes,
                                       slowClientTimeoutMillis: settings.slowClientTimeoutMillis,
                                       metrics: metrics, logger: logger)
                // Subscribers have nothing to say: a message longer than a control frame's
                // payload closes the connection (1009) before anything is buffered.
                var wsConfig = WebSocketConfiguration(maxMessageSize: 125)
                // A subscriber that answers nothing (not even a ping) for a minute is gone.
                wsConfig.pingInterval = .seconds(20)
                wsConfig.silenceTimeout = .seconds(60)
                wsConfig.responseHeaders = [("Dedup-Stream", log.streamID)]
                if let token = settings.authToken {
                    wsConfig.refusal = { request in
                        token.admits(authorization: request.headers["Authorization"])
                            ? nil : (401, "missing or wrong bearer token: subscribing needs Authorization: Bearer <AUTH_TOKEN>")
                    }
                }
                let ws = try WebSocketServer(loop: loop, host: settings.host, port: settings.wsPort, reusePort: false,
                                             configuration: wsConfig) { socket in
                    hub.subscribe(socket, fromSeq: Self.fromSeq(socket.request?.queryParameter("from_seq")),
                                  stream: socket.request?.queryParameter("stream"))
                }
                ws.tcpServer.connectionLimit = connectionLimit
                loop.keepAlive(hub)
                loop.keepAlive(ws)
                hubBox.withLock { $0 = (LoopBound(hub, on: loop), loop.handle, log.streamID) }
                ports.withLock { $0.ws = ws.port }
                localHub = hub
            }
            let (hub, hubHandle, stream) = hubBox.withLock { $0! }
            let frontend = PublishFrontend(loop: loop, hub: hub, hubHandle: hubHandle, localHub: localHub,
                                           stream: stream, authToken: settings.authToken, metrics: metrics)
            var config = HTTPServer.Configuration(host: settings.host, port: settings.httpPort,
                                                  reusePort: settings.threads > 1)
            config.limits.maxBodyBytes = settings.maxBodyBytes
            config.connectionLimit = connectionLimit
            let server = try HTTPServer(loop: loop, configuration: config, router: frontend.router)
            loop.keepAlive(frontend)
            loop.keepAlive(server)
            ports.withLock { $0.http = server.port }
        }
        (hub, hubHandle, stream) = hubBox.withLock { $0! }
        httpPort = ports.withLock { $0.http }
        wsPort = ports.withLock { $0.ws }
    }

    /// Carries the log from the thread that opened it to the hub loop, its only user after
    /// that (the hand-over happens before the loop runs, through the group's start-up).
    private struct LogHandOff: @unchecked Sendable {
        let log: EventLog
    }

    /// Parses `from_seq`; anything but a whole number >= 0 means "live only".
    static func fromSeq(_ text: String?) -> UInt64? {
        guard let text else { return nil }
        return UInt64(text)
    }

    private static func checkPortFree(host: String, port: Int, name: String) throws {
        let loop = try EventLoop()
        do {
            let probe = try TCPServer(loop: loop, host: host, port: port, reusePort: false) { _ in }
            probe.close()
        } catch let error as SocketError {
            throw SettingError(name, "cannot listen on \(host):\(port): \(error)")
        }
    }

    /// Stops the sync thread (after the group in progress) and the loops.
    func shutdown() {
        let hub = self.hub
        try? hubHandle.submitAndWait { loop in hub.value(on: loop).log.close() }
        group.shutdown()
    }
}
