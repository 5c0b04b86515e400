import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Producer

/// Over HTTP, through the real producer: what PostgreSQL cannot store is answered 400 with
/// its reason and nothing of the request is published or broadcast.
final class DoorRefusalHTTPTests: XCTestCase {
    private func event(_ id: String, payload: [UInt8]) -> [UInt8] {
        Array("{\"event_id\":\"\(id)\",\"payload\":".utf8) + payload + [UInt8(ascii: "}")]
    }

    private func body(_ text: String) -> [UInt8] { Array(text.utf8) }

    func testOneBadEventIDRefusesAWholeBatchOf200() throws {
        let producer = try ProducerHarness()
        let loop = try EventLoop()
        let subscriber = try Recorder(loop: loop, port: producer.wsPort)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { subscriber.opened })
        let publisher = try Publisher(loop: loop, port: producer.httpPort)
        var events = (0..<200).map { "{\"event_id\":\"good-\($0)\",\"payload\":{\"n\":\($0)}}" }
        events.insert("{\"event_id\":\"bad\\u0000id\",\"payload\":{\"n\":-1}}", at: 117)
        publisher.post("[" + events.joined(separator: ",") + "]")
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count == 1 })
        let answer = try XCTUnwrap(publisher.answers.first)
        XCTAssertEqual(answer.status, 400)
        XCTAssertEqual(try errorMessage(answer),
                       "event 117: event_id contains a NUL character (\\u0000), which PostgreSQL cannot store")
        // A later good event gets seq 1 and is the first thing any subscriber sees.
        publisher.post("{\"event_id\":\"after\"}")
        // The 202 may arrive after the broadcast: wait for both.
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { subscriber.seqs.count == 1 && publisher.answers.count == 2 })
        XCTAssertEqual(publisher.answers.last?.status, 202)
        XCTAssertEqual(subscriber.lines.first, "{\"seq\":1,\"event_id\":\"after\",\"payload\":null}")
        XCTAssertEqual(producer.metrics.published.count, 1)
    }

    func testEachPoisonAloneIsRefusedWithItsReason() throws {
        let producer = try ProducerHarness()
        let loop = try EventLoop()
        let deep = { (n: Int) in Array((String(repeating: "[", count: n) + String(repeating: "]", count: n)).utf8) }
        let cases: [(body: [UInt8], reason: String)] = [
            (event("a", payload: body("\"\\u0000\"")), "payload contains a NUL character (\\u0000), which PostgreSQL cannot store"),
            (event("a", payload: body("{\"k\\u0000\":1}")), "payload contains a NUL character (\\u0000)"),
            (event("a", payload: [0x22, 0x61, 0x00, 0x22]), "payload contains a raw NUL byte"),
            (body("{\"event_id\":\"a\u{0}b\"}"), "event_id contains a raw NUL byte"),
            (body("{\"event_id\":\"x\\ud800\"}"), "event_id contains a lone surrogate escape (\\ud800 is not followed by a low surrogate)"),
            (event("a", payload: body("\"\\ud800\\u0041\"")), "payload contains a lone surrogate escape (\\ud800 is not followed"),
            (event("a", payload: body("[\"\\udc00\"]")), "payload contains a lone surrogate escape (\\udc00 without a high surrogate"),
            (event("a", payload: [0x22, 0xFF, 0x22]), "payload is not valid UTF-8 (byte 0xFF at offset 27)"),
            (event("a", payload: [0x22, 0xC0, 0x80, 0x22]), "payload is not valid UTF-8 (byte 0xC0"),
            (event("a", payload: [0x22, 0xED, 0xA0, 0x80, 0x22]), "payload is not valid UTF-8 (byte 0xED"),
            (body("{\"event_id\":\"caf") + [0xE9] + body("\"}"), "event_id is not valid UTF-8 (byte 0xE9"),
            (event("a", payload: body("1e131072")), "payload contains the number 1e131072, which is 1e131072 or more in magnitude"),
            (event("a", payload: body("{\"x\":[-12.5e131071]}")), "payload contains the number -12.5e131071"),
            (event("a", payload: body("1e-16384")), "payload contains the number 1e-16384, which has 16384 digits after the decimal point"),
            (event("a", payload: body("0e-99999")), "which has 99999 digits after the decimal point"),
            (event("a", payload: body("0e1073741823")), "whose exponent is beyond"),
            (event("a", payload: deep(1001)), "payload nests deeper than 1000 levels of arrays and objects"),
            (event("a", payload: body("[") + deep(100_000)), "payload nests deeper than 1000 levels"),
            (body("[{\"event_id\":\"ok\"},{\"event_id\":\"b\",\"extra\":\"\\u0000\"}]"), "event 1: member \"extra\" contains a NUL"),
        ]
        for (body, reason) in cases {
            let publisher = try Publisher(loop: loop, port: producer.httpPort)
            publisher.client.send(method: "POST", path: "/publish", body: body) { result in
                if case .success(let response) = result { publisher.answers.append(response) } else { publisher.failures += 1 }
            }
            XCTAssertTrue(loop.run(timeout: .seconds(10)) { publisher.answers.count + publisher.failures == 1 })
            let answer = try XCTUnwrap(publisher.answers.first, reason)
            XCTAssertEqual(answer.status, 400, reason)
            let message = try errorMessage(answer)
            XCTAssertTrue(message.hasPrefix(reason) || message.contains(reason), "\(message) does not say \(reason)")
        }
        XCTAssertEqual(producer.metrics.published.count, 0)
        // Right at the limits is accepted.
        let fine = [body("1e131071"), body("-9.99e131071"), body("1e-16383"), body("0e131072"), body("-0"), body("1E400"),
                    body("\"\\ud83d\\ude00\\\\u0000\""), deep(1000)]
        for payload in fine {
            let answer = try httpPost(port: producer.httpPort, path: "/publish",
                                      body: String(decoding: event("fine", payload: payload), as: UTF8.self))
            XCTAssertEqual(answer.status, 202, String(decoding: payload.prefix(40), as: UTF8.self))
        }
        XCTAssertEqual(producer.metrics.published.count, fine.count)
    }

    private func errorMessage(_ answer: HTTPClientResponse) throws -> String {
        let json = try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]
        return try XCTUnwrap(json?["error"] as? String, answer.bodyString)
    }
}
