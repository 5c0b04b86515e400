import Logging
import Reactor

/// The WebSocket link to the producer: reconnects with backoff and resumes from the
/// engine's watermark (`?from_seq=`), pauses reading while the engine is saturated or its
/// stores are down (the producer's ring covers the pause), and feeds frames to the engine.
final class ProducerLink: WebSocketClientDelegate {
    private(set) var client: WebSocketClient!
    private let configuration: WebSocketConfiguration
    private let engine: DedupEngine
    private let logger: Logger
    private let baseURL: WebSocketURL
    private var reading = true
    /// The from_seq of the current connection (nil: live only), to spot a restarted producer.
    private var requestedFrom: UInt64?
    private var firstFrameOfConnection = true
    /// True once any watermark exists (persisted or received): from then on we resume.
    var resumeEnabled = false
    private(set) var isUp = false
    private(set) var lastError: String?

    init(loop: EventLoop, url: WebSocketURL, engine: DedupEngine, logger: Logger) {
        baseURL = url
        self.engine = engine
        self.logger = logger
        var configuration = WebSocketConfiguration(maxMessageSize: 64 << 20)
        configuration.pingInterval = .seconds(15)
        self.configuration = configuration
        self.loop = loop
        engine.onFlowChange = { [weak self] open in self?.setReading(open) }
    }

    private let loop: EventLoop

    /// Connects, resuming from the watermark when there is one; reconnects the same way.
    func start() {
        let url = currentURL()
        logger.info("connecting to the producer at \(url)")
        client = WebSocketClient(loop: loop, url: url, configuration: configuration,
                                 reconnect: .backoff(initial: .milliseconds(100), max: .seconds(5)))
        client.delegate = self
        client.connect()
    }

    /// The producer URL with `from_seq` set to the watermark when resuming.
    func currentURL() -> WebSocketURL {
        var url = baseURL
        guard resumeEnabled || engine.tracker.highest > 0 else {
            requestedFrom = nil
            return url
        }
        let from = engine.tracker.watermark
        requestedFrom = from
        let existing = url.query.map { $0.split(separator: "&").filter { !$0.hasPrefix("from_seq=") }.joined(separator: "&") } ?? ""
        url.query = (existing.isEmpty ? "" : existing + "&") + "from_seq=\(from)"
        return url
    }

    private func setReading(_ open: Bool) {
        reading = open
        guard let connection = client?.socket?.connection else { return }
        if open { connection.resumeReading() } else { connection.pauseReading() }
    }

    func webSocketClient(_ client: WebSocketClient, urlForReconnectAttempt attempt: Int) -> WebSocketURL? {
        currentURL()
    }

    func webSocketClient(_ client: WebSocketClient, didFailToConnect error: WebSocketClientError) {
        isUp = false
        lastError = error.description
        if client.failedAttempts <= 1 || client.failedAttempts % 20 == 0 {
            logger.warning("producer unreachable at \(client.url): \(error) (attempt \(client.failedAttempts); retrying)")
        }
    }

    func webSocketDidOpen(_ socket: WebSocketConnection) {
        isUp = true
        lastError = nil
        firstFrameOfConnection = true
        logger.info("connected to the producer at \(client.url)")
        if !reading { socket.connection.pauseReading() }
    }

    func webSocket(_ socket: WebSocketConnection, didReceiveMessage opcode: WebSocketOpcode, bytes: UnsafeRawBufferPointer) {
        guard opcode == .text else {
            logger.warning("ignoring a binary message of \(bytes.count) bytes from the producer")
            return
        }
        if firstFrameOfConnection {
            firstFrameOfConnection = false
            if let from = requestedFrom, let seq = firstSeq(bytes), seq <= from, seq <= engine.tracker.highest {
                engine.producerRestarted(firstSeq: seq)
            }
        }
        engine.receive(frame: bytes)
    }

    func webSocketDidClose(_ socket: WebSocketConnection, code: WebSocketCloseCode, reason: String) {
        isUp = false
        lastError = "closed with \(code.rawValue)\(reason.isEmpty ? "" : ": \(reason)")"
        logger.warning("producer connection closed (\(code.rawValue) \(reason)); resuming from seq \(engine.tracker.watermark)")
    }

    /// The seq of the first event line in a frame, if it is one.
    private func firstSeq(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        var end = 0
        while end < bytes.count && bytes[end] != 0x0A { end += 1 }
        let line = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[0..<end]), as: UTF8.self)
        guard let range = line.range(of: "\"seq\":") else { return nil }
        return UInt64(line[range.upperBound...].drop { $0 == " " }.prefix { $0.isNumber })
    }

    func stop() { client?.close(code: .goingAway, reason: "listener stopping") }
}
