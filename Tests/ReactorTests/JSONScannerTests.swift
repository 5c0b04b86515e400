import Foundation
import TestSupport
import XCTest
@testable import Reactor

final class JSONScannerTests: XCTestCase {
    private func validate(_ text: String) -> JSONError? {
        var s = text
        return s.withUTF8 { utf8 in
            do {
                try JSONScanner(UnsafeRawBufferPointer(utf8)).validateDocument()
                return nil
            } catch let error as JSONError { return error } catch { return JSONError("?", at: 0) }
        }
    }

    func testTheEightByteStepFindsExactlyTheFirstQuoteBackslashOrControlByte() {
        func reference(_ word: UInt64) -> Int {
            (0..<8).first { k in
                let byte = UInt8(truncatingIfNeeded: word >> (8 * UInt64(k)))
                return byte == 0x22 || byte == 0x5C || byte < 0x20
            } ?? 8
        }
        var random = SplitMix64(seed: 99)
        for _ in 0..<200_000 {
            var word = random.next()
            // Mostly printable words, so the interesting single-byte cases come up often.
            if word & 1 == 0 { word = (word & 0x3F3F_3F3F_3F3F_3F3F) | 0x4040_4040_4040_4040 }
            XCTAssertEqual(JSONScanner.firstQuoteBackslashOrControl(word), reference(word), String(word, radix: 16))
        }
        for k in 0..<8 {
            for byte in 0...255 {
                let word = (0x6161_6161_6161_6161 as UInt64) & ~(0xFF << (8 * UInt64(k))) | UInt64(byte) << (8 * UInt64(k))
                XCTAssertEqual(JSONScanner.firstQuoteBackslashOrControl(word), reference(word), "byte \(byte) at \(k)")
                // A special byte followed by ones that borrow (0x00, 0x01...) above it.
                XCTAssertEqual(JSONScanner.firstQuoteBackslashOrControl(word & ~(0xFFFF_FFFF_FFFF_FFFF << (8 * UInt64(k)))),
                               reference(word & ~(0xFFFF_FFFF_FFFF_FFFF << (8 * UInt64(k)))))
            }
        }
    }

    func testAcceptsEveryKindOfValue() {
        for text in ["null", "true", "false", "0", "-0.5e+10", "1E3", "\"a\\u00e9\\n\"", "[]", "{}",
                     " { \"a\" : [1, 2, {\"b\": null}], \"c\": \"\\ud83d\\ude00\" } ", "[[[[[]]]]]"] {
            XCTAssertNil(validate(text), text)
        }
    }

    func testRefusesMalformedTextWithTheOffset() {
        let cases: [(String, Int)] = [("", 0), ("{", 1), ("{\"a\" 1}", 5), ("[1,]", 3), ("01", 1), ("1.", 2),
                                      ("\"abc", 0), ("\"\\x\"", 2), ("tru", 0), ("{} x", 3), ("\"a\u{01}\"", 2),
                                      ("{\"a\":1,}", 7), ("-", 1), ("[1 2]", 3)]
        for (text, offset) in cases {
            let error = validate(text)
            XCTAssertNotNil(error, "accepted \(text.debugDescription)")
            XCTAssertEqual(error?.offset, offset, text.debugDescription)
        }
    }

    func testRefusesNestingDeeperThanTheLimit() {
        XCTAssertNil(validate(String(repeating: "[", count: 200) + String(repeating: "]", count: 200)))
        XCTAssertNotNil(validate(String(repeating: "[", count: 100_000)))
    }

