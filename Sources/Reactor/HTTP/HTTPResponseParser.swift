/// A response as an HTTP client receives it.
public struct HTTPClientResponse: Sendable, Equatable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// The server will close after this response.
    public var closesConnection: Bool

    /// The body as UTF-8 text.
    public var bodyString: String { String(decoding: body, as: UTF8.self) }
}

/// Result of feeding buffered bytes to `HTTPResponseParser`.
public enum HTTPResponseParseResult: Sendable, Equatable {
    case needMore
    case response(HTTPClientResponse, consumed: Int)
    case error(String)
}

/// Parses HTTP/1.1 responses from the bytes a client connection buffered (status line,
/// headers, a body framed by Content-Length or chunked). Like the request parser it is a
/// function of (bytes, small state): it remembers how far it looked for the end of the
/// head, so feeding a response in pieces costs no rescans.
public struct HTTPResponseParser {
    public var maxHeadBytes: Int
    public var maxBodyBytes: Int
    private var headScanned = 0

    public init(maxHeadBytes: Int = 64 * 1024, maxBodyBytes: Int = 64 << 20) {
        self.maxHeadBytes = maxHeadBytes
        self.maxBodyBytes = maxBodyBytes
    }

    /// Parses the response at the start of `bytes`. `noBody` is for answers to HEAD.
    public mutating func parse(_ bytes: UnsafeRawBufferPointer, noBody: Bool = false) -> HTTPResponseParseResult {
        guard let headEnd = findHeadEnd(bytes) else {
            return bytes.count > maxHeadBytes ? .error("response head larger than \(maxHeadBytes) bytes") : .needMore
        }
        let head = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[0..<headEnd]), as: UTF8.self)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard let statusLine = lines.first else { return .error("empty response") }
        lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), (100...999).contains(status) else {
            return .error("malformed status line: \(statusLine.prefix(80))")
        }
        var headers = HTTPHeaders()
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return .error("malformed header line") }
            var value = line[line.index(after: colon)...]
            while let first = value.first, first == " " || first == "\t" { value.removeFirst() }
            while let last = value.last, last == " " || last == "\t" { value.removeLast() }
            headers.add(name: String(line[..<colon]), value: String(value))
        }
        let bodyStart = headEnd + 4
        let closes = headers.containsToken("close", in: "Connection") || parts[0] == "HTTP/1.0"
        var response = HTTPClientResponse(status: status, headers: headers, body: [], closesConnection: closes)
        if noBody || status / 100 == 1 || status == 204 || status == 304 {
            reset()
            return .response(response, consumed: bodyStart)
        }
        if headers.containsToken("chunked", in: "Transfer-Encoding") {
            switch decodeChunked(bytes, from: bodyStart) {
            case .needMore: return .needMore
            case .error(let message): return .error(message)
            case .done(let body, let end):
                response.body = body
                reset()
                return .response(response, consumed: end)
            }
        }
        guard let lengthText = headers["Content-Length"] else {
            return .error("response without Content-Length or chunked framing")
        }
        guard let length = Int(lengthText), length >= 0 else { return .error("invalid Content-Length '\(lengthText)'") }
        guard length <= maxBodyBytes else { return .error("response body of \(length) bytes exceeds \(maxBodyBytes)") }
        guard bytes.count - bodyStart >= length else { return .needMore }
        response.body = Array(UnsafeRawBufferPointer(rebasing: bytes[bodyStart..<(bodyStart + length)]))
        reset()
        return .response(response, consumed: bodyStart + length)
    }

    private mutating func reset() { headScanned = 0 }

    private mutating func findHeadEnd(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var i = max(0, headScanned - 3)
        while i + 3 < bytes.count {
            if bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i }
            i += 1
        }
        headScanned = max(0, bytes.count)
        return nil
    }

    private enum Chunked { case needMore, error(String), done([UInt8], Int) }

    private func decodeChunked(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Chunked {
        var body: [UInt8] = []
        var i = start
        while true {
            guard let lineEnd = findCRLF(bytes, from: i) else { return .needMore }
            var size = 0
            var sawDigit = false
            for k in i..<lineEnd {
                let c = bytes[k]
                if c == UInt8(ascii: ";") { break }
                guard let digit = JSONScanner.hexValue(c).map(Int.init) else { return .error("malformed chunk size") }
                size = size * 16 + digit
                sawDigit = true
                if size > maxBodyBytes { return .error("chunk larger than \(maxBodyBytes) bytes") }
            }
            guard sawDigit else { return .error("malformed chunk size") }
            i = lineEnd + 2
            if size == 0 {
                // Trailers end with an empty line.
                while true {
                    guard let end = findCRLF(bytes, from: i) else { return .needMore }
                    if end == i { return .done(body, end + 2) }
                    i = end + 2
                }
            }
            guard bytes.count >= i + size + 2 else { return .needMore }
            body.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<(i + size)]))
            if body.count > maxBodyBytes { return .error("response body exceeds \(maxBodyBytes) bytes") }
            guard bytes[i + size] == 13, bytes[i + size + 1] == 10 else { return .error("chunk not followed by CRLF") }
            i += size + 2
        }
    }

    private func findCRLF(_ bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        var i = from
        while i + 1 < bytes.count {
            if bytes[i] == 13 && bytes[i + 1] == 10 { return i }
            i += 1
        }
        return nil
    }
}
