/// A response a handler gives: status, content type, extra headers and body.
/// `HTTPServer` adds `Content-Length` and `Connection` itself.
public struct HTTPResponse: Sendable, Equatable {
    /// The status code (200, 404, ...).
    public var status: Int
    /// The `Content-Type`, or nil for none.
    public var contentType: String?
    /// Extra header fields, written in order after the standard ones.
    public var headers: [HTTPHeaders.Field]
    /// The body bytes.
    public var body: [UInt8]
    /// Close the connection after this response even if the client would keep it.
    public var closeConnection: Bool

    /// Creates a response.
    public init(status: Int = 200, contentType: String? = nil, headers: [(String, String)] = [],
                body: [UInt8] = [], closeConnection: Bool = false) {
        self.status = status
        self.contentType = contentType
        self.headers = headers.map { HTTPHeaders.Field(name: $0.0, value: $0.1) }
        self.body = body
        self.closeConnection = closeConnection
    }

    /// A JSON response; `json` must already be JSON text.
    public static func json(_ json: String, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", body: Array(json.utf8))
    }

    /// A plain-text (or other textual) response.
    public static func text(_ text: String, status: Int = 200,
                            contentType: String = "text/plain; charset=utf-8") -> HTTPResponse {
        HTTPResponse(status: status, contentType: contentType, body: Array(text.utf8))
    }

    /// The JSON error response every API answers failures with: `{"error": "<message>"}`.
    public static func error(_ status: Int, _ message: String) -> HTTPResponse {
        json(jsonErrorBody(message), status: status)
    }

    /// `{"error": "<message>"}` with `message` escaped as a JSON string.
    public static func jsonErrorBody(_ message: String) -> String {
        var out = #"{"error": "#
        appendJSONString(message, to: &out)
        out += "}"
        return out
    }

    /// Appends `value` as a quoted JSON string (RFC 8259: quote, backslash and control
    /// characters escaped; everything else, including non-ASCII, passed through as UTF-8).
    public static func appendJSONString(_ value: String, to out: inout String) {
        out += JSONString.quoted(value)
    }

    /// Writes status line, headers and (unless `includeBody` is false, for HEAD) the body
    /// into `buffer`. `keepAlive` decides the `Connection` header; `version` is the
    /// request's, so an HTTP/1.0 client that asked to keep the connection hears it is kept.
    public func write(to buffer: ByteBuffer, keepAlive: Bool, version: HTTPVersion = .http1_1,
                      includeBody: Bool = true) {
        buffer.write("HTTP/1.1 " as StaticString)
        buffer.write(decimal: status)
        buffer.write(byte: UInt8(ascii: " "))
        buffer.write(HTTPResponse.reasonPhrase(status))
        buffer.write("\r\n" as StaticString)
        if let contentType {
            buffer.write("Content-Type: " as StaticString)
            writeFieldValue(contentType, to: buffer)
            buffer.write("\r\n" as StaticString)
        }
        // 1xx and 204 must not carry a length (RFC 9110 8.6).
        if status >= 200 && status != 204 {
            buffer.write("Content-Length: " as StaticString)
            buffer.write(decimal: body.count)
            buffer.write("\r\n" as StaticString)
        }
        if !keepAlive {
            buffer.write("Connection: close\r\n" as StaticString)
        } else if version == .http1_0 {
            buffer.write("Connection: keep-alive\r\n" as StaticString)
        }
        for field in headers {
            writeFieldValue(field.name, to: buffer)
            buffer.write(": " as StaticString)
            writeFieldValue(field.value, to: buffer)
            buffer.write("\r\n" as StaticString)
        }
        buffer.write("\r\n" as StaticString)
        if includeBody && !body.isEmpty { buffer.write(body) }
    }

    /// The bytes `write(to:keepAlive:version:includeBody:)` produces (tests and tools).
    public func serialized(keepAlive: Bool = true, version: HTTPVersion = .http1_1) -> [UInt8] {
        let buffer = ByteBuffer(capacity: 128 + body.count)
        write(to: buffer, keepAlive: keepAlive, version: version)
        return buffer.readableBytesArray
    }

    /// The standard reason phrase for `status` ("Unknown" for codes we never send).
    public static func reasonPhrase(_ status: Int) -> StaticString {
        switch status {
        case 100: return "Continue"
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 422: return "Unprocessable Content"
        case 426: return "Upgrade Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Unknown"
        }
    }
}

/// Writes a header name or value, turning CR and LF into spaces: a handler that echoes
/// user input into a header must not be able to split the response.
private func writeFieldValue(_ value: String, to buffer: ByteBuffer) {
    var value = value
    value.withUTF8 { bytes in
        if !bytes.contains(where: { $0 == 13 || $0 == 10 }) {
            buffer.write(UnsafeRawBufferPointer(bytes))
            return
        }
        for b in bytes { buffer.write(byte: b == 13 || b == 10 ? 0x20 : b) }
    }
}
