/// Why a request sent with `HTTPClient` got no response.
public struct HTTPClientError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A keep-alive HTTP/1.1 client connection on a loop. Requests may be pipelined: each is
/// written straight into the connection's outbound buffer (everything sent in one turn
/// leaves in one write) and answered in order from a FIFO of completions. When the
/// connection closes, every request still waiting completes with an error.
public final class HTTPClient: TCPConnectionDelegate {
    public typealias Completion = (Result<HTTPClientResponse, HTTPClientError>) -> Void

    /// The TCP connection underneath.
    public private(set) var connection: TCPConnection!
    private let hostHeader: String
    private var parser = HTTPResponseParser()
    private var waiting: [(completion: Completion, noBody: Bool)] = []
    private var waitingHead = 0
    /// Called once when the connection is gone.
    public var onClose: ((SocketError?) -> Void)?
    /// True once connected and until closed.
    public private(set) var isConnected = false

    /// Connects to `host:port` (requests may be sent at once; they leave once connected).
    public init(loop: EventLoop, host: String, port: Int, connectTimeout: Duration = .seconds(10)) throws {
        hostHeader = port == 80 ? host : "\(host):\(port)"
        connection = try TCPConnection.connect(loop: loop, host: host, port: port, timeout: connectTimeout,
                                               delegate: self)
    }

    /// Requests sent and not yet answered.
    public var inFlight: Int { waiting.count - waitingHead }

    /// True while the connection can take requests.
    public var isOpen: Bool { connection?.isOpen ?? false }

    /// Sends a request. `body` is sent with a Content-Length; `headers` are added as given.
    public func send(method: String, path: String, headers: [(String, String)] = [],
                     body: UnsafeRawBufferPointer? = nil, completion: @escaping Completion) {
        guard let connection, connection.isOpen else {
            completion(.failure(HTTPClientError("connection closed")))
            return
        }
        let out = connection.outbound
        out.write(method)
        out.write(byte: UInt8(ascii: " "))
        out.write(path)
        out.write(" HTTP/1.1\r\nHost: " as StaticString)
        out.write(hostHeader)
        out.write("\r\n" as StaticString)
        for (name, value) in headers {
            out.write(name)
            out.write(": " as StaticString)
            out.write(value)
            out.write("\r\n" as StaticString)
        }
        if let body {
            out.write("Content-Length: " as StaticString)
            out.write(decimal: body.count)
            out.write("\r\n\r\n" as StaticString)
            out.write(body)
        } else {
            out.write("\r\n" as StaticString)
        }
        connection.didWriteToOutbound()
        waiting.append((completion, method == "HEAD"))
    }

    /// Sends a request with a body given as an array.
    public func send(method: String, path: String, headers: [(String, String)] = [], body: [UInt8],
                     completion: @escaping Completion) {
        body.withUnsafeBytes { send(method: method, path: path, headers: headers, body: $0, completion: completion) }
    }

    /// Closes after the responses in flight... at once: pending requests fail.
    public func close() { connection?.close() }

    public func connectionDidConnect(_ connection: TCPConnection) { isConnected = true }

    public func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        var offset = 0
        while offset < bytes.count {
            guard waitingHead < waiting.count else {
                failAll("unsolicited bytes from the server")
                connection.abort()
                return bytes.count
            }
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            switch parser.parse(rest, noBody: waiting[waitingHead].noBody) {
            case .needMore:
                return offset
            case .error(let message):
                failAll("bad response: \(message)")
                connection.abort()
                return bytes.count
            case .response(let response, let consumed):
                offset += consumed
                let completion = waiting[waitingHead].completion
                waitingHead += 1
                if waitingHead > 64 && waitingHead * 2 > waiting.count {
                    waiting.removeFirst(waitingHead)
                    waitingHead = 0
                }
                completion(.success(response))
                if response.closesConnection { connection.close() }
            }
        }
        return offset
    }

    public func connectionDidClose(_ connection: TCPConnection, error: SocketError?) {
        isConnected = false
        failAll(error.map { "connection closed: \($0)" } ?? "connection closed")
        onClose?(error)
        onClose = nil
    }

    private func failAll(_ message: String) {
        let pending = waiting[waitingHead...]
        waiting.removeAll()
        waitingHead = 0
        for item in pending { item.completion(.failure(HTTPClientError(message))) }
    }
}
