import Foundation
import Glibc
import Reactor
import TestSupport
import XCTest
@testable import Producer

/// Bad requests get a JSON error with the documented status and publish nothing.
final class PublishErrorsTests: XCTestCase {
    func testEveryErrorAnswersJSONAndPublishesNothing() throws {
        let producer = try ProducerHarness(maxBodyBytes: 4096)
        let loop = try EventLoop()
        let cases: [(String, String, String, Int)] = [
            ("POST", "/publish", "{\"event_id\": ", 400),
            ("POST", "/publish", "{\"event_id\": 12}", 400),
            ("POST", "/publish", "{\"event_id\": \"\"}", 400),
            ("POST", "/publish", "[{\"event_id\": \"ok\"}, {\"nope\": 1}]", 400),
            ("POST", "/publish", "not json", 400),
            ("POST", "/publish", "{\"event_id\":\"big\",\"payload\":\"" + String(repeating: "x", count: 5000) + "\"}", 413),
            ("GET", "/publish", "", 405),
            ("DELETE", "/health", "", 405),
            ("POST", "/nowhere", "{}", 404),
        ]
        // One connection per case: a 413 rightly closes its connection.
        var answers: [HTTPClientResponse] = []
        for (method, path, body, _) in cases {
            let publisher = try Publisher(loop: loop, port: producer.httpPort)
            publisher.post(body, path: path, method: method)
            XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count + publisher.failures == 1 })
            answers += publisher.answers
        }
        XCTAssertEqual(answers.map(\.status), cases.map(\.3))
        for answer in answers {
            let json = try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]
            XCTAssertNotNil(json?["error"] as? String, answer.bodyString)
            XCTAssertEqual(answer.headers["Content-Type"], "application/json")
        }
        XCTAssertEqual(producer.metrics.published.count, 0)
        XCTAssertEqual(producer.metrics.lastSeq.current, 0)
    }

    func testHealthAndMetricsAnswerOverHTTP() throws {
        let producer = try ProducerHarness()
        try XCTAssertEqual(httpPost(port: producer.httpPort, path: "/publish", body: "{\"event_id\":\"h1\"}").status, 202)
        let health = try httpGet(port: producer.httpPort, path: "/health")
        XCTAssertEqual(health.status, 200)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(health.body.utf8)) as? [String: Any])
        XCTAssertEqual(json["status"] as? String, "ok")
        XCTAssertEqual(json["last_seq"] as? Int, 1)
        let metrics = try httpGet(port: producer.httpPort, path: "/metrics")
        XCTAssertEqual(metrics.status, 200)
        XCTAssertTrue(metrics.body.contains("# TYPE dedup_producer_published_total counter"))
        XCTAssertTrue(metrics.body.contains("dedup_producer_published_total 1\n"))
    }

    func testBodiesSplitAcrossManyWritesPipelinedAndChunkedAreAccepted() throws {
        let producer = try ProducerHarness()
        let fd = try rawConnect(port: producer.httpPort)
        defer { close(fd) }
        let body = "{\"event_id\":\"slow\",\"payload\":{\"k\":\"v\"}}"
        let request = "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        for byte in request.utf8 { var b = byte; _ = send(fd, &b, 1, 0); usleep(200) }
        let pipelined = (0..<3).map { i -> String in
            let b = "{\"event_id\":\"p\(i)\"}"
            return "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: \(b.utf8.count)\r\n\r\n\(b)"
        }.joined()
        let chunkedBody = "[{\"event_id\":\"c1\"},{\"event_id\":\"c2\"}]"
        let half = chunkedBody.utf8.count / 2
        let chunked = "POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + String(half, radix: 16) + "\r\n" + String(chunkedBody.prefix(half)) + "\r\n"
            + String(chunkedBody.utf8.count - half, radix: 16) + "\r\n" + String(chunkedBody.dropFirst(half)) + "\r\n0\r\n\r\n"
        _ = (pipelined + chunked).withCString { send(fd, $0, strlen($0), 0) }
        let responses = readResponses(fd, count: 5)
        XCTAssertEqual(responses.map(\.status), [202, 202, 202, 202, 202])
        let stream = ",\"stream\":\"\(producer.stream)\"}"
        XCTAssertEqual(responses.map(\.body), [
            "{\"accepted\":1,\"first_seq\":1,\"last_seq\":1" + stream, "{\"accepted\":1,\"first_seq\":2,\"last_seq\":2" + stream,
            "{\"accepted\":1,\"first_seq\":3,\"last_seq\":3" + stream, "{\"accepted\":1,\"first_seq\":4,\"last_seq\":4" + stream,
            "{\"accepted\":2,\"first_seq\":5,\"last_seq\":6" + stream])
    }

    func testTenThousandFuzzedBodiesAreAnswered202Or4xxAndTheProducerKeepsServing() throws {
        let producer = try ProducerHarness(maxBodyBytes: 2048)
        let loop = try EventLoop()
        let publisher = try Publisher(loop: loop, port: producer.httpPort)
        var rng = SystemRandomNumberGenerator()
        let seeds = ["{\"event_id\":\"f\",\"payload\":{\"a\":[1,2,{\"b\":null}]}}", "[{\"event_id\":\"g\"},{\"event_id\":\"h\",\"payload\":\"\\u00e9\"}]"]
        let alphabet = Array("{}[]\",:\\ 0123456789.eE-tfnulx\u{00}\u{FF}é".utf8)
        var accepted = 0
        for i in 0..<10_000 {
            var bytes = Array(seeds[i % seeds.count].utf8)
            for _ in 0..<Int.random(in: 0...4, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[at] = alphabet.randomElement(using: &rng)!
                case 1: if bytes.count > 1 { bytes.remove(at: at) }
                default: bytes.insert(alphabet.randomElement(using: &rng)!, at: at)
                }
            }
            publisher.client.send(method: "POST", path: "/publish", body: bytes) { result in
                switch result {
                case .success(let response):
                    publisher.answers.append(response)
                    if response.status == 202 { accepted += 1 }
                case .failure: publisher.failures += 1
                }
            }
            if i % 200 == 199 { XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count + publisher.failures == i + 1 }) }
        }
        XCTAssertTrue(loop.run(timeout: .seconds(20)) { publisher.answers.count + publisher.failures == 10_000 })
        XCTAssertEqual(publisher.failures, 0)
        XCTAssertTrue(publisher.answers.allSatisfy { $0.status == 202 || (400..<500).contains($0.status) })
        XCTAssertGreaterThan(accepted, 100)
        XCTAssertLessThan(accepted, 10_000)
        XCTAssertEqual(producer.metrics.requests.count, 10_000)
        publisher.post("{\"event_id\":\"after\"}")
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { publisher.answers.count == 10_001 })
        XCTAssertEqual(publisher.answers.last?.status, 202)
    }
}
