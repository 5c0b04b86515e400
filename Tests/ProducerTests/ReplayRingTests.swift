import XCTest
@testable import Producer

final class ReplayRingTests: XCTestCase {
    private func append(_ ring: ReplayRing, _ rest: String) -> UInt64 {
        var text = rest
        return text.withUTF8 { ring.append(rest: UnsafeRawBufferPointer($0)) }
    }

    private func lines(_ ring: ReplayRing, from seq: UInt64, maxBytes: Int = 1 << 20) -> [String] {
        var out: [String] = []
        var cursor = seq
        while cursor <= ring.lastSeq {
            let run = ring.run(from: cursor, maxBytes: maxBytes)
            out += String(decoding: run.bytes, as: UTF8.self).split(separator: "\n").map(String.init)
            cursor = run.lastSeq + 1
        }
        return out
    }

    func testLinesCarryTheirSeqAndComeBackInOrder() {
        let ring = ReplayRing(capacity: 100, arenaSize: 64 * 1024)
        for i in 1...10 { XCTAssertEqual(append(ring, "\"event_id\":\"e\(i)\",\"payload\":null}"), UInt64(i)) }
        let all = lines(ring, from: 1)
        XCTAssertEqual(all.count, 10)
        XCTAssertEqual(all[0], "{\"seq\":1,\"event_id\":\"e1\",\"payload\":null}")
        XCTAssertEqual(all[9], "{\"seq\":10,\"event_id\":\"e10\",\"payload\":null}")
        XCTAssertEqual(lines(ring, from: 7).first, "{\"seq\":7,\"event_id\":\"e7\",\"payload\":null}")
    }

    func testKeepsAtMostCapacityEvents() {
        let ring = ReplayRing(capacity: 5, arenaSize: 64 * 1024)
        for i in 1...12 { _ = append(ring, "\"event_id\":\"e\(i)\",\"payload\":1}") }
        XCTAssertEqual(ring.count, 5)
        XCTAssertEqual(ring.firstSeq, 8)
        XCTAssertFalse(ring.retains(7))
        XCTAssertEqual(lines(ring, from: 8).count, 5)
    }

    func testEvictsByBytesAcrossTheWrapAndNeverReturnsOverwrittenLines() {
        let ring = ReplayRing(capacity: 1_000_000, arenaSize: 4096)
        var rng = SystemRandomNumberGenerator()
        for i in 1...5_000 {
            let pad = String(repeating: "p", count: Int.random(in: 0...300, using: &rng))
            _ = append(ring, "\"event_id\":\"e\(i)\",\"payload\":\"\(pad)\"}")
            XCTAssertLessThanOrEqual(ring.retainedBytes, 4096)
            // Every retained line is intact: its seq matches and it names its own event.
            if i % 97 == 0 {
                var expected = ring.firstSeq
                for line in lines(ring, from: ring.firstSeq, maxBytes: Int.random(in: 1...2048, using: &rng)) {
                    XCTAssertTrue(line.hasPrefix("{\"seq\":\(expected),\"event_id\":\"e\(expected)\""), line)
                    expected += 1
                }
                XCTAssertEqual(expected, ring.lastSeq + 1)
            }
        }
    }

    func testARunNeverReadsPastTheArenasEndWhenALineEndsExactlyThere() {
        let ring = ReplayRing(capacity: 100, arenaSize: 4096)
        // Lines of exactly 1024 bytes: the fourth ends at the arena's end, the fifth
        // starts at its beginning, contiguous in absolute positions only.
        func rest(_ seq: Int) -> String {
            let fixed = "{\"seq\":\(seq),".utf8.count + "\"event_id\":\"e\(seq)\",\"payload\":\"\"}".utf8.count + 1
            return "\"event_id\":\"e\(seq)\",\"payload\":\"" + String(repeating: "p", count: 1024 - fixed) + "\"}"
        }
        for seq in 1...6 { _ = append(ring, rest(seq)) }
        XCTAssertEqual(ring.firstSeq, 3)
        // The run from seq 3 stops with seq 4, the line that ends at the arena's end.
        XCTAssertEqual(ring.run(from: 3, maxBytes: 1 << 20).lastSeq, 4)
        var expected = ring.firstSeq
        for line in lines(ring, from: ring.firstSeq) {
            XCTAssertTrue(line.hasPrefix("{\"seq\":\(expected),\"event_id\":\"e\(expected)\""), line)
            expected += 1
        }
        XCTAssertEqual(expected, 7)
    }

    func testRunsStopAtTheByteCapButAlwaysHoldOneLine() {
        let ring = ReplayRing(capacity: 100, arenaSize: 64 * 1024)
        for i in 1...10 { _ = append(ring, "\"event_id\":\"e\(i)\",\"payload\":null}") }
        let run = ring.run(from: 1, maxBytes: 10)
        XCTAssertEqual(run.lastSeq, 1)
        let two = ring.run(from: 1, maxBytes: 90)
        XCTAssertEqual(two.lastSeq, 2)
        XCTAssertEqual(String(decoding: two.bytes, as: UTF8.self).split(separator: "\n").count, 2)
    }
}
