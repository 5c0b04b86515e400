import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Producer

/// The producer's publish API and its WebSocket broadcast, as docs/interface.md states them.
final class PublishAndBroadcastTests: XCTestCase {
    func testEventsArriveInOrderWithConsecutiveSeqsAndTheirPayloadBytes() throws {
        let producer = try ProducerHarness()
        let loop = try EventLoop()
        let subscriber = try Recorder(loop: loop, port: producer.wsPort)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { subscriber.opened })
        let publisher = try Publisher(loop: loop, port: producer.httpPort)
        let large = "{\"blob\":\"" + String(repeating: "z", count: 200_000) + "\"}"
        let payloads = ["{\"message\": \"hello\"}", "\"héllo wörld ✓ 😀\"", "{\"a\":{\"b\":[1,{\"c\":null}]}}", "null",
                        "[1, 2.5e3, true, false]", large, "\"quote \\\" backslash \\\\ \\u0001\""]
        for (i, payload) in payloads.enumerated() {
            publisher.post("{\"event_id\":\"e-\(i)\",\"payload\":\(payload)}")
        }
        publisher.post("{\"event_id\":\"omitted\"}")
        publisher.post("[{\"event_id\":\"b1\",\"payload\":1},{\"event_id\":\"b2\",\"payload\":2},{\"event_id\":\"b3\"}]")
        XCTAssertTrue(loop.run(timeout: .seconds(10)) {
            subscriber.seqs.count == payloads.count + 4 && publisher.answers.count == payloads.count + 2
        })
        XCTAssertEqual(publisher.answers.map(\.status), Array(repeating: 202, count: payloads.count + 2))
        XCTAssertEqual(publisher.answers.last?.bodyString, "{\"accepted\":3,\"first_seq\":9,\"last_seq\":11,\"stream\":\"\(producer.stream)\"}")
        XCTAssertEqual(subscriber.seqs, Array(1...UInt64(payloads.count + 4)))
        for (i, payload) in payloads.enumerated() {
            XCTAssertEqual(subscriber.lines[i], "{\"seq\":\(i + 1),\"event_id\":\"e-\(i)\",\"payload\":\(payload)}")
        }
        XCTAssertEqual(subscriber.lines[payloads.count], "{\"seq\":8,\"event_id\":\"omitted\",\"payload\":null}")
        XCTAssertEqual(subscriber.lines.last, "{\"seq\":11,\"event_id\":\"b3\",\"payload\":null}")
    }

    func testEveryLineCarriesTheProducersAcceptTime() throws {
        let producer = try ProducerHarness()
        let loop = try EventLoop()
        let subscriber = try Recorder(loop: loop, port: producer.wsPort)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { subscriber.opened })
        let before = WallClock.unixMillis()
        let publisher = try Publisher(loop: loop, port: producer.httpPort)
        publisher.post("[{\"event_id\":\"t1\"},{\"event_id\":\"t2\"}]")
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { subscriber.acceptTimes.count == 2 })
        let after = WallClock.unixMillis()
        for ts in subscriber.acceptTimes { XCTAssertTrue((before...after).contains(ts), "\(ts) not in \(before)...\(after)") }
        // Replayed from the ring or the log, a line keeps the time it was accepted at.
        let late = try Recorder(loop: loop, port: producer.wsPort, fromSeq: 0)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { late.acceptTimes.count == 2 })
        XCTAssertEqual(late.acceptTimes, subscriber.acceptTimes)
    }

    func testASubscriberMessageLongerThanAControlFrameClosesItsConnection() throws {
        let producer = try ProducerHarness()
        let loop = try EventLoop()
        let chatty = try Recorder(loop: loop, port: producer.wsPort)
        let quiet = try Recorder(loop: loop, port: producer.wsPort)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { chatty.opened && quiet.opened })
        _ = chatty.client.socket?.send(text: String(repeating: "x", count: 126))
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { chatty.closeCode != nil })
        XCTAssertEqual(chatty.closeCode?.rawValue, 1009)
        let publisher = try Publisher(loop: loop, port: producer.httpPort)
        publisher.post("{\"event_id\":\"after-chatty\"}")
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { quiet.lines.count == 1 })
        XCTAssertNil(quiet.closeCode)
    }

    func testManyEventsPublishedInOneTurnShareFrames() throws {
        let producer = try ProducerHarness()
        let loop = try EventLoop()
        let subscriber = try Recorder(loop: loop, port: producer.wsPort)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { subscriber.opened })
        let publisher = try Publisher(loop: loop, port: producer.httpPort)
        let batch = "[" + (0..<1000).map { "{\"event_id\":\"x\($0)\",\"payload\":{\"n\":\($0)}}" }.joined(separator: ",") + "]"
        for _ in 0..<5 { publisher.post(batch) }
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { subscriber.seqs.count == 5000 })
        XCTAssertEqual(subscriber.seqs, Array(1...5000))
        XCTAssertLessThan(subscriber.frames, 100, "events ready together go out in shared frames")
    }

    func testPythonWebsocketsClientReceivesTheSameLines() throws {
        let producer = try ProducerHarness()
        let loop = try EventLoop()
        let publisher = try Publisher(loop: loop, port: producer.httpPort)
        for i in 0..<20 { publisher.post("{\"event_id\":\"py-\(i)\",\"payload\":{\"i\":\(i),\"s\":\"ü\"}}") }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { publisher.answers.count == 20 })
        let script = """
        import asyncio, sys, websockets
        async def main():
            async with websockets.connect(sys.argv[1]) as ws:
                lines = []
                while len(lines) < 20:
                    lines += (await ws.recv()).split("\\n")
                print("\\n".join(lines))
        asyncio.run(main())
        """
        let out = try runPython(script, arguments: ["ws://127.0.0.1:\(producer.wsPort)/?from_seq=0"])
        let lines = out.split(separator: "\n").map { withoutAcceptTime(String($0)).line }
        XCTAssertEqual(lines.count, 20)
        for i in 0..<20 {
            XCTAssertEqual(lines[i], "{\"seq\":\(i + 1),\"event_id\":\"py-\(i)\",\"payload\":{\"i\":\(i),\"s\":\"ü\"}}")
        }
    }
}
