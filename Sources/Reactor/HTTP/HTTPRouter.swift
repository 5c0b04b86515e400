/// A request handler. It answers through `responder`, now or later (after a database
/// query, say), always on the connection's loop thread.
public typealias HTTPHandler = (_ request: HTTPRequest, _ responder: HTTPResponder) -> Void

/// Routes by exact method and path, plus prefix routes for paths with a trailing
/// parameter (`/api/events/{id}`). Unknown path: 404; known path, other method: 405 with
/// `Allow`; both with a JSON error body. A GET route also answers HEAD.
///
/// Not Sendable: build one per loop (handlers capture loop-local state).
public final class HTTPRouter {
    private var exact: [String: [String: HTTPHandler]] = [:]
    /// Longest prefix first, so `/api/events/x/` beats `/api/events/`.
    private var prefixes: [(prefix: String, handlers: [String: HTTPHandler])] = []

    /// Creates an empty router (everything is 404).
    public init() {}

    /// Routes `method` on exactly `path` (no query) to `handler`.
    public func add(_ method: String, _ path: String, _ handler: @escaping HTTPHandler) {
        exact[path, default: [:]][method] = handler
    }

    /// Routes `method` on every path that starts with `prefix` and has something after it;
    /// the handler finds the decoded rest in `request.pathRemainder`. Exact routes win.
    public func addPrefix(_ method: String, _ prefix: String, _ handler: @escaping HTTPHandler) {
        if let i = prefixes.firstIndex(where: { $0.prefix == prefix }) {
            prefixes[i].handlers[method] = handler
        } else {
            prefixes.append((prefix, [method: handler]))
            prefixes.sort { $0.prefix.utf8.count > $1.prefix.utf8.count }
        }
    }

    /// Shorthand for `add("GET", path, handler)`.
    public func get(_ path: String, _ handler: @escaping HTTPHandler) { add("GET", path, handler) }

    /// Shorthand for `add("POST", path, handler)`.
    public func post(_ path: String, _ handler: @escaping HTTPHandler) { add("POST", path, handler) }

    /// What routing decided for a request.
    public enum Resolution {
        /// Call this handler with the (possibly amended) request.
        case handler(HTTPHandler, HTTPRequest)
        /// The path exists, not with this method; `allow` lists the methods that do.
        case methodNotAllowed(allow: [String])
        /// No route has this path.
        case notFound
    }

    /// Finds the route for `request`.
    public func resolve(_ request: HTTPRequest) -> Resolution {
        if let handlers = exact[request.path] {
            return pick(handlers, request)
        }
        let path = request.path.utf8
        for entry in prefixes {
            let prefix = entry.prefix.utf8
            guard path.count > prefix.count, path.starts(with: prefix) else { continue }
            var routed = request
            routed.pathRemainder = HTTPRequest.percentDecode(path.dropFirst(prefix.count))
            return pick(entry.handlers, routed)
        }
        return .notFound
    }

    private func pick(_ handlers: [String: HTTPHandler], _ request: HTTPRequest) -> Resolution {
        if let handler = handlers[request.method] { return .handler(handler, request) }
        if request.method == "HEAD", let handler = handlers["GET"] { return .handler(handler, request) }
        var allow = handlers.keys.sorted()
        if handlers["GET"] != nil && handlers["HEAD"] == nil { allow.append("HEAD") }
        return .methodNotAllowed(allow: allow)
    }

    /// Routes `request` and answers 404/405 itself when no handler applies.
    public func handle(_ request: HTTPRequest, _ responder: HTTPResponder) {
        switch resolve(request) {
        case .handler(let handler, let routed):
            handler(routed, responder)
        case .methodNotAllowed(let allow):
            var response = HTTPResponse.error(405, "method \(request.method) not allowed on \(request.path)")
            response.headers.append(HTTPHeaders.Field(name: "Allow", value: allow.joined(separator: ", ")))
            responder.respond(response)
        case .notFound:
            responder.respond(.error(404, "no such path: \(request.path)"))
        }
    }
}