    /// The scanner keeps a bit per level instead of recursing, so no depth of input can
    /// exhaust a thread's stack; the limit is where the caller puts it.
    func testDeepNestingIsRefusedWithoutRecursing() throws {
        let n = JSONScanner.maxDepth
        XCTAssertNil(validate(String(repeating: "[", count: n) + String(repeating: "]", count: n)))
        XCTAssertEqual(validate(String(repeating: "[", count: n + 1) + String(repeating: "]", count: n + 1))?.kind, .tooDeep)
        for opener in ["[", "{\"a\":", "[{\"a\":"] {
            let text = String(repeating: opener, count: 100_000)
            XCTAssertEqual(validate(text)?.kind, .tooDeep, opener)
        }
        let objects = String(repeating: "{\"k\":[", count: 500) + "1" + String(repeating: "]}", count: 500)
        try Array(objects.utf8).withUnsafeBytes { raw in
            XCTAssertEqual(try JSONScanner(raw).skipValue(at: 0, maxDepth: 1000), raw.count)
            XCTAssertThrowsError(try JSONScanner(raw).skipValue(at: 0, maxDepth: 999)) {
                XCTAssertEqual(($0 as? JSONError)?.kind, .tooDeep)
            }
        }
    }

    private func storableError(_ text: String) -> JSONError? {
        Array(text.utf8).withUnsafeBytes { raw in
            do {
                _ = try JSONScanner(raw, checksStorable: true).skipValue(at: 0)
                return nil
            } catch { return error as? JSONError }
        }
    }

    func testStorableChecksAreOptIn() {
        for text in ["\"\\u0000\"", "\"\\ud800\"", "1e131072"] {
            XCTAssertNil(validate(text), text)
            XCTAssertEqual(storableError(text)?.kind, .unstorable, text)
        }
    }

    func testStringsPostgreSQLCannotStoreAreRefused() {
        let refused = ["\"\\u0000\"", "{\"\\u0000\":1}", "\"\\ud800\"", "\"\\ud800x\"", "\"\\ud800\\u0041\"",
                       "\"\\ud800\\ud800\\udc00\"", "\"\\udc00\"", "\"\\ude00\\ud83d\"", "\"\\ud800\\\\udc00\"", "\"a\u{0}\""]
        for text in refused {
            XCTAssertEqual(storableError(text)?.kind, .unstorable, text)
        }
        let stored = ["\"\\u0001\"", "\"\\ud83d\\ude00\"", "\"\\uDBFF\\uDFFF\"", "\"\\\\u0000\"", "\"\\uffff\"", "\"\\ufffe\""]
        for text in stored {
            XCTAssertNil(storableError(text), text)
        }
        XCTAssertEqual(storableError("\"x\\ud800\"")?.offset, 2)
    }

    /// The exact limits of PostgreSQL 15's numeric_in, each checked by hand against the server
    /// (the differential test in ProducerTests checks thousands more).
    func testNumbersOutsidePostgreSQLNumericAreRefused() {
        let zeros = { (n: Int) in String(repeating: "0", count: n) }
        let stored = ["0", "-0", "1E400", "1e131071", "9.99e131071", "0.1e131072", "-12.5e131070", "0e131072", "0e1073741822",
                      "0e+1073741822", "1e-16383", "0e-16383", "1.5e-16382", "123456.789e-16378", "1e+0000000131071",
                      "1" + zeros(131_071), "0." + zeros(16_382) + "1", "1e-0000016383"]
        for text in stored {
            XCTAssertNil(storableError(text), String(text.prefix(40)))
        }
        let refused = ["1e131072", "10e131071", "-1e131072", "1e-16384", "0e-16384", "0e-99999", "0.0e-16383", "1.5e-16383",
                       "0e1073741823", "0e-1073741822", "1e99999999999999999999", "1" + zeros(131_072),
                       "0." + zeros(16_383) + "1", "0." + zeros(16_384)]
        for text in refused {
            XCTAssertEqual(storableError(text)?.kind, .unstorable, String(text.prefix(40)))
        }
    }

