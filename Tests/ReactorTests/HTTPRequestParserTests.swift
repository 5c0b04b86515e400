import XCTest
import Reactor

final class HTTPRequestParserTests: XCTestCase {
    // MARK: request line and headers

    func testParsesRequestLineHeadersAndTarget() throws {
        let text = "GET /api/events?limit=10&before_seq=5 HTTP/1.1\r\nHost: x\r\nX-Thing:  spaced value \t\r\n\r\n"
        guard case .request(let request, let consumed) = httpParseOnce(text) else { return XCTFail("no request") }
        XCTAssertEqual(consumed, text.utf8.count)
        XCTAssertEqual(request.method, "GET")
        XCTAssertEqual(request.target, "/api/events?limit=10&before_seq=5")
        XCTAssertEqual(request.path, "/api/events")
        XCTAssertEqual(request.query, "limit=10&before_seq=5")
        XCTAssertEqual(request.version, .http1_1)
        XCTAssertEqual(request.headers.count, 2)
        XCTAssertEqual(request.headers["X-Thing"], "spaced value")
        XCTAssertEqual(request.body, [])
    }

    func testHeaderLookupIgnoresCase() throws {
        let request = try XCTUnwrap(httpRequestOf(httpParseOnce("GET / HTTP/1.1\r\ncOnTeNt-TyPe: a/b\r\nX-A: 1\r\nx-a: 2\r\n\r\n")))
        XCTAssertEqual(request.headers["content-type"], "a/b")
        XCTAssertEqual(request.headers["CONTENT-TYPE"], "a/b")
        XCTAssertEqual(request.headers.values(for: "X-A"), ["1", "2"])
        XCTAssertNil(request.headers["content-typ"])
        XCTAssertTrue(request.headers.containsToken("B", in: "x-a") == false)
    }

    func testTargetWithoutQueryHasNilQuery() throws {
        let request = try XCTUnwrap(httpRequestOf(httpParseOnce("DELETE /a/b HTTP/1.1\r\n\r\n")))
        XCTAssertEqual(request.path, "/a/b")
        XCTAssertNil(request.query)
        XCTAssertEqual(request.queryParameters.count, 0)
    }

    func testEmptyLinesBeforeRequestLineAreIgnored() throws {
        let text = "\r\n\r\nGET / HTTP/1.1\r\n\r\n"
        guard case .request(let request, let consumed) = httpParseOnce(text) else { return XCTFail("no request") }
        XCTAssertEqual(request.method, "GET")
        XCTAssertEqual(consumed, text.utf8.count)
    }

    // MARK: bodies

    func testContentLengthBody() throws {
        let text = "POST /publish HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello worldEXTRA"
        guard case .request(let request, let consumed) = httpParseOnce(text) else { return XCTFail("no request") }
        XCTAssertEqual(request.bodyString, "hello world")
        XCTAssertEqual(consumed, text.utf8.count - 5)
    }

    func testIdenticalRepeatedContentLengthsAreOneLength() throws {
        let request = try XCTUnwrap(httpRequestOf(httpParseOnce("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc")))
        XCTAssertEqual(request.bodyString, "abc")
    }

    func testChunkedBodyWithExtensionsAndTrailers() throws {
        let text = "POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;name=value;x\r\nhello\r\n1 ; ext=\"q\"\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: yes\r\nOther: 1\r\n\r\nNEXT"
        guard case .request(let request, let consumed) = httpParseOnce(text) else { return XCTFail("no request") }
        XCTAssertEqual(request.bodyString, "hello 0123456789")
        XCTAssertEqual(consumed, text.utf8.count - 4)
        XCTAssertEqual(request.headers["transfer-encoding"], "chunked")
    }

    func testChunkedBodyWithoutTrailers() throws {
        let request = try XCTUnwrap(httpRequestOf(httpParseOnce("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")))
        XCTAssertEqual(request.bodyString, "abc")
    }

    func testPartialInputNeedsMore() {
        XCTAssertEqual(httpParseOnce("GET / HTTP/1.1\r\nHost: a\r\n"), .needMore)
        XCTAssertEqual(httpParseOnce("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc"), .needMore)
        XCTAssertEqual(httpParseOnce("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"), .needMore)
        XCTAssertEqual(httpParseOnce("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n"), .needMore)
    }

