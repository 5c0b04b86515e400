/// The client side of the opening handshake (RFC 6455 section 4.1) for one attempt: the
/// TCP connection's delegate until the 101 arrives, when a client-role WebSocketConnection
/// takes over (bytes after the response go straight to it).
final class WebSocketClientHandshake: TCPConnectionDelegate {
    private weak var client: WebSocketClient?
    private let url: WebSocketURL
    private let key = WebSocketHandshakeKey.makeClientKey()
    var connection: TCPConnection?
    private var timer: TimerHandle?
    private var finished = false
    private var connected = false
    /// The 101 response's headers, once accepted.
    private(set) var responseHeaders = HTTPHeaders()
    static let maxResponseHead = 16 * 1024

    init(client: WebSocketClient, url: WebSocketURL) {
        self.client = client
        self.url = url
    }

    func armTimeout(_ timeout: Duration) {
        guard let connection else { return }
        timer = connection.loop.schedule(in: timeout) { [weak self] in
            guard let self, !self.finished else { return }
            self.fail(.timeout)
        }
    }

    /// The owner gave up on this attempt.
    func abandon() {
        finished = true
        cancelTimer()
        connection?.abort()
    }

    func connectionDidConnect(_ connection: TCPConnection) {
        connected = true
        var head = "GET \(url.requestTarget) HTTP/1.1\r\nHost: \(url.hostHeader)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        for header in client?.configuration.requestHeaders ?? [] { head += "\(header.name): \(header.value)\r\n" }
        connection.write(head + "\r\n")
    }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        guard !finished else { return bytes.count }
        guard let headEnd = Self.endOfHead(UnsafeRawBufferPointer(bytes)) else {
            if bytes.count > Self.maxResponseHead { fail(.badResponse("response head over 16 KiB")) }
            return 0
        }
        let head = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[..<headEnd]), as: UTF8.self)
        if let problem = check(head) {
            fail(.badResponse(problem))
            return bytes.count
        }
        finished = true
        cancelTimer()
        guard let client else { connection.abort(); return bytes.count }
        let socket = WebSocketConnection(connection: connection, role: .client, requestTarget: url.requestTarget,
                                         configuration: client.configuration)
        client.handshakeSucceeded(self, socket: socket)
        return headEnd
    }

    func connectionDidClose(_ connection: TCPConnection, error: SocketError?) {
        guard !finished else { return }
        finished = true
        cancelTimer()
        let failure: WebSocketClientError = !connected && error != nil ? .connect(error!) : .closedDuringHandshake(error)
        client?.handshakeFailed(self, failure)
    }

    private func fail(_ error: WebSocketClientError) {
        guard !finished else { return }
        finished = true
        cancelTimer()
        connection?.abort()
        client?.handshakeFailed(self, error)
    }

    private func cancelTimer() {
        if let timer, let connection { connection.loop.cancel(timer) }
        timer = nil
    }

    /// Index just past the blank line ending the response head, if it has arrived.
    static func endOfHead(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 3..<bytes.count where bytes[i] == 0x0A && bytes[i - 1] == 0x0D && bytes[i - 2] == 0x0A && bytes[i - 3] == 0x0D {
            return i + 1
        }
        return nil
    }

    /// Nil when the response accepts our handshake, else what is wrong with it.
    private func check(_ head: String) -> String? {
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: true)
        guard let statusLine = lines.first else { return "empty response" }
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1.") else { return "malformed status line '\(statusLine)'" }
        guard parts[1] == "101" else { return "status \(parts.dropFirst().joined(separator: " ")), expected 101" }
        var headers = HTTPHeaders()
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { return "malformed header line" }
            headers.add(name: String(line[..<colon]),
                        value: String(line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }))
        }
        guard headers.containsToken("websocket", in: "Upgrade") else { return "missing Upgrade: websocket" }
        guard headers.containsToken("upgrade", in: "Connection") else { return "missing Connection: upgrade" }
        let expected = WebSocketHandshakeKey.acceptValue(forKey: key)
        guard let accept = headers["Sec-WebSocket-Accept"] else { return "missing Sec-WebSocket-Accept" }
        guard accept.trimmingSuffixWhitespace == expected else { return "Sec-WebSocket-Accept does not match the key" }
        // We offered no extension or subprotocol, so a server may not pick one.
        if headers.contains("Sec-WebSocket-Extensions") { return "server chose an extension we did not offer" }
        if headers.contains("Sec-WebSocket-Protocol") { return "server chose a subprotocol we did not offer" }
        responseHeaders = headers
        return nil
    }
}

extension String {
    var trimmingSuffixWhitespace: Substring {
        var s = Substring(self)
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        return s
    }
}
