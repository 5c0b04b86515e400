import TestSupport
import XCTest
@testable import Reactor

/// Pipelining from one loop: everything issued in a turn leaves together and replies come
/// back matched, in order.
final class RedisPipelineTests: XCTestCase {
    func testHundredThousandPipelinedClaimsCompleteInOrderWithTheRightSplit() throws {
        let (loop, client) = try RedisTestKit.connectedClient(configuration: RedisTestKit.quickConfiguration(commandTimeout: .seconds(20)))
        let p = RedisTestKit.prefix()
        let n = 100_000
        let keys = (0..<n).map { Array((p + String($0)).utf8) }

        // Half the keys (the even ones) already belong to someone else.
        var preset = 0
        for i in stride(from: 0, to: n, by: 2) {
            client.set(keys[i], "other", px: 60_000) { if case .success = $0 { preset += 1 } }
        }
        XCTAssertTrue(loop.run(timeout: .seconds(20)) { preset == n / 2 })

        var order: [Int] = []
        order.reserveCapacity(n)
        var claimed = 0
        var takenByOther = 0
        var wrong: [String] = []
        let mine: [UInt8] = Array("mine".utf8)
        for i in 0..<n {
            client.set(keys[i], mine, px: 30_000, nx: true, get: true) { result in
                order.append(i)
                switch result {
                case .success(.written) where i % 2 == 1: claimed += 1
                case .success(.taken(let holder?)) where i % 2 == 0 && holder == Array("other".utf8): takenByOther += 1
                default: if wrong.count < 5 { wrong.append("\(i): \(result)") }
                }
            }
        }
        XCTAssertEqual(client.submittedCount, n)
        XCTAssertTrue(loop.run(timeout: .seconds(30)) { order.count == n }, "completed \(order.count) of \(n)")
        XCTAssertEqual(order, Array(0..<n), "completions out of order")
        XCTAssertEqual(claimed, n / 2)
        XCTAssertEqual(takenByOther, n / 2)
        XCTAssertEqual(wrong, [])

        // The claims really carry their TTL on the server, and the others' keys kept theirs.
        let claimTTL = try XCTUnwrap(Int(try RedisTestServer.shared.cli("PTTL", p + "1")))
        XCTAssertTrue((1...30_000).contains(claimTTL), "claim PTTL \(claimTTL)")
        XCTAssertEqual(try RedisTestServer.shared.cli("GET", p + "0"), "other")
        XCTAssertEqual(try RedisTestServer.shared.cli("GET", p + "99999"), "mine")
        client.close()
    }

    func testCommandsIssuedInOneTurnLeaveBeforeTheLoopSleeps() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        var done = 0
        for _ in 0..<1000 { client.command("PING") { _ in done += 1 } }
        // Nothing is written while we issue; one turn flushes and later turns read replies.
        XCTAssertEqual(done, 0)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { done == 1000 })
        client.close()
    }
}