    func testIncrementalParsingKeepsScanPositionAndGivesSameRequest() throws {
        let text = Array("POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\nA: b\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n".utf8)
        var parser = HTTPRequestParser()
        for end in 1..<text.count {
            let result = Array(text[0..<end]).withUnsafeBytes { parser.parse($0) }
            XCTAssertEqual(result, .needMore, "prefix \(end)")
        }
        let result = text.withUnsafeBytes { parser.parse($0) }
        XCTAssertEqual(httpRequestOf(result)?.bodyString, "wxyz")
        XCTAssertEqual(result, httpParseOnce(String(decoding: text, as: UTF8.self)))
    }

    // MARK: keep-alive

    func testHTTP11KeepsAliveByDefault() throws {
        XCTAssertEqual(httpRequestOf(httpParseOnce("GET / HTTP/1.1\r\n\r\n"))?.keepAlive, true)
    }

    func testConnectionCloseEndsHTTP11() throws {
        XCTAssertEqual(httpRequestOf(httpParseOnce("GET / HTTP/1.1\r\nConnection: Keep-Alive, CLOSE\r\n\r\n"))?.keepAlive, false)
    }

    func testHTTP10ClosesByDefaultAndKeepsAliveWhenAsked() throws {
        let plain = try XCTUnwrap(httpRequestOf(httpParseOnce("GET / HTTP/1.0\r\n\r\n")))
        XCTAssertEqual(plain.version, .http1_0)
        XCTAssertFalse(plain.keepAlive)
        XCTAssertEqual(httpRequestOf(httpParseOnce("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))?.keepAlive, true)
    }

    // MARK: pipelining

    func testPipelinedRequestsAreReturnedOneByOneWithConsumedCounts() {
        let first = "POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
        let second = "GET /b HTTP/1.1\r\n\r\n"
        let third = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n"
        let results = httpParseStream(Array((first + second + third).utf8))
        XCTAssertEqual(results.count, 3)
        XCTAssertEqual(results.compactMap { httpRequestOf($0)?.path }, ["/a", "/b", "/c"])
        let consumed = results.map { result -> Int in
            if case .request(_, let n) = result { return n }
            return -1
        }
        XCTAssertEqual(consumed, [first.utf8.count, second.utf8.count, third.utf8.count])
        XCTAssertEqual(httpRequestOf(results[2])?.bodyString, "z")
    }

    // MARK: limits

    func testHeadUpToTheLimitIsAccepted() {
        let prefix = "GET / HTTP/1.1\r\nX: "
        let filler = String(repeating: "a", count: 16 * 1024 - prefix.utf8.count - 4)
        let text = prefix + filler + "\r\n\r\n"
        XCTAssertEqual(text.utf8.count, 16 * 1024)
        XCTAssertNotNil(httpRequestOf(httpParseOnce(text)))
    }

    func testHeadOverTheLimitIs431() {
        let text = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 16 * 1024) + "\r\n\r\n"
        XCTAssertEqual(httpErrorStatus(httpParseOnce(text)), 431)
        // Without an end in sight, 16 KiB of head is enough to know.
        XCTAssertEqual(httpErrorStatus(httpParseOnce("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 16 * 1024))), 431)
    }

    func testContentLengthOverLimitIs413BeforeTheBodyArrives() {
        let limits = HTTPParserLimits(maxBodyBytes: 100)
        XCTAssertEqual(httpErrorStatus(httpParseOnce("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", limits: limits)), 413)
        XCTAssertEqual(httpErrorStatus(httpParseOnce("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n")), 413)
        XCTAssertEqual(httpParseOnce("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n", limits: limits), .needMore)
    }

    func testChunkedBodyOverLimitIs413AsTheSumGrows() {
        let limits = HTTPParserLimits(maxBodyBytes: 10)
        let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        // 6 + 5 > 10: refused at the second size line, before its data arrives.
        XCTAssertEqual(httpErrorStatus(httpParseOnce(head + "6\r\nabcdef\r\n5\r\n", limits: limits)), 413)
        XCTAssertEqual(httpParseOnce(head + "6\r\nabcdef\r\n4\r\n", limits: limits), .needMore)
        XCTAssertEqual(httpErrorStatus(httpParseOnce(head + "ffffffffffffffffffffffff\r\n")), 413)
    }

    func testChunkFramingOverheadIsBounded() {
        let limits = HTTPParserLimits(maxChunkOverheadBytes: 200)
        let chunk = "1;" + String(repeating: "e", count: 60) + "\r\nx\r\n"
        let text = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + String(repeating: chunk, count: 4)
        XCTAssertEqual(httpErrorStatus(httpParseOnce(text, limits: limits)), 413)
    }

    func testTrailersOverTheHeadLimitAre431() {
        let limits = HTTPParserLimits(maxHeadBytes: 256)
        let text = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " + String(repeating: "t", count: 300) + "\r\n\r\n"
        XCTAssertEqual(httpErrorStatus(httpParseOnce(text, limits: limits)), 431)
    }

    // MARK: malformed input

    func testMalformedRequestLinesAre400() {
        let lines = [
            "GET /\r\n\r\n",                 // no version
            "GET  / HTTP/1.1\r\n\r\n",       // empty target
            "GET / HTTP/1.1 \r\n\r\n",       // trailing space
            "G(T / HTTP/1.1\r\n\r\n",        // bad method byte
            " GET / HTTP/1.1\r\n\r\n",       // empty method
            "GET /a\u{01}b HTTP/1.1\r\n\r\n", // control byte in target
            "GET / HTTP/1.1\n\n",            // bare LF
            "GET / http/1.1\r\n\r\n",        // lowercase protocol
            "GET / HTTP/11\r\n\r\n",
        ]
        for line in lines {
            XCTAssertEqual(httpErrorStatus(httpParseOnce(line)), 400, line.debugDescription)
        }
    }

    func testUnsupportedHTTPVersionIs400() {
        guard case .error(let status, let message) = httpParseOnce("GET / HTTP/2.0\r\n\r\n") else { return XCTFail() }
        XCTAssertEqual(status, 400)
        XCTAssertEqual(message, "unsupported HTTP version")
        XCTAssertEqual(httpErrorStatus(httpParseOnce("GET / HTTP/1.2\r\n\r\n")), 400)
    }

    func testMalformedHeadersAre400() {
        let heads = [
            "X : y\r\n",          // space before the colon
            "X y\r\n",            // no colon
            ": y\r\n",            // empty name
            "X: a\u{7F}b\r\n",    // DEL in value
            "X: a\u{00}b\r\n",    // NUL in value
            "X: a\rb\r\n",        // bare CR in value
            "X: a\n",             // bare LF
            "X: a\r\n folded\r\n", // obsolete folding
        ]
        for head in heads {
            XCTAssertEqual(httpErrorStatus(httpParseOnce("GET / HTTP/1.1\r\n" + head + "\r\n")), 400, head.debugDescription)
        }
    }

    func testBadChunkSizesAre400() {
        let bodies = ["zz\r\n", "\r\n", "-1\r\n", "5 x\r\nhello\r\n", "5\nhello", "3\r\nabcX\r\n", "3\r\nabc\rX",
                      "1;\u{01}\r\nx\r\n", String(repeating: "0", count: 5000)]
        for body in bodies {
            let text = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + body
            XCTAssertEqual(httpErrorStatus(httpParseOnce(text)), 400, body.debugDescription)
        }
    }

    func testContentLengthWithTransferEncodingIs400() {
        let text = "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        XCTAssertEqual(httpErrorStatus(httpParseOnce(text)), 400)
    }

    func testInvalidContentLengthsAre400() {
        for value in ["-1", "abc", "1 2", "+5", "", "3, 4", "0x10"] {
            XCTAssertEqual(httpErrorStatus(httpParseOnce("POST / HTTP/1.1\r\nContent-Length: \(value)\r\n\r\n")), 400, value)
        }
        XCTAssertEqual(httpErrorStatus(httpParseOnce("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n")), 400)
    }

    func testTransferEncodingInHTTP10Is400() {
        XCTAssertEqual(httpErrorStatus(httpParseOnce("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")), 400)
    }

    func testUnknownTransferCodingIs501() {
        XCTAssertEqual(httpErrorStatus(httpParseOnce("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")), 501)
        XCTAssertEqual(httpErrorStatus(httpParseOnce("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n")), 501)
    }

    func testGarbageIsRefusedBeforeALineEnds() {
        // A TLS ClientHello: no LF for a long time, but the first byte already cannot be a method.
        XCTAssertEqual(httpParseOnce("\u{16}\u{03}\u{01}\u{02}\u{00}"), .error(status: 400, message: "invalid method"))
        XCTAssertEqual(httpErrorStatus(httpParseOnce("GET")), nil)
    }

    func testErrorsAreSticky() {
        var parser = HTTPRequestParser()
        let bad = Array("BAD LINE\r\n\r\n".utf8)
        let first = bad.withUnsafeBytes { parser.parse($0) }
        XCTAssertEqual(httpErrorStatus(first), 400)
        let good = Array("GET / HTTP/1.1\r\n\r\n".utf8)
        XCTAssertEqual(good.withUnsafeBytes { parser.parse($0) }, first)
    }

    // MARK: Expect: 100-continue

    func testExpectContinueIsReportedWhileTheBodyIsMissing() {
        var parser = HTTPRequestParser()
        let head = Array("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n".utf8)
        XCTAssertEqual(head.withUnsafeBytes { parser.parse($0) }, .needMore)
        XCTAssertTrue(parser.expectsContinue)
        XCTAssertNotNil(httpRequestOf((head + Array("ok".utf8)).withUnsafeBytes { parser.parse($0) }))
        XCTAssertFalse(parser.expectsContinue)
    }

    // MARK: request helpers

    func testQueryParametersArePercentDecoded() throws {
        let request = try XCTUnwrap(httpRequestOf(httpParseOnce("GET /x?a=1&b=hello%20w%C3%B6rld&c=a+b&flag&bad=%zz%4&=v HTTP/1.1\r\n\r\n")))
        XCTAssertEqual(request.queryParameter("a"), "1")
        XCTAssertEqual(request.queryParameter("b"), "hello wörld")
        XCTAssertEqual(request.queryParameter("c"), "a b")
        XCTAssertEqual(request.queryParameter("flag"), "")
        XCTAssertEqual(request.queryParameter("bad"), "%zz%4")
        XCTAssertEqual(request.queryParameter(""), "v")
        XCTAssertNil(request.queryParameter("missing"))
        XCTAssertEqual(request.queryParameters.map(\.name), ["a", "b", "c", "flag", "bad", ""])
    }

    func testPercentDecodeLeavesPlusAloneInPaths() {
        XCTAssertEqual(HTTPRequest.percentDecode("a+b%2Fc"), "a+b/c")
        XCTAssertEqual(HTTPRequest.percentDecode("a+b", plusAsSpace: true), "a b")
    }

    func testWebSocketUpgradeIsRecognised() throws {
        let upgrade = try XCTUnwrap(httpRequestOf(httpParseOnce("GET /?from_seq=3 HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n")))
        XCTAssertTrue(upgrade.isWebSocketUpgrade)
        XCTAssertEqual(upgrade.queryParameter("from_seq"), "3")
        XCTAssertFalse(try XCTUnwrap(httpRequestOf(httpParseOnce("GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n"))).isWebSocketUpgrade)
    }
}

extension HTTPRequestParserTests {
    func testSlowTrickleOfAMethodIsNotRescanned() {
        // 16 KiB of method bytes one at a time: linear work, then 431 at the limit.
        let bytes = [UInt8](repeating: UInt8(ascii: "A"), count: 16 * 1024)
        var parser = HTTPRequestParser()
        let start = ContinuousClock.now
        var last = HTTPParseResult.needMore
        bytes.withUnsafeBytes { all in
            for end in 1...all.count {
                last = parser.parse(UnsafeRawBufferPointer(rebasing: all[0..<end]))
                if last != .needMore { break }
            }
        }
        XCTAssertEqual(httpErrorStatus(last), 431)
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(1))
    }
}

extension HTTPRequestParserTests {
    func testHeaderTokenListsAreMatchedElementByElement() throws {
        let request = try XCTUnwrap(httpRequestOf(httpParseOnce("GET / HTTP/1.1\r\nConnection: keep-alive , Upgrade\r\nX: ,,a,\r\nY: upgraded\r\n\r\n")))
        XCTAssertTrue(request.headers.containsToken("upgrade", in: "connection"))
        XCTAssertTrue(request.headers.containsToken("KEEP-ALIVE", in: "Connection"))
        XCTAssertTrue(request.headers.containsToken("a", in: "x"))
        XCTAssertTrue(request.headers.containsToken("", in: "x"))
        XCTAssertFalse(request.headers.containsToken("upgrade", in: "y"))
        XCTAssertFalse(request.headers.containsToken("close", in: "connection"))
    }
}
