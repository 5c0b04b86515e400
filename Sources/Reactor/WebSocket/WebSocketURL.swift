/// A `ws://host[:port][/path][?query]` URL. `wss://` is refused: there is no TLS here.
public struct WebSocketURL: Equatable, Sendable, CustomStringConvertible {
    /// Host name or IP literal (IPv6 without brackets).
    public var host: String
    public var port: Int
    /// The path, `/` at least.
    public var path: String
    /// The query after `?`, without it; nil when absent.
    public var query: String?

    /// Why a URL string was refused.
    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case unsupportedScheme(String)
        case missingHost
        case badPort(String)

        public var description: String {
            switch self {
            case .unsupportedScheme("wss"): return "wss:// (WebSocket over TLS) is not supported; use ws://"
            case .unsupportedScheme(let s): return "unsupported URL scheme '\(s)'; expected ws://host:port/path"
            case .missingHost: return "URL has no host; expected ws://host:port/path"
            case .badPort(let p): return "bad port '\(p)' in URL (1-65535)"
            }
        }
    }

    /// Creates a URL from parts.
    public init(host: String, port: Int = 80, path: String = "/", query: String? = nil) {
        self.host = host
        self.port = port
        self.path = path.isEmpty ? "/" : path
        self.query = query
    }

    /// Parses `ws://host[:port][/path][?query]` (a fragment `#...` is dropped).
    public init(parsing text: String) throws(ParseError) {
        guard let schemeEnd = text.firstRange(of: "://") else { throw .unsupportedScheme(text) }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "ws" else { throw .unsupportedScheme(scheme) }
        var rest = text[schemeEnd.upperBound...]
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        let tail = rest[authorityEnd...]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .missingHost }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { throw .badPort(String(after)) }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { throw .missingHost }
        var port = 80
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else { throw .badPort(String(portText)) }
            port = p
        }
        var path = tail
        var query: String?
        if let q = tail.firstIndex(of: "?") {
            path = tail[..<q]
            query = String(tail[tail.index(after: q)...])
        }
        self.init(host: String(host), port: port, path: String(path), query: query)
    }

    /// The request target for the handshake: path plus `?query`.
    public var requestTarget: String { query.map { "\(path)?\($0)" } ?? path }

    /// The Host header value.
    public var hostHeader: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port == 80 ? h : "\(h):\(port)"
    }

    public var description: String { "ws://\(hostHeader)\(requestTarget)" }
}
