import TestSupport
import XCTest
@testable import Reactor

/// Claims answered through one sink object: claimed, or the holder's value in place.
final class RedisClaimSinkTests: XCTestCase {
    private final class Sink: RedisClaimSink {
        var answers: [Int: (claimed: Bool, holder: [UInt8]?, error: RedisError?)] = [:]
        func redisClaim(_ index: Int, claimed: Bool, holder: UnsafeRawBufferPointer?, error: RedisError?) {
            answers[index] = (claimed, holder.map(Array.init), error)
        }
    }

    func testClaimsReportClaimedOrTheHoldersValueAndApplyTheTTL() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        let prefix = RedisTestKit.prefix()
        _ = redisWait(loop) { client.set(prefix + "held", "c|other|run", completion: $0) }
        let sink = Sink()
        client.claim(prefix + "free", "c|me|run", px: 5_000, sink: sink, index: 0)
        client.claim(prefix + "held", "c|me|run", px: 5_000, sink: sink, index: 1)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { sink.answers.count == 2 })
        XCTAssertEqual(sink.answers[0]?.claimed, true)
        XCTAssertNil(sink.answers[0]?.holder)
        XCTAssertEqual(sink.answers[1]?.claimed, false)
        XCTAssertEqual(sink.answers[1]?.holder, Array("c|other|run".utf8))
        let ttl = redisWait(loop) { client.pttl(prefix + "free", completion: $0) }
        XCTAssertGreaterThan(try XCTUnwrap(ttl?.get()), 3_000)
        XCTAssertEqual(try redisWait(loop) { client.get(prefix + "held", completion: $0) }?.get(), Array("c|other|run".utf8))
        client.close()
    }

    func testClaimsPendingWhenTheConnectionDiesAreAnsweredWithAnError() throws {
        let server = try RedisTestServer()
        let (loop, client) = try RedisTestKit.connectedClient(url: server.url, configuration: RedisTestKit.quickConfiguration(whileDown: .failFast))
        let sink = Sink()
        for i in 0..<1_000 { client.claim("k\(i)", "v", px: 1_000, sink: sink, index: i) }
        server.stop()
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { sink.answers.count == 1_000 })
        XCTAssertTrue(sink.answers.values.allSatisfy { $0.claimed || $0.error != nil })
        client.close()
    }
}