    /// Python's json module is the strict oracle (Foundation accepts trailing commas).
    func testAgreesWithPythonsJSONOnRandomMutations() throws {
        var rng = SplitMix64(seed: 42)
        let seeds = ["{\"event_id\":\"x-1\",\"payload\":{\"m\":[1,2.5,true,null,\"\\u00e9\"]}}",
                     "[{\"a\":-1e5},{\"b\":\"q\\\"\"}]", "\"plain\"", "[0, -0, 1.0e-3]"]
        let alphabet = Array("{}[]\":,.-+eE0123456789tfnul\\ \tx".utf8)
        var cases: [[UInt8]] = []
        for i in 0..<10_000 {
            var bytes = Array(seeds[i % seeds.count].utf8)
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[at] = alphabet.randomElement(using: &rng)!
                case 1: bytes.remove(at: at)
                default: bytes.insert(alphabet.randomElement(using: &rng)!, at: at)
                }
                if bytes.isEmpty { bytes = [0x30] }
            }
            cases.append(bytes)
        }
        let script = """
        import base64, json, sys
        def strict(c): raise ValueError(c)
        for line in sys.stdin:
            try:
                json.loads(base64.b64decode(line).decode('utf-8'), parse_constant=strict); print(1)
            except Exception:
                print(0)
        """
        let input = cases.map { Data($0).base64EncodedString() }.joined(separator: "\n") + "\n"
        let verdicts = try runPython(script, input: input).split(separator: "\n").map { $0 == "1" }
        XCTAssertEqual(verdicts.count, cases.count)
        var disagreements = 0
        for (bytes, theirs) in zip(cases, verdicts) {
            let ours = bytes.withUnsafeBytes { (try? JSONScanner($0).validateDocument()) != nil }
            if ours != theirs {
                disagreements += 1
                XCTFail("scanner says \(ours), Python says \(theirs): \(String(decoding: bytes, as: UTF8.self))")
                if disagreements > 5 { break }
            }
        }
    }

    func testWalksMembersAndFindsKeys() throws {
        var text = "{\"event_id\": \"a\\\"b\", \"payload\": {\"x\": [1]}, \"other\": 3}"
        var found: [String: String] = [:]
        try text.withUTF8 { utf8 in
            let raw = UnsafeRawBufferPointer(utf8)
            let scanner = JSONScanner(raw)
            try scanner.forEachMember(ofObjectAt: 0) { key, start, end in
                let name = String(decoding: UnsafeRawBufferPointer(rebasing: raw[key]), as: UTF8.self)
                found[name] = String(decoding: UnsafeRawBufferPointer(rebasing: raw[start..<end]), as: UTF8.self)
                if scanner.key(key, equals: "event_id") {
                    var decoded: [UInt8] = []
                    JSONString.unescape(raw, (start + 1)..<(end - 1), into: &decoded)
                    XCTAssertEqual(decoded, Array("a\"b".utf8))
                }
            }
        }
        XCTAssertEqual(found, ["event_id": "\"a\\\"b\"", "payload": "{\"x\": [1]}", "other": "3"])
    }

    func testEscapingRoundTripsThroughUnescape() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<2_000 {
            let scalars = (0..<Int.random(in: 0...20, using: &rng)).map { _ -> Character in
                let pool: [UInt32] = [0x22, 0x5C, 0x0A, 0x01, 0x1F, 0x41, 0xE9, 0x1F600, 0x2028]
                return Character(Unicode.Scalar(pool.randomElement(using: &rng)!)!)
            }
            let original = String(scalars)
            let quoted = JSONString.quoted(original)
            XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(quoted.utf8), options: [.fragmentsAllowed]))
            var decoded: [UInt8] = []
            Array(quoted.utf8).withUnsafeBytes { raw in
                JSONString.unescape(raw, 1..<(raw.count - 1), into: &decoded)
            }
            XCTAssertEqual(String(decoding: decoded, as: UTF8.self), original)
        }
        var decoded: [UInt8] = []
        Array("\\ud83d\\ude00\\u00e9".utf8).withUnsafeBytes { JSONString.unescape($0, 0..<$0.count, into: &decoded) }
        XCTAssertEqual(String(decoding: decoded, as: UTF8.self), "😀é")
    }
}
