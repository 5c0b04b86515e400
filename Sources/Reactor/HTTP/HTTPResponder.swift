/// The one answer owed to one request. Handlers may answer at once or later (after a
/// database query), but always on the loop thread; from another thread use `handle`.
/// Responses on a connection leave in request order: an answer to a later pipelined
/// request waits for the earlier ones. Answering twice, or after the client left, does
/// nothing.
public final class HTTPResponder {
    private var owner: HTTPServerConnection?
    let keepAlive: Bool
    let version: HTTPVersion
    let isHead: Bool

    /// The loop the connection lives on.
    public let loop: EventLoop

    /// True once `respond` was called.
    public private(set) var isAnswered = false
    /// The answer, held until every earlier request on the connection is answered.
    var response: HTTPResponse?

    init(owner: HTTPServerConnection, request: HTTPRequest) {
        self.owner = owner
        self.loop = owner.connection.loop
        keepAlive = request.keepAlive
        version = request.version
        isHead = request.method == "HEAD"
    }

    /// False once the client is gone: a slow handler may skip work nobody will read.
    public var isConnectionOpen: Bool {
        guard let owner, !isAnswered else { return false }
        return owner.connection.isOpen
    }

    /// The connection the request came on (peer address for logs); nil once answered.
    public var connection: TCPConnection? { owner?.connection }

    /// Sends `response` (with Content-Length and Connection added).
    public func respond(_ response: HTTPResponse) {
        guard !isAnswered else { return }
        isAnswered = true
        let owner = self.owner
        self.owner = nil
        owner?.complete(self, response)
    }

    /// Sends a JSON body (already JSON text).
    public func respond(json: String, status: Int = 200) {
        respond(.json(json, status: status))
    }

    /// Sends `{"error": message}` with `status`.
    public func respondError(_ status: Int, _ message: String) {
        respond(.error(status, message))
    }

    /// A Sendable handle to answer from another thread; the answer hops to the loop.
    public var handle: HTTPResponderHandle {
        HTTPResponderHandle(responder: LoopBound(self, on: loop), loop: loop.handle)
    }

    func connectionClosed() { owner = nil }
}

/// Answers an `HTTPResponder` from any thread by handing the response to its loop.
public struct HTTPResponderHandle: Sendable {
    let responder: LoopBound<HTTPResponder>
    let loop: EventLoopHandle

    /// Sends `response` on the responder's loop.
    public func respond(_ response: HTTPResponse) {
        let responder = self.responder
        loop.execute { responder.value(on: $0).respond(response) }
    }
}
