import TestSupport
import XCTest
@testable import Reactor

/// Replies answered through one sink object, read in place: `SET NX GET` says the key
/// was set, or gives the value that holds it.
final class RedisReplySinkTests: XCTestCase {
    private final class Sink: RedisReplySink {
        var answers: [Int: (written: Bool, holder: [UInt8]?, error: RedisError?)] = [:]
        func redisReply(_ index: Int, _ reply: RedisReplyView?, error: RedisError?) {
            let set = reply?.kind == .null || reply?.kind == .status
            answers[index] = (set, reply?.kind == .string ? Array(reply!.bytes) : nil, error)
        }
    }

    func testSetNXGetReportsSetOrTheHoldersValueAndAppliesTheTTL() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        let prefix = RedisTestKit.prefix()
        _ = redisWait(loop) { client.set(prefix + "held", "c|other|run", completion: $0) }
        let sink = Sink()
        client.set(prefix + "free", "c|me|run", px: 5_000, nx: true, get: true, sink: sink, index: 0)
        client.set(prefix + "held", "c|me|run", px: 5_000, nx: true, get: true, sink: sink, index: 1)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { sink.answers.count == 2 })
        XCTAssertEqual(sink.answers[0]?.written, true)
        XCTAssertNil(sink.answers[0]?.holder)
        XCTAssertEqual(sink.answers[1]?.written, false)
        XCTAssertEqual(sink.answers[1]?.holder, Array("c|other|run".utf8))
        let ttl = redisWait(loop) { client.pttl(prefix + "free", completion: $0) }
        XCTAssertGreaterThan(try XCTUnwrap(ttl?.get()), 3_000)
        XCTAssertEqual(try redisWait(loop) { client.get(prefix + "held", completion: $0) }?.get(), Array("c|other|run".utf8))
        client.close()
    }

    func testCommandsPendingWhenTheConnectionDiesAreAnsweredWithAnError() throws {
        let server = try RedisTestServer()
        let (loop, client) = try RedisTestKit.connectedClient(url: server.url, configuration: RedisTestKit.quickConfiguration(whileDown: .failFast))
        let sink = Sink()
        for i in 0..<1_000 { client.set("k\(i)", "v", px: 1_000, nx: true, get: true, sink: sink, index: i) }
        server.stop()
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { sink.answers.count == 1_000 })
        XCTAssertTrue(sink.answers.values.allSatisfy { $0.written || $0.error != nil })
        client.close()
    }
}
