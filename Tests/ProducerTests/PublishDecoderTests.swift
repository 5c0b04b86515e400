import XCTest
@testable import Producer

final class PublishDecoderTests: XCTestCase {
    private func decode(_ body: String) -> Result<[String], PublishError> {
        var batch = EventBatch()
        let failure = Array(body.utf8).withUnsafeBytes { raw -> PublishError? in
            do {
                try PublishDecoder.decode(raw, into: &batch)
                return nil
            } catch {
                return error as? PublishError
            }
        }
        if let failure { return .failure(failure) }
        var out: [String] = []
        batch.forEach { out.append(String(decoding: $0, as: UTF8.self)) }
        return .success(out)
    }

    func testOneEventKeepsItsPayloadBytes() {
        XCTAssertEqual(try decode("{\"event_id\": \"test-123\", \"payload\": {\"message\": \"hello\"}}").get(),
                       ["\"event_id\":\"test-123\",\"payload\":{\"message\": \"hello\"}}"])
    }

    func testABatchIsDecodedInOrder() {
        XCTAssertEqual(try decode("[{\"event_id\":\"a\",\"payload\":1},{\"payload\":[true],\"event_id\":\"b\"}]").get(),
                       ["\"event_id\":\"a\",\"payload\":1}", "\"event_id\":\"b\",\"payload\":[true]}"])
    }

    func testMissingPayloadIsNullAndUnknownFieldsAreIgnored() {
        XCTAssertEqual(try decode("{\"event_id\":\"a\",\"extra\":{\"x\":1}}").get(), ["\"event_id\":\"a\",\"payload\":null}"])
    }

    func testMultiLinePayloadIsCompactedButStringsAreUntouched() {
        XCTAssertEqual(try decode("{\"event_id\":\"a\",\"payload\":{\n  \"k\": \"a b\\n c\",\n  \"n\": [1, 2]\n}}").get(),
                       ["\"event_id\":\"a\",\"payload\":{\"k\":\"a b\\n c\",\"n\":[1,2]}}"])
    }

    func testEscapedIDsAreCanonical() {
        XCTAssertEqual(try decode("{\"event_id\":\"\\u0061\\/b\\\"c\"}").get(), ["\"event_id\":\"a/b\\\"c\",\"payload\":null}"])
    }

    func testBadEventIDsAreRefused() {
        let cases = ["{\"payload\":1}": "event_id is missing",
                     "{\"event_id\":\"\"}": "event_id must not be empty",
                     "{\"event_id\":7}": "event_id must be a string",
                     "{\"event_id\":\"\(String(repeating: "x", count: 256))\"}": "event_id is 256 bytes; at most 255 UTF-8 bytes are allowed",
                     "{\"event_id\":\"a\",\"event_id\":\"b\"}": "event_id appears twice",
                     "[{\"event_id\":\"a\"},{\"event_id\":\"\"}]": "event 1: event_id must not be empty",
                     "[{\"event_id\":\"a\"},3]": "event 1 is not a JSON object",
                     "[]": "the batch is empty",
                     "\"x\"": "body must be an event object or an array of them"]
        for (body, message) in cases {
            XCTAssertEqual(decode(body), .failure(PublishError(message)), body)
        }
        // 255 bytes of UTF-8 is fine even when it is fewer characters.
        let multibyte = String(repeating: "é", count: 127)  // 254 bytes
        XCTAssertNoThrow(try decode("{\"event_id\":\"\(multibyte)a\"}").get())
    }

    func testMalformedJSONIsRefusedWithItsPosition() {
        guard case .failure(let error) = decode("{\"event_id\":\"a\",}") else { return XCTFail("accepted") }
        XCTAssertTrue(error.message.hasPrefix("malformed JSON: invalid JSON at byte 16"), error.message)
        guard case .failure(let utf8) = decode("{\"event_id\":\"\u{FFFD}\"}".replacingOccurrences(of: "\u{FFFD}", with: "\u{00}")) else { return XCTFail("accepted") }
        XCTAssertEqual(utf8.message, "event_id contains a raw NUL byte, which JSON does not allow and PostgreSQL cannot store")
        var invalid = Array("{\"event_id\":\"x\"}".utf8)
        invalid[13] = 0xFF
        var batch = EventBatch()
        XCTAssertThrowsError(try invalid.withUnsafeBytes { try PublishDecoder.decode($0, into: &batch) }) { error in
            XCTAssertEqual(error as? PublishError,
                           PublishError("event_id is not valid UTF-8 (byte 0xFF at offset 13), which PostgreSQL cannot store"))
        }
    }

    func testWhatPostgreSQLCannotStoreIsRefusedNamingTheEventAndWhy() {
        let good = "{\"event_id\":\"ok\",\"payload\":[1,\"\\ud83d\\ude00\"]}"
        let cases = [
            "[\(good),\(good),\(good),{\"event_id\":\"x\",\"payload\":{\"a\":\"\\u0000\"}}]":
                "event 3: payload contains a NUL character (\\u0000), which PostgreSQL cannot store",
            "[\(good),{\"event_id\":\"x\\udc00\"}]":
                "event 1: event_id contains a lone surrogate escape (\\udc00 without a high surrogate before it), "
                + "which is no character and PostgreSQL cannot store",
            "{\"event_id\":\"x\",\"payload\":[1e131072]}":
                "payload contains the number 1e131072, which is 1e131072 or more in magnitude; PostgreSQL numeric holds less",
            "{\"event_id\":\"x\",\"payload\":0.5e-16383}":
                "payload contains the number 0.5e-16383, which has 16384 digits after the decimal point; "
                + "PostgreSQL numeric keeps at most 16383",
            "{\"event_id\":\"x\",\"k\\u0000\":1}": "a member name contains a NUL character (\\u0000), which PostgreSQL cannot store",
            "[\(good),{\"event_id\":\"x\",}]": "event 1: malformed JSON: invalid JSON at byte \(good.utf8.count + 18): expected a member name",
        ]
        for (body, message) in cases {
            XCTAssertEqual(decode(body), .failure(PublishError(message)), body)
        }
        let deep = { (n: Int) in String(repeating: "[", count: n) + String(repeating: "]", count: n) }
        XCTAssertEqual(decode("[{\"event_id\":\"d\",\"payload\":\(deep(1000))}]"), .success(["\"event_id\":\"d\",\"payload\":\(deep(1000))}"]))
        XCTAssertEqual(decode("[\(good),{\"event_id\":\"d\",\"payload\":\(deep(1001))}]"),
                       .failure(PublishError("event 1: payload nests deeper than 1000 levels of arrays and objects")))
    }

    func testAllOrNothing() {
        var batch = EventBatch()
        let body = Array("[{\"event_id\":\"a\"},{\"event_id\":\"\"}]".utf8)
        XCTAssertThrowsError(try body.withUnsafeBytes { try PublishDecoder.decode($0, into: &batch) })
        XCTAssertEqual(batch.count, 0)
    }
}
