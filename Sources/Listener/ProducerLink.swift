import Logging
import Dedup
import Reactor
import ServiceKit

/// The WebSocket link to the producer: reconnects with backoff and resumes from the
/// engine's watermark (`?from_seq=N&stream=S`), notices when the producer serves another
/// stream (its log was replaced), pauses reading while the engine is saturated or its
/// stores are down (the producer's log covers the pause), and feeds frames to the engine.
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
    /// The producer's stream as last seen (empty: not known yet, or a producer that names
    /// none).
    var stream = ""
    /// Told when the producer serves another stream than the one we resumed.
    var onStreamReplaced: ((_ old: String, _ new: String) -> Void)?
    private(set) var isUp = false
    private(set) var lastError: String?
    /// A half-open link (the producer gone without a FIN, a partition) shows only as
    /// silence: with nothing heard this long while reading, the link is dropped and
    /// resumed.
    private let silenceTimeout: Duration

    init(loop: EventLoop, url: WebSocketURL, token: BearerToken?, silenceTimeout: Duration, engine: DedupEngine, logger: Logger) {
        baseURL = url
        self.engine = engine
        self.logger = logger
        self.silenceTimeout = silenceTimeout
        var configuration = WebSocketConfiguration(maxMessageSize: 64 << 20)
        // Pings get pongs even from an idle producer: three chances per silence window.
        configuration.pingInterval = silenceTimeout / 3
        configuration.silenceTimeout = silenceTimeout
        if let token { configuration.requestHeaders = [("Authorization", token.authorizationHeader)] }
        self.configuration = configuration
        self.loop = loop
        engine.onFlowChange = { [weak self] open in self?.setReading(open) }
        engine.onRewind = { [weak self] in self?.rewind() }
    }

    /// True from a rewind's drop of the connection until the next one opens: the drop is
    /// ours, not a lost link, so membership is not told the link went down (that would
    /// make the other members rewind too).
    private var rewinding = false

    /// Drops the connection to resume from the engine's rewound watermark. The engine
    /// ignores frames until the new connection opens.
    private func rewind() {
        guard let socket = client?.socket else { return engine.rewindDone() }
        rewinding = true
        logger.info("resuming the producer stream from seq \(engine.tracker.watermark) (rewind)")
        socket.abort()
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

    /// The producer URL with `from_seq` set to the watermark (0 before anything was ever
    /// finished: everything retained, never "live only") and `stream` when known.
    func currentURL() -> WebSocketURL {
        var url = baseURL
        let from = engine.tracker.watermark
        requestedFrom = from
        let existing = url.query.map {
            $0.split(separator: "&").filter { !$0.hasPrefix("from_seq=") && !$0.hasPrefix("stream=") }.joined(separator: "&")
        } ?? ""
        var query = (existing.isEmpty ? "" : existing + "&") + "from_seq=\(from)"
        if !stream.isEmpty { query += "&stream=" + Self.percentEncoded(stream) }
        url.query = query
        return url
    }

    /// Stream ids are the producer's own tokens; anything outside the unreserved set is
    /// escaped so the query stays well formed whatever they hold.
    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return out
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
        if rewinding {
            rewinding = false
            engine.producerLinkChanged(up: false)
        }
        lastError = error.description
        if client.failedAttempts <= 1 || client.failedAttempts % 20 == 0 {
            logger.warning("producer unreachable at \(client.url): \(error) (attempt \(client.failedAttempts); retrying)")
        }
    }

    func webSocketDidOpen(_ socket: WebSocketConnection) {
        isUp = true
        rewinding = false
        engine.rewindDone()
        engine.producerLinkChanged(up: true)
        lastError = nil
        firstFrameOfConnection = true
        logger.info("connected to the producer at \(client.url)")
        if let served = client.responseHeaders["Dedup-Stream"], served != stream {
            let old = stream
            stream = served
            if !old.isEmpty {
                // Served from the start of what the new log retains.
                firstFrameOfConnection = false
                onStreamReplaced?(old, served)
            }
            engine.producerStream(served)
        }
        if !reading { socket.connection.pauseReading() }
    }

    func webSocket(_ socket: WebSocketConnection, didReceiveMessage opcode: WebSocketOpcode, bytes: UnsafeRawBufferPointer) {
        guard opcode == .text else {
            logger.warning("ignoring a binary message of \(bytes.count) bytes from the producer")
            return
        }
        if firstFrameOfConnection {
            firstFrameOfConnection = false
            // A producer without a stream id that started over: its numbering went back.
            if let from = requestedFrom, let seq = firstSeq(bytes), seq <= from, seq <= engine.tracker.highest, seq > 0 {
                engine.streamRestarted(at: seq - 1)
            }
        }
        engine.receive(frame: bytes)
    }

    func webSocketDidClose(_ socket: WebSocketConnection, code: WebSocketCloseCode, reason: String) {
        isUp = false
        if rewinding { return }
        engine.producerLinkChanged(up: false)
        if socket.droppedForSilence {
            lastError = "nothing heard from the producer for over \(silenceTimeout) (no frame, no pong)"
            logger.warning("\(lastError!): dropped the link; resuming from seq \(engine.tracker.watermark)")
            return
        }
        lastError = "closed with \(code.rawValue)\(reason.isEmpty ? "" : ": \(reason)")"
        logger.warning("producer connection closed (\(code.rawValue) \(reason)); resuming from seq \(engine.tracker.watermark)")
    }

    /// The seq of the first event line in a frame, if it is one.
    private func firstSeq(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        var end = 0
        while end < bytes.count && bytes[end] != 0x0A { end += 1 }
        let line = UnsafeRawBufferPointer(rebasing: bytes[0..<end])
        let key = Array("\"seq\":".utf8)
        guard line.count >= key.count,
              let at = (0...(line.count - key.count)).first(where: { line[$0..<($0 + key.count)].elementsEqual(key) }) else { return nil }
        var start = at + key.count
        while start < line.count && line[start] == UInt8(ascii: " ") { start += 1 }
        var stop = start
        while stop < line.count && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(line[stop]) { stop += 1 }
        return StreamLineParser.integer(line, start..<stop)
    }

    func stop() { client?.close(code: .goingAway, reason: "listener stopping") }
}
