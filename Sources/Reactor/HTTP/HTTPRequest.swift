/// The HTTP versions the server speaks.
public enum HTTPVersion: Sendable, Equatable {
    /// HTTP/1.0: connections close after each response unless the client asks to keep them.
    case http1_0
    /// HTTP/1.1: connections stay open unless a side says `Connection: close`.
    case http1_1
}

/// One parsed request: head, body and the connection semantics it asked for.
public struct HTTPRequest: Sendable, Equatable {
    /// The method token as sent (methods are case-sensitive: `GET`, `POST`, ...).
    public var method: String
    /// The request target exactly as sent (`/api/events?limit=10`).
    public var target: String
    /// The target up to `?`, not percent-decoded.
    public var path: String
    /// The target after `?` (nil when there is no `?`), not decoded.
    public var query: String?
    /// The protocol version of the request line.
    public var version: HTTPVersion
    /// The header fields.
    public var headers: HTTPHeaders
    /// The body (Content-Length or de-chunked); empty when there is none.
    public var body: [UInt8]
    /// Whether the connection may carry another request after this one.
    public var keepAlive: Bool
    /// For a prefix route (`/api/events/`), the percent-decoded rest of the path
    /// (`/api/events/a%20b` gives `a b`); empty otherwise. Set by `HTTPRouter`.
    public var pathRemainder: String = ""

    /// Creates a request (tests and tools; the parser builds them from bytes).
    public init(method: String, target: String, version: HTTPVersion = .http1_1,
                headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = [], keepAlive: Bool = true) {
        self.method = method
        self.target = target
        if let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) {
            path = String(target[..<q])
            query = String(target[target.utf8.index(after: q)...])
        } else {
            path = target
            query = nil
        }
        self.version = version
        self.headers = headers
        self.body = body
        self.keepAlive = keepAlive
    }

    /// The body decoded as UTF-8 (invalid sequences become U+FFFD).
    public var bodyString: String { String(decoding: body, as: UTF8.self) }

    /// True for a GET asking to switch to WebSocket (`Upgrade: websocket`).
    public var isWebSocketUpgrade: Bool {
        method == "GET" && headers.containsToken("websocket", in: "Upgrade")
    }

    /// The query's `name=value` pairs in order, percent-decoded with `+` as space
    /// (form encoding). A pair without `=` has an empty value; undecodable escapes are kept
    /// literally.
    public var queryParameters: [(name: String, value: String)] {
        guard let query, !query.isEmpty else { return [] }
        var result: [(name: String, value: String)] = []
        for pair in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            if let eq = pair.firstIndex(of: UInt8(ascii: "=")) {
                result.append((HTTPRequest.percentDecode(pair[..<eq], plusAsSpace: true),
                               HTTPRequest.percentDecode(pair[pair.index(after: eq)...], plusAsSpace: true)))
            } else {
                result.append((HTTPRequest.percentDecode(pair, plusAsSpace: true), ""))
            }
        }
        return result
    }

    /// The first value of query parameter `name` (decoded), or nil when absent.
    public func queryParameter(_ name: String) -> String? {
        queryParameters.first { $0.name == name }?.value
    }

    /// Decodes `%XX` escapes (and `+` as space when `plusAsSpace`); a `%` not followed by
    /// two hex digits is kept as is. Bytes that are not UTF-8 become U+FFFD.
    public static func percentDecode<C: Collection<UInt8>>(_ bytes: C, plusAsSpace: Bool = false) -> String {
        // Fast path: nothing to decode, no intermediate array.
        if !bytes.contains(where: { $0 == UInt8(ascii: "%") || (plusAsSpace && $0 == UInt8(ascii: "+")) }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i != bytes.endIndex {
            let b = bytes[i]
            if b == UInt8(ascii: "%") {
                let h1 = bytes.index(after: i)
                if h1 != bytes.endIndex {
                    let h2 = bytes.index(after: h1)
                    if h2 != bytes.endIndex, let hi = hexValue(bytes[h1]), let lo = hexValue(bytes[h2]) {
                        out.append(hi << 4 | lo)
                        i = bytes.index(after: h2)
                        continue
                    }
                }
                out.append(b)
            } else if plusAsSpace && b == UInt8(ascii: "+") {
                out.append(0x20)
            } else {
                out.append(b)
            }
            i = bytes.index(after: i)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Percent-decodes a string (see `percentDecode(_:plusAsSpace:)` on bytes).
    public static func percentDecode(_ string: some StringProtocol, plusAsSpace: Bool = false) -> String {
        percentDecode(Array(string.utf8), plusAsSpace: plusAsSpace)
    }
}

func hexValue(_ b: UInt8) -> UInt8? {
    switch b {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return b &- UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return b &- UInt8(ascii: "a") &+ 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return b &- UInt8(ascii: "A") &+ 10
    default: return nil
    }
}
