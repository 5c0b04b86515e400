import XCTest
import Reactor

final class HTTPResponseTests: XCTestCase {
    private func text(_ response: HTTPResponse, keepAlive: Bool = true, version: HTTPVersion = .http1_1) -> String {
        String(decoding: response.serialized(keepAlive: keepAlive, version: version), as: UTF8.self)
    }

    func testSerializesStatusLineHeadersAndBody() {
        let response = HTTPResponse(status: 202, contentType: "application/json", headers: [("X-Seq", "7")], body: Array("{}".utf8))
        XCTAssertEqual(text(response), "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 2\r\nX-Seq: 7\r\n\r\n{}")
    }

    func testConnectionHeaderFollowsKeepAliveAndVersion() {
        let response = HTTPResponse.text("x")
        XCTAssertTrue(text(response, keepAlive: false).contains("\r\nConnection: close\r\n"))
        XCTAssertFalse(text(response).contains("Connection:"))
        XCTAssertTrue(text(response, version: .http1_0).contains("\r\nConnection: keep-alive\r\n"))
    }

    func testNoContentHasNoLength() {
        XCTAssertEqual(text(HTTPResponse(status: 204)), "HTTP/1.1 204 No Content\r\n\r\n")
    }

    func testHeaderValuesCannotSplitTheResponse() {
        let response = HTTPResponse(status: 200, headers: [("X-Echo", "a\r\nSet-Cookie: evil")])
        XCTAssertTrue(text(response).contains("X-Echo: a  Set-Cookie: evil\r\n"))
    }

    func testJSONErrorBodyEscapesEverythingJSONRequires() {
        XCTAssertEqual(HTTPResponse.jsonErrorBody("plain"), #"{"error": "plain"}"#)
        XCTAssertEqual(HTTPResponse.jsonErrorBody("q\"b\\n\nr\rt\t\u{01}\u{1F}é😀"),
                       #"{"error": "q\"b\\n\nr\rt\t\u0001\u001fé😀"}"#)
        let response = HTTPResponse.error(400, "bad \"id\"")
        XCTAssertEqual(response.status, 400)
        XCTAssertEqual(response.contentType, "application/json")
        XCTAssertEqual(String(decoding: response.body, as: UTF8.self), #"{"error": "bad \"id\""}"#)
        // The escaped body is valid JSON that decodes back to the message.
        let decoded = try? JSONSerialization.jsonObject(with: Data(HTTPResponse.jsonErrorBody("a\u{0}b\"\\").utf8)) as? [String: String]
        XCTAssertEqual(decoded?["error"], "a\u{0}b\"\\")
    }

    func testReasonPhrases() {
        XCTAssertEqual("\(HTTPResponse.reasonPhrase(413))", "Content Too Large")
        XCTAssertEqual("\(HTTPResponse.reasonPhrase(431))", "Request Header Fields Too Large")
        XCTAssertEqual("\(HTTPResponse.reasonPhrase(799))", "Unknown")
    }
}

final class HTTPRouterTests: XCTestCase {
    private func request(_ method: String, _ target: String) -> HTTPRequest {
        HTTPRequest(method: method, target: target)
    }

    private func resolvedPath(_ router: HTTPRouter, _ method: String, _ target: String) -> String? {
        if case .handler(_, let routed) = router.resolve(request(method, target)) { return routed.path + "|" + routed.pathRemainder }
        return nil
    }

    func testExactRoutesMatchMethodAndPathIgnoringQuery() {
        let router = HTTPRouter()
        router.get("/health") { _, _ in }
        router.post("/publish") { _, _ in }
        XCTAssertEqual(resolvedPath(router, "GET", "/health?verbose=1"), "/health|")
        XCTAssertEqual(resolvedPath(router, "POST", "/publish"), "/publish|")
        XCTAssertNil(resolvedPath(router, "GET", "/health/"))
    }

    func testUnknownPathIsNotFound() {
        let router = HTTPRouter()
        router.get("/health") { _, _ in }
        guard case .notFound = router.resolve(request("GET", "/metrics")) else { return XCTFail() }
    }

    func testKnownPathWithOtherMethodIsMethodNotAllowedWithAllow() {
        let router = HTTPRouter()
        router.post("/publish") { _, _ in }
        router.add("PUT", "/publish") { _, _ in }
        guard case .methodNotAllowed(let allow) = router.resolve(request("GET", "/publish")) else { return XCTFail() }
        XCTAssertEqual(allow, ["POST", "PUT"])
    }

    func testGetRoutesAnswerHead() {
        let router = HTTPRouter()
        router.get("/health") { _, _ in }
        XCTAssertEqual(resolvedPath(router, "HEAD", "/health"), "/health|")
        guard case .methodNotAllowed(let allow) = router.resolve(request("DELETE", "/health")) else { return XCTFail() }
        XCTAssertEqual(allow, ["GET", "HEAD"])
    }

    func testPrefixRoutesNeedARemainderAndLoseToExactRoutes() {
        let router = HTTPRouter()
        router.get("/api/events") { _, _ in }
        router.addPrefix("GET", "/api/events/") { _, _ in }
        router.addPrefix("GET", "/api/events/special/") { _, _ in }
        XCTAssertEqual(resolvedPath(router, "GET", "/api/events"), "/api/events|")
        XCTAssertEqual(resolvedPath(router, "GET", "/api/events/abc%2Fd?x=1"), "/api/events/abc%2Fd|abc/d")
        XCTAssertEqual(resolvedPath(router, "GET", "/api/events/special/z"), "/api/events/special/z|z")
        guard case .notFound = router.resolve(request("GET", "/api/events/")) else { return XCTFail() }
        guard case .methodNotAllowed = router.resolve(request("POST", "/api/events/abc")) else { return XCTFail() }
    }
}
