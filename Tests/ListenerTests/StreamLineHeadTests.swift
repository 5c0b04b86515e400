@testable import Dedup
import Reactor
import XCTest

/// A listener that holds for the claimer reads only the head of a line; the line is
/// checked in full by whoever parses it, and anything not in the producer's layout is
/// parsed in full at once.
final class StreamLineHeadTests: XCTestCase {
    private func head(_ line: String) -> (seq: UInt64, id: String, ts: Int64)? {
        let bytes = Array(line.utf8)
        return bytes.withUnsafeBytes { raw in
            StreamLineParser.head(of: raw).map { ($0.seq, String(decoding: raw[$0.id], as: UTF8.self), $0.acceptedAt) }
        }
    }

    private func parse(_ line: String) -> (events: EventSet, notices: [StreamNotice]) {
        var events = EventSet()
        var scratch: [UInt8] = []
        var notices: [StreamNotice] = []
        Array(line.utf8).withUnsafeBytes { frame in
            StreamLineParser.forEachLine(frame) { line, number in
                if let notice = StreamLineParser.parseLine(line, number: number, into: &events, scratch: &scratch) { notices.append(notice) }
            }
        }
        return (events, notices)
    }

    func testTheHeadOfTheProducersLayoutGivesSeqIdAndAcceptTime() throws {
        let withTS = try XCTUnwrap(head(#"{"seq":42,"ts":1764500000123,"event_id":"order-7","payload":{"a":[1,"}"]}}"#))
        XCTAssertEqual(withTS.seq, 42)
        XCTAssertEqual(withTS.id, "order-7")
        XCTAssertEqual(withTS.ts, 1_764_500_000_123)
        let withoutTS = try XCTUnwrap(head(#"{"seq":7,"event_id":"é漢","payload":null}"#))
        XCTAssertEqual(withoutTS.seq, 7)
        XCTAssertEqual(withoutTS.id, "é漢")
        XCTAssertEqual(withoutTS.ts, 0)
    }

    func testAnythingElseIsLeftToTheFullParse() {
        let others = [
            #"{"event_id":"a","seq":1,"payload":1}"#,  // another order
            #"{"seq":1,"event_id":"a\"b","payload":1}"#,  // escapes in the id
            #"{"seq":0,"event_id":"a","payload":1}"#,  // seq 0
            #"{"seq":1,"event_id":"","payload":1}"#,  // empty id
            #"{"seq":1,"event_id":7,"payload":1}"#,  // id not a string
            #"{"seq":1,"event_id":"a"}"#,  // no payload
            #"{"seq":12345678901234567890,"event_id":"a","payload":1}"#,  // seq too large
            #"{"gap":{"from":1,"to":5}}"#,
            #"{ "seq":1,"event_id":"a","payload":1}"#,  // whitespace
            #"{"seq":07,"event_id":"a","payload":1}"#,  // a leading zero
            #"{"seq":1,"ts":0,"event_id":"a","payload":1}"#,  // ts 0
            #"{"seq":1,"ts":0123,"event_id":"a","payload":1}"#,  // ts with a leading zero
            #"{"seq":1,"ts":9999999999999999999,"event_id":"a","payload":1}"#,  // ts past Int64
            "{\"seq\":1,\"event_id\":\"" + String(repeating: "x", count: 256) + "\",\"payload\":1}",
            "{\"seq\":1,\"event_id\":\"a\u{01}b\",\"payload\":1}",  // a control byte in the id
            #"{"seq":1,"event_id":"abc"#,  // the id never ends
            #"{"seq":1,"event_id":""#,  // the line ends at the id
            #"{"seq":1,"event_id":"a","payload""#,  // cut inside the payload's name
        ]
        for line in others { XCTAssertNil(head(line), line) }
    }

    func testALineWithTheRightHeadAndABrokenRestIsMalformedWhenParsedInFull() throws {
        for line in [#"{"seq":3,"event_id":"a","payload":{"x":}"#, #"{"seq":3,"event_id":"a","payload":1,"extra":"#] {
            XCTAssertNotNil(head(line), line)
            let parsed = parse(line)
            XCTAssertEqual(parsed.events.count, 0, line)
            guard case .malformed? = parsed.notices.first else { return XCTFail("not reported malformed: \(line)") }
        }
    }
}
